"""Query frequency from a log, and frequency buckets (`schema.BUCKETS`: high, medium, low).

A query's frequency is counted from the log in one of the ways registered in `FREQ_BY`: by default
the number of sessions that issue it (a query re-issued within a session counts once),
"interactions" counts every issue instead, "topic" the sessions of the query's topic (TREC Session
topics). Buckets come from one of:

- `quantile_buckets`: cut points at frequency quantiles over queries (ties never split: a
  frequency sits wholly in one bucket, so a bucket can be empty when most queries are rare);
- `threshold_buckets`: fixed thresholds, high if f >= `high`, medium if f >= `medium`, else low;
- `dataset_buckets`: a dataset's own buckets, e.g. Baidu-ULTR's 0-9 (0 = most frequent) map to
  high 0-2, medium 3-6, low 7-9.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from rankjax import registry
from rankjax.data import schema
from rankjax.data.readers.common import Session

HIGH, MEDIUM, LOW = range(3)

# A bucket is thin, its per-bucket metrics of little meaning, when it holds fewer queries than
# either of these: a share of all queries, or a count.
THIN_SHARE = 0.05
THIN_QUERIES = 10

# A dataset's own bucket ids, by dataset name: bucket id -> `schema.BUCKETS` index.
DATASET_BUCKETS: dict[str, dict[int, int]] = {}
registry.register(DATASET_BUCKETS, "baidu-ultr")(
  {
    **dict.fromkeys(range(0, 3), HIGH),
    **dict.fromkeys(range(3, 7), MEDIUM),
    **dict.fromkeys(range(7, 10), LOW),
  }
)


class FrequencyCounter:
  """Counts, per query, the sessions and the interactions that issue it, and per topic the
  sessions that touch it.

  >>> from rankjax.data.readers.common import Interaction, Session
  >>> it = lambda q, topic=None: Interaction(q, ["d"], [1], [0], topic=topic)
  >>> c = FrequencyCounter()
  >>> c.add(Session("s1", [it("a", "t1"), it("a", "t1"), it("b")]))
  >>> c.add(Session("s2", [it("a", "t1"), it("c", "t1")]))
  >>> c.frequency("sessions"), c.frequency("interactions"), c.frequency("topic")
  ({'a': 2.0, 'b': 1.0, 'c': 1.0}, {'a': 3.0, 'b': 1.0, 'c': 1.0}, {'a': 2.0, 'c': 2.0})
  """

  def __init__(self):
    self.sessions: collections.Counter[str] = collections.Counter()
    self.interactions: collections.Counter[str] = collections.Counter()
    self.topic_sessions: collections.Counter[str] = collections.Counter()
    self.query_topic: dict[str, str] = {}  # the topic of a query's first interaction, if it has one

  def add(self, session: Session) -> None:
    for it in session.interactions:
      if it.topic is not None and it.query_id not in self.interactions:
        self.query_topic[it.query_id] = it.topic
      self.interactions[it.query_id] += 1
    self.sessions.update(dict.fromkeys((it.query_id for it in session.interactions), 1))
    self.topic_sessions.update({it.topic for it in session.interactions if it.topic is not None})

  def frequency(self, by: str = "sessions") -> dict[str, float]:
    """Query id -> frequency, counted as `FREQ_BY[by]` counts (`registry.UnknownName` if no
    count has that name)."""
    counts = registry.lookup(FREQ_BY, by, "query frequency count")(self)
    return {q: float(n) for q, n in counts.items()}


# How a query's frequency is counted, by name: a function (counter) -> {query id: count}, entered
# with `registry.register` where it is defined. `rankjax data prepare --freq-by` offers each.
FREQ_BY: dict[str, Callable[[FrequencyCounter], Mapping[str, float]]] = {}


@registry.register(FREQ_BY, "sessions")
def _sessions(counter: FrequencyCounter) -> Mapping[str, float]:
  """The sessions that issue the query (a re-issue within a session counts once)."""
  return counter.sessions


@registry.register(FREQ_BY, "interactions")
def _interactions(counter: FrequencyCounter) -> Mapping[str, float]:
  """Every issue of the query."""
  return counter.interactions


@registry.register(FREQ_BY, "topic")
def _topic(counter: FrequencyCounter) -> Mapping[str, float]:
  """The sessions of the query's topic (the topic of its first interaction); queries without a
  topic have none. A log without topics is an error, not a log of unknown frequencies."""
  if not counter.topic_sessions:
    raise ValueError("the log has no topics to count sessions by")
  return {q: counter.topic_sessions[t] for q, t in counter.query_topic.items()}


def query_frequency(sessions: Iterable[Session], by: str = "sessions") -> dict[str, float]:
  """Query id -> frequency in a stream of sessions (see `FrequencyCounter`)."""
  c = FrequencyCounter()
  for s in sessions:
    c.add(s)
  return c.frequency(by)


def quantile_buckets(
  freq: dict[str, float], quantiles: tuple[float, float] = (1 / 3, 2 / 3)
) -> dict[str, int]:
  """Buckets at frequency quantiles over queries: low <= q_lo < medium <= q_hi < high.

  >>> quantile_buckets({"a": 1, "b": 1, "c": 2, "d": 5, "e": 9, "f": 40})
  {'a': 2, 'b': 2, 'c': 1, 'd': 1, 'e': 0, 'f': 0}
  """
  if not freq:
    return {}
  lo, hi = np.quantile(np.fromiter(freq.values(), float), quantiles)
  return {q: LOW if f <= lo else MEDIUM if f <= hi else HIGH for q, f in freq.items()}


def threshold_buckets(freq: dict[str, float], high: float, medium: float) -> dict[str, int]:
  """High if frequency >= `high`, medium if >= `medium`, else low.

  >>> threshold_buckets({"a": 1, "b": 10, "c": 100}, high=50, medium=5)
  {'a': 2, 'b': 1, 'c': 0}
  """
  if medium > high:
    raise ValueError(f"medium threshold {medium} above high threshold {high}")
  return {q: HIGH if f >= high else MEDIUM if f >= medium else LOW for q, f in freq.items()}


def dataset_buckets(raw: dict[str, int], dataset: str = "baidu-ultr") -> dict[str, int]:
  """A dataset's own bucket ids -> high / medium / low (`DATASET_BUCKETS[dataset]`).

  >>> dataset_buckets({"a": 0, "b": 5, "c": 9})
  {'a': 0, 'b': 1, 'c': 2}
  """
  table = registry.lookup(DATASET_BUCKETS, dataset, "dataset bucket map")
  bad = {q: b for q, b in raw.items() if b not in table}
  if bad:
    raise ValueError(f"{dataset} bucket ids outside {sorted(table)}: {dict(list(bad.items())[:5])}")
  return {q: table[b] for q, b in raw.items()}


def bucket_name(bucket: int) -> str:
  return schema.BUCKETS[bucket] if bucket != schema.UNKNOWN_BUCKET else "unknown"


def bucket_ranges(summary: Mapping[str, Mapping]) -> dict[str, dict]:
  """Bucket name -> {"queries", "min", "max"} (frequencies; None in an empty bucket), from
  `rankjax.data.aggregate.bucket_summary`: what a dataset's metadata keeps and a report shows."""
  return {
    name: {"queries": row["queries"], "min": row["min_frequency"], "max": row["max_frequency"]}
    for name, row in summary.items()
  }


