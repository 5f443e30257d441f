"""Query frequency and frequency buckets."""

import numpy as np
import pytest

from rankjax import registry
from rankjax.data import frequency
from rankjax.data.readers.common import Interaction, Session


def _it(q):
  return Interaction(q, ["d"], [1], [0])


def test_sessions_count_a_query_once_per_session():
  sessions = [
    Session("1", [_it("a"), _it("a"), _it("b")]),
    Session("2", [_it("a")]),
    Session("3", [_it("c")]),
  ]
  assert frequency.query_frequency(sessions) == {"a": 2, "b": 1, "c": 1}
  assert frequency.query_frequency(sessions, by="interactions") == {"a": 3, "b": 1, "c": 1}
  with pytest.raises(
    registry.UnknownName, match="unknown query frequency count 'users'; known: .*sessions"
  ):
    frequency.query_frequency(sessions, by="users")


def test_topic_frequency_counts_the_sessions_of_the_query_topic():
  it = lambda q, topic: Interaction(q, ["d"], [1], [0], topic=topic)
  sessions = [
    Session("1", [it("a", "t"), it("b", "t")]),
    Session("2", [it("c", "t")]),
    Session("3", [it("d", "u"), it("e", None)]),
  ]
  assert frequency.query_frequency(sessions, by="topic") == {"a": 2, "b": 2, "c": 2, "d": 1}
  with pytest.raises(ValueError, match="no topics"):
    frequency.query_frequency([Session("1", [_it("a")])], by="topic")


def test_quantile_buckets_split_queries_in_thirds_without_splitting_ties():
  rng = np.random.default_rng(0)
  freq = {str(i): float(f) for i, f in enumerate(rng.permutation(np.arange(1, 301)))}
  b = frequency.quantile_buckets(freq)
  counts = np.bincount(list(b.values()), minlength=3)
  assert counts.tolist() == [100, 100, 100]
  assert min(freq[q] for q in b if b[q] == 0) > max(freq[q] for q in b if b[q] == 1)
  # Mostly rare queries: the tie at frequency 1 stays in one bucket.
  skewed = {str(i): 1.0 for i in range(90)} | {"x": 5.0, "y": 50.0}
  b = frequency.quantile_buckets(skewed)
  assert {b[str(i)] for i in range(90)} == {frequency.LOW} and b["y"] == frequency.HIGH


def test_threshold_and_dataset_buckets():
  assert frequency.threshold_buckets({"a": 4, "b": 5, "c": 49, "d": 50}, high=50, medium=5) == {
    "a": 2,
    "b": 1,
    "c": 1,
    "d": 0,
  }
  with pytest.raises(ValueError, match="above high"):
    frequency.threshold_buckets({}, high=1, medium=2)
  got = frequency.dataset_buckets({str(i): i for i in range(10)})
  assert [got[str(i)] for i in range(10)] == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
  with pytest.raises(ValueError, match="outside"):
    frequency.dataset_buckets({"a": 10})
  with pytest.raises(
    registry.UnknownName, match="unknown dataset bucket map 'yandex'; known: .*baidu-ultr"
  ):
    frequency.dataset_buckets({"a": 0}, dataset="yandex")
