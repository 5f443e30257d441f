"""Tests for the demo world: what each signal sees, frequencies, splits, determinism."""

import dataclasses

import numpy as np
import pytest

from rankjax.data import schema, store
from rankjax.sim import world as demo_world

SMALL = demo_world.WorldConfig(num_queries=300, num_docs=1200, sessions=6000, seed=1)


@pytest.fixture(scope="module")
def world():
  return demo_world.make_world(SMALL)


def pooled(lists, get):
  return np.concatenate([get(x) for x in lists])


def test_signals_see_what_the_docstring_says(world):
  splits, _ = world
  lists = [x for s in splits.values() for x in s]
  semantic = pooled(lists, lambda x: x.extras["semantic"])
  quality = pooled(lists, lambda x: x.extras["quality"])
  human, llm = (pooled(lists, lambda x, s=s: x.labels[s]) for s in ("human", "llm"))
  corr = lambda a, b: np.corrcoef(a, b)[0, 1]
  # Truth combines both parts; the annotator sees only the semantic one.
  assert corr(human, semantic) > 0.5 and corr(human, quality) > 0.5
  assert corr(llm, semantic) > 0.6 and abs(corr(llm, quality)) < 0.1
  # The semantic features are proxies of the semantic part; the document-level CTR feature
  # carries the quality part (through clicks) and no semantic information of its own.
  features = pooled(lists, lambda x: x.features)
  assert corr(features[:, 0], semantic) > 0.7 and abs(corr(features[:, 0], quality)) < 0.1
  often = features[:, 3] >= 50  # documents shown at least 50 times
  assert corr(features[often, 2], quality[often]) > 0.4
  assert np.all(np.isin(human, np.arange(5))) and np.all(np.isin(llm, np.arange(5)))
  assert 0.4 < np.mean(human == 0) < 0.6  # GRADE_CUTS: half the pairs are not relevant


def test_frequencies_buckets_and_splits(world):
  splits, meta = world
  lists = [x for s in splits.values() for x in s]
  freq = np.array([x.query_freq for x in lists])
  bucket = np.array([x.bucket for x in lists])
  assert freq.min() >= 1 and freq.max() > 20 * np.median(freq)  # Zipf: a heavy head
  assert set(bucket) == {0, 1, 2}
  assert freq[bucket == 0].min() > freq[bucket == 2].max()
  qids = [set(x.qid for x in s) for s in splits.values()]
  assert sum(map(len, qids)) == len(set.union(*qids)) == len(lists)
  assert meta["lists"] == {k: len(v) for k, v in splits.items()}
  # PBM propensities fitted on the log fall with rank like the true examination k^-eta.
  p = np.array(meta["propensities"])
  assert p[0] == 1 and np.all(np.diff(p) < 0.02) and abs(p[2] - 1 / 3) < 0.15
  for x in lists:
    assert set(x.labels) == set(schema.SOURCES) and x.features.shape == (len(x), 5)


def test_world_is_deterministic_and_seed_dependent(world):
  again, _ = demo_world.make_world(SMALL)
  other, _ = demo_world.make_world(dataclasses.replace(SMALL, seed=2))
  a, b = world[0]["test"][0], again["test"][0]
  assert a.qid == b.qid and np.array_equal(a.features, b.features)
  assert [x.qid for x in other["test"]] != [x.qid for x in world[0]["test"]]


def test_build_writes_once_and_refuses_other_parameters(tmp_path):
  cfg = dataclasses.replace(SMALL, num_queries=60, num_docs=200, sessions=600)
  path, meta = demo_world.build(tmp_path, cfg)
  assert len(store.open_split(path, "train")) == meta["lists"]["train"]
  path2, meta2 = demo_world.build(tmp_path, cfg)
  assert path2 == path and meta2 == meta
  with pytest.raises(ValueError, match="other parameters"):
    demo_world.build(tmp_path, dataclasses.replace(cfg, seed=5))