def thin_bucket_warning(
  summary: Mapping[str, Mapping],
  freq: Mapping[str, float],
  method: str,
  alternatives: Sequence[str] = (),
) -> str | None:
  """A warning naming the empty or thin buckets (`THIN_SHARE`, `THIN_QUERIES`) of a
  `rankjax.data.aggregate.bucket_summary`, why they are thin and what to try; None if none is.

  >>> rows = {"high": {"queries": 4}, "medium": {"queries": 0}, "low": {"queries": 376}}
  >>> print(thin_bucket_warning(rows, {f"q{i}": 1.0 if i > 3 else 2.0 for i in range(380)},
  ...                           "quantile", ["--freq-by topic"]))  # doctest: +NORMALIZE_WHITESPACE
  frequency buckets high (4 queries, 1.1%), medium (0 queries) are empty or thin (under 5% of the
  380 queries or under 10), so their metrics mean little. 376 of the 380 queries (98.9%) have the
  same frequency, 1, and a quantile cut never splits one frequency, so they share one bucket
  (queries nearly all issued once, as in TREC Session). Try --freq-by topic.
  """
  total = sum(row["queries"] for row in summary.values())
  thin = {
    name: row["queries"]
    for name, row in summary.items()
    if name in schema.BUCKETS and row["queries"] < max(THIN_SHARE * total, THIN_QUERIES)
  }
  if not thin or not total:
    return None
  names = ", ".join(
    f"{name} ({n} queries{f', {n / total:.1%}' if n else ''})" for name, n in thin.items()
  )
  text = (
    f"frequency buckets {names} are empty or thin (under {THIN_SHARE:.0%} of the {total:,} "
    f"queries or under {THIN_QUERIES}), so their metrics mean little."
  )
  if freq and method in ("quantile", "threshold"):  # buckets cut from these frequencies
    value, count = collections.Counter(freq.values()).most_common(1)[0]
    if count > total / 2:
      text += (
        f" {count:,} of the {total:,} queries ({count / total:.1%}) have the same frequency, "
        f"{value:g}"
      )
      if method == "quantile":
        text += ", and a quantile cut never splits one frequency, so they share one bucket"
      if value == 1:
        text += " (queries nearly all issued once, as in TREC Session)"
      text += "."
  if alternatives:
    text += f" Try {' or '.join(alternatives)}."
  elif method in ("quantile", "threshold"):
    text += " Try thresholds that fit: --buckets threshold --high H --medium M."
  return text
