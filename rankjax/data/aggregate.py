"""Per (query, document) click statistics from a session stream, and `RankingList`s from them.

`ClickAggregator` streams sessions once and keeps, for each (query, document): impressions and
clicks by shown position, total dwell over clicks with a known dwell, how often it got the last
click of an interaction, and the human label and text where the log has them; per document across
queries, impressions and clicks (the global CTR); per query, its frequency counts
(`frequency.FrequencyCounter`), text, topic and the dataset's own bucket.

`to_ranking_lists` turns them into one `schema.RankingList` per query:

- doc_ids in order of mean shown position; positions = each document's most frequent position;
- labels["click"] = CTR = clicks / impressions; labels["human"] where the log carries labels;
- query_freq and bucket from the chosen frequency and bucketing;
- extras: impressions, clicks, ctr, global_ctr, mean_dwell (0 where no dwell was logged),
  last_click_rate (last clicks / impressions), mean_position.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from rankjax import registry
from rankjax.data import frequency, schema
from rankjax.data.readers.common import Session

EXTRAS = (
  "impressions",
  "clicks",
  "ctr",
  "global_ctr",
  "mean_dwell",
  "last_click_rate",
  "mean_position",
)


@dataclasses.dataclass
class PairStats:
  """Click statistics of one (query, document) pair."""

  impressions_by_pos: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  clicks_by_pos: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  dwell: float = 0.0  # summed over clicks with a logged dwell
  dwell_clicks: int = 0
  last_clicks: int = 0
  label: float = math.nan
  text: str | None = None

  def add_showing(self, pos: int, clicks: int, dwell: float, last: bool) -> None:
    """One showing of the pair: at `pos` (0: not shown in a known order), its clicks, their dwell
    (NaN: not logged) and whether it holds its page's last click. The in-process aggregator and
    Beam's combiner both count with it."""
    self.impressions_by_pos[pos] += 1
    if clicks:
      self.clicks_by_pos[pos] += clicks
    if not math.isnan(dwell):
      self.dwell += dwell
      self.dwell_clicks += clicks
    self.last_clicks += last

  @property
  def impressions(self) -> int:
    return sum(self.impressions_by_pos.values())

  @property
  def clicks(self) -> int:
    return sum(self.clicks_by_pos.values())

  @property
  def ctr(self) -> float:
    n = self.impressions
    return self.clicks / n if n else 0.0

  @property
  def mean_position(self) -> float:
    n = self.impressions
    return sum(p * c for p, c in self.impressions_by_pos.items()) / n if n else 0.0

  @property
  def mode_position(self) -> int:
    return max(self.impressions_by_pos.items(), key=lambda pc: (pc[1], -pc[0]))[0]

  @property
  def mean_dwell(self) -> float:
    return self.dwell / self.dwell_clicks if self.dwell_clicks else 0.0


@dataclasses.dataclass
class QueryInfo:
  text: str | None = None
  topic: str | None = None
  dataset_bucket: int | None = None
  shown: bool = True


class ClickAggregator:
  """Streams sessions into per-(query, document) statistics.

  >>> from rankjax.data.readers.common import Interaction, Session
  >>> agg = ClickAggregator()
  >>> agg.add(Session("s1", [Interaction("q", ["a", "b"], [1, 2], [0, 1], click_ranks=[2])]))
  >>> agg.add(Session("s2", [Interaction("q", ["b", "a"], [1, 2], [1, 0], click_ranks=[1])]))
  >>> p = agg.pairs["q"]["b"]
  >>> dict(p.impressions_by_pos), dict(p.clicks_by_pos), p.ctr, p.last_clicks
  ({2: 1, 1: 1}, {2: 1, 1: 1}, 1.0, 2)
  """

  def __init__(self):
    self.pairs: dict[str, dict[str, PairStats]] = collections.defaultdict(dict)
    self.queries: dict[str, QueryInfo] = {}
    self.doc_impressions: collections.Counter[str] = collections.Counter()
    self.doc_clicks: collections.Counter[str] = collections.Counter()
    self.freq = frequency.FrequencyCounter()
    self.conflicts: collections.Counter[str] = collections.Counter()  # e.g. one query, two topics

  def add(self, session: Session) -> None:
    self.freq.add(session)
    for it in session.interactions:
      info = self.queries.get(it.query_id)
      if info is None:
        info = self.queries[it.query_id] = QueryInfo(it.query, it.topic, it.freq_bucket, it.shown)
      elif it.topic is not None and info.topic is not None and it.topic != info.topic:
        self.conflicts["query_in_several_topics"] += 1
      docs = self.pairs[it.query_id]
      last = it.click_ranks[-1] if it.click_ranks else None
      for j, d in enumerate(it.doc_ids):
        p = docs.get(d)
        if p is None:
          p = docs[d] = PairStats()
        p.add_showing(
          it.ranks[j] if it.shown else 0,
          it.clicks[j],
          math.nan if it.dwell is None else it.dwell[j],
          last is not None and it.ranks[j] == last,
        )
        if it.labels is not None and not math.isnan(it.labels[j]):
          p.label = it.labels[j]
        if p.text is None and it.doc_texts is not None and it.doc_texts[j]:
          p.text = it.doc_texts[j]
        self.doc_impressions[d] += 1
        self.doc_clicks[d] += it.clicks[j]

  def add_all(self, sessions: Iterable[Session]) -> ClickAggregator:
    for s in sessions:
      self.add(s)
    return self

  def position_totals(self) -> dict[int, tuple[int, int]]:
    """Shown position -> (impressions, clicks) over the whole log (the naive CTR by position)."""
    out: dict[int, list[int]] = collections.defaultdict(lambda: [0, 0])
    for docs in self.pairs.values():
      for p in docs.values():
        for pos, n in p.impressions_by_pos.items():
          out[pos][0] += n
        for pos, n in p.clicks_by_pos.items():
          out[pos][1] += n
    return {pos: (i, c) for pos, (i, c) in sorted(out.items())}

  def query_totals(self, qid: str) -> tuple[int, int]:
    """(impressions, clicks) of one query's documents."""
    docs = self.pairs[qid].values()
    return sum(p.impressions for p in docs), sum(p.clicks for p in docs)

  def labelled_queries(self) -> list[str]:
    """The queries with a human label on at least one document, in first-seen order."""
    return [
      q for q, docs in self.pairs.items() if any(not math.isnan(p.label) for p in docs.values())
    ]


@dataclasses.dataclass
class QueryTable:
  """The per-query view of a log that `rankjax.data.plan` decides on, without the pairs: what a
  `ClickAggregator` offers per query, gathered from parallel combines (the Beam pipeline,
  `rankjax.data.beam_prepare`) in memory proportional to the queries, not the sessions or pairs.

  Attributes:
    queries: query id -> its `QueryInfo`, in first-seen order (the order `ClickAggregator` keeps).
    freq: the query frequency counts.
    totals: query id -> (impressions, clicks) over its documents.
    labelled: the queries with a human label on at least one document.
    conflicts: counts of inconsistencies, as `ClickAggregator.conflicts`.
  """

  queries: dict[str, QueryInfo]
  freq: frequency.FrequencyCounter
  totals: dict[str, tuple[int, int]]
  labelled: set[str]
  conflicts: collections.Counter

  def query_totals(self, qid: str) -> tuple[int, int]:
    return self.totals[qid]

  def labelled_queries(self) -> list[str]:
    return [q for q in self.queries if q in self.labelled]


@dataclasses.dataclass(frozen=True)
class BucketMethod:
  """How queries get their frequency bucket.

  Attributes:
    assign: (aggregator, query id -> frequency, **options) -> query id -> bucket index.
    options: the keyword options `assign` needs (`rankjax data prepare` has a flag of each name).
  """

  assign: Callable[..., dict[str, int]]
  options: tuple[str, ...] = ()


# name -> BucketMethod, each entered by `bucket_method` where its `assign` is defined.
BUCKET_METHODS: dict[str, BucketMethod] = {}


def bucket_method(name: str, *options: str):
  """A decorator registering `assign` in `BUCKET_METHODS` as `name`, needing `options`."""

  def add(assign):
    registry.register(BUCKET_METHODS, name)(BucketMethod(assign, options))
    return assign

  return add


@bucket_method("quantile")
def _quantile(agg: ClickAggregator, freq: dict[str, float], **kw) -> dict[str, int]:
  """`frequency.quantile_buckets` of the frequencies (kw: quantiles)."""
  del agg  # the frequencies say it all
  return frequency.quantile_buckets(freq, **kw)


@bucket_method("threshold", "high", "medium")
def _threshold(agg: ClickAggregator, freq: dict[str, float], **kw) -> dict[str, int]:
  """`frequency.threshold_buckets` of the frequencies at thresholds high and medium."""
  del agg
  return frequency.threshold_buckets(freq, **kw)


@bucket_method("dataset", "dataset")
def _dataset(agg: ClickAggregator, freq: dict[str, float], **kw) -> dict[str, int]:
  """The log's own bucket ids, mapped by `frequency.dataset_buckets` (kw: dataset, its name)."""
  del freq  # the log's buckets, not the counted frequencies
  raw = {q: i.dataset_bucket for q, i in agg.queries.items() if i.dataset_bucket is not None}
  return frequency.dataset_buckets(raw, **kw)


def buckets_for(
  agg: ClickAggregator | QueryTable, freq: dict[str, float], method: str = "quantile", **kw
) -> dict[str, int]:
  """Query -> bucket by the method registered as `method` (`BUCKET_METHODS`), `kw` its options:
  "quantile", "threshold" (high, medium), "dataset" (dataset)."""
  return registry.lookup(BUCKET_METHODS, method, "bucket method").assign(agg, freq, **kw)


def bucket_summary(
  agg: ClickAggregator | QueryTable, buckets: dict[str, int], freq: dict[str, float]
) -> dict[str, dict]:
  """Per bucket name: queries, their smallest and largest frequency (None in an empty bucket),
  summed query frequency, impressions and clicks."""
  out = {
    name: {
      "queries": 0,
      "min_frequency": None,
      "max_frequency": None,
      "frequency": 0.0,
      "impressions": 0,
      "clicks": 0,
    }
    for name in (*schema.BUCKETS, "unknown")
  }
  for q in agg.queries:
    row = out[frequency.bucket_name(buckets.get(q, schema.UNKNOWN_BUCKET))]
    impressions, clicks = agg.query_totals(q)
    f = freq.get(q, 0.0)
    row["queries"] += 1
    row["min_frequency"] = f if row["min_frequency"] is None else min(row["min_frequency"], f)
    row["max_frequency"] = f if row["max_frequency"] is None else max(row["max_frequency"], f)
    row["frequency"] += f
    row["impressions"] += impressions
    row["clicks"] += clicks
  return {k: v for k, v in out.items() if k != "unknown" or v["queries"]}


def to_ranking_list(
  agg: ClickAggregator,
  qid: str,
  *,
  query_freq: float = 0.0,
  bucket: int = schema.UNKNOWN_BUCKET,
  with_human: bool = False,
  with_texts: bool = False,
) -> schema.RankingList:
  """One query's aggregated list (see the module docstring for its fields).

  `with_human` / `with_texts` give every list a "human" label (all NaN if none) and doc_texts
  ("" if none), so that all lists of a dataset have the same fields.
  """
  return ranking_list(
    qid,
    agg.pairs[qid],
    agg.queries[qid],
    {d: agg.doc_clicks[d] / max(agg.doc_impressions[d], 1) for d in agg.pairs[qid]},
    query_freq=query_freq,
    bucket=bucket,
    with_human=with_human,
    with_texts=with_texts,
  )


def ranking_list(
  qid: str,
  docs: dict[str, PairStats],
  info: QueryInfo,
  global_ctr: dict[str, float],
  *,
  query_freq: float,
  bucket: int,
  with_human: bool,
  with_texts: bool,
) -> schema.RankingList:
  """One query's list from its pairs' statistics, its info and its documents' CTR over all
  queries (`to_ranking_list` on an aggregator; the Beam pipeline on its joined rows)."""
  order = sorted(docs, key=lambda d: (docs[d].mean_position, d))
  stats = [docs[d] for d in order]
  impressions = np.array([p.impressions for p in stats], np.float32)
  clicks = np.array([p.clicks for p in stats], np.float32)
  ctr = clicks / np.maximum(impressions, 1)
  labels = {"click": ctr}
  human = np.array([p.label for p in stats], np.float32)
  if with_human or np.isfinite(human).any():
    labels["human"] = human
  extras = {
    "impressions": impressions,
    "clicks": clicks,
    "ctr": ctr,
    "global_ctr": np.array([global_ctr[d] for d in order], np.float32),
    "mean_dwell": np.array([p.mean_dwell for p in stats], np.float32),
    "last_click_rate": np.array([p.last_clicks for p in stats], np.float32)
    / np.maximum(impressions, 1),
    "mean_position": np.array([p.mean_position for p in stats], np.float32),
  }
  texts = [p.text or "" for p in stats]
  return schema.RankingList(
    qid=qid,
    doc_ids=order,
    labels=labels,
    positions=np.array([p.mode_position for p in stats], np.int32),
    query_freq=float(query_freq),
    bucket=bucket,
    query=info.text,
    doc_texts=texts if with_texts or any(texts) else None,
    extras=extras,
  )


def to_ranking_lists(
  agg: ClickAggregator,
  *,
  freq_by: str = "sessions",
  freq: dict[str, float] | None = None,
  bucket_method: str = "quantile",
  keep: Callable[[str], bool] | None = None,
  **bucket_kw,
) -> Iterator[schema.RankingList]:
  """One `RankingList` per query (in first-seen order), with frequency and bucket attached.

  Args:
    agg: the aggregated log.
    freq_by: how query frequency is counted (`frequency.FREQ_BY`).
    freq: query frequencies to use instead (e.g. the Sogou query file's session counts); a query
      missing from it has frequency 0.
    bucket_method: a name in `BUCKET_METHODS` ("quantile", "threshold", "dataset"); `bucket_kw`
      are its options (see `buckets_for`).
    keep: optional predicate on query ids (e.g. a train / test split).

  Every list gets the same fields: a "human" label if any pair in the log has one, doc_texts if
  any document has a text.
  """
  if freq is None:
    freq = agg.freq.frequency(freq_by)
  buckets = buckets_for(agg, freq, bucket_method, **bucket_kw)
  pairs = [p for docs in agg.pairs.values() for p in docs.values()]
  with_human = any(not math.isnan(p.label) for p in pairs)
  with_texts = any(p.text for p in pairs)
  for qid in agg.pairs:
    if keep is None or keep(qid):
      yield to_ranking_list(
        agg,
        qid,
        query_freq=freq.get(qid, 0.0),
        bucket=buckets.get(qid, schema.UNKNOWN_BUCKET),
        with_human=with_human,
        with_texts=with_texts,
      )
