"""`rankjax data prepare --beam`: the preparation as an Apache Beam pipeline.

The same prepared dataset as the in-process path (`rankjax.cli.data`), in stages that a Beam runner
spreads over workers (in-process: the DirectRunner's multi-process mode; Dataflow, Flink or Spark
through their standard pipeline options, `pipeline_options`):

1. Read: one element per log file; `_ReadFile` streams it through the format's reader (constant
   memory), counts skips as Beam counters (namespace `COUNTERS`, `skipped:<reason>`) and emits the
   file's `ReadSummary`, merged in file order into the summary `prepare` reports as today.
2. Combine: per (query, document) the pair statistics (`_PairCombine`, impressions and clicks by
   position), per query its counts and first interaction (`_QueryCombine`), per topic the sessions
   touching it, per document its impressions and clicks over all queries (the global CTR).
3. Decide: the per-query rows gathered into one `aggregate.QueryTable` (memory in proportion to
   the queries, not the sessions or pairs), on which `plan.decide` draws frequencies, buckets and
   splits with the in-process path's code.
4. Build: per query its list (`aggregate.ranking_list`), the documents' global CTR, the LLM
   labels and the feature rows joined to it, its (query, document) pairs tokenized for a
   cross-encoder if asked (each worker loads the tokenizer once; its counts are Beam counters),
   written as an intermediate per split.
5. Write: tfds's Beam builder (`store.write_dataset_beam`) writes the array_record shards and
   metadata `store.open_split` and grain read on every host.

Stages 1-4 are one pipeline, 5 another: what a dataset stores (`store.layout_of` of the first
training list) must be known before tfds's writer is built. "First" (the first-seen query, the
last human label of a pair, its first text) follows (file, session, interaction, result) order, so
the pipeline's lists equal the in-process path's whatever order the runner sees records in.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import pickle
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options import pipeline_options as po

from rankjax.data import aggregate, frequency, plan, readers, schema, store, svmlight, text
from rankjax.errors import UserError

# The namespace of the pipeline's Beam counters: sessions read and records skipped, by reason.
COUNTERS = "rankjax.read"
# Per runner, the option flags `pipeline_options` documents in its dry run and the README shows.
RUNNER_EXAMPLES = {
  "DirectRunner": ["direct_running_mode=multi_processing", "direct_num_workers=2"],
  "DataflowRunner": [
    "project=my-project",
    "region=europe-west4",
    "temp_location=gs://my-bucket/tmp",
    "num_workers=50",
    "sdk_container_image=europe-docker.pkg.dev/my-project/rankjax/beam:latest",
  ],
  "FlinkRunner": ["flink_master=flink-jobmanager:8081", "parallelism=64"],
  "SparkRunner": ["spark_master_url=spark://spark-master:7077"],
}


def pipeline_options(runner: str, options: Sequence[str] = ()) -> po.PipelineOptions:
  """Beam pipeline options for `runner` from `KEY=VALUE` strings (Beam's own flag names, e.g.
  `project=...` for Dataflow, `flink_master=...`). The DirectRunner defaults to its
  multi-process mode on every core, so one machine uses all of its cores; an option Beam does not
  know is an error naming it."""
  flags = [f"--runner={runner}"]
  for option in options:
    key, eq, value = option.partition("=")
    if not eq or not key:
      raise UserError(f"--beam-option {option!r}: give KEY=VALUE, e.g. num_workers=8")
    flags.append(f"--{key.lstrip('-')}={value}")
  if runner in ("DirectRunner", "direct"):
    given = {f.split("=")[0] for f in flags}
    defaults = {"--direct_running_mode": "multi_processing", "--direct_num_workers": "0"}
    flags += [f"{k}={v}" for k, v in defaults.items() if k not in given]
  out = po.PipelineOptions(flags)
  unknown = [f for f in out.get_all_options(retain_unknown_options=True) if f not in _known()]
  if unknown:
    raise UserError(f"--beam-option: Beam has no pipeline option {unknown}")
  return out


def _known() -> set[str]:
  return set(po.PipelineOptions([]).get_all_options())


def dry_run(options: po.PipelineOptions) -> dict:
  """The options a run would use, those set (not Beam's defaults) by name."""
  return options.get_all_options(drop_default=True)


# -- 1. Read -------------------------------------------------------------------------------------


class _ReadFile(beam.DoFn):
  """(file index, path) -> ((file index, session index), Session)s, and on the `SUMMARY` output
  (file index, the file's ReadSummary)."""

  SUMMARY = "summary"

  def __init__(self, fmt: str, options: Mapping):
    self.fmt, self.options = fmt, dict(options)

  def process(self, element):
    index, path = element
    summary = readers.ReadSummary()
    for n, session in enumerate(readers.read_sessions(self.fmt, [path], summary, **self.options)):
      yield (index, n), session
    beam.metrics.Metrics.counter(COUNTERS, "sessions").inc(summary.sessions)
    for reason, count in summary.reasons.items():
      beam.metrics.Metrics.counter(COUNTERS, f"skipped:{reason}").inc(count)
    yield beam.pvalue.TaggedOutput(self.SUMMARY, (index, summary))


def _merge_summaries(summaries: Iterable[tuple[int, readers.ReadSummary]]) -> readers.ReadSummary:
  """The files' summaries as one, as reading them one after another counts them."""
  out = readers.ReadSummary()
  for _, s in sorted(summaries, key=lambda item: item[0]):
    for field in ("files", "bytes", "sessions", "interactions", "results", "clicks"):
      setattr(out, field, getattr(out, field) + getattr(s, field))
    out.queries |= s.queries
    out.absorb(s)
  return out


# -- 2. Combine ----------------------------------------------------------------------------------


@dataclasses.dataclass
class _Pair:
  """A pair's statistics while combining, with where its label and text were read (the last
  label and the first text in log order win, as `ClickAggregator` keeps them)."""

  stats: aggregate.PairStats = dataclasses.field(default_factory=aggregate.PairStats)
  label_at: tuple = ()
  text_at: tuple = ()


def _pair_rows(keyed):
  """((query, doc), one shown result's row) per result of a session."""
  (f, n), session = keyed
  for i, it in enumerate(session.interactions):
    last = it.click_ranks[-1] if it.click_ranks else None
    for j, d in enumerate(it.doc_ids):
      yield (
        (it.query_id, d),
        (
          (f, n, i, j),
          it.ranks[j] if it.shown else 0,
          it.clicks[j],
          math.nan if it.dwell is None else it.dwell[j],
          last is not None and it.ranks[j] == last,
          math.nan if it.labels is None else it.labels[j],
          it.doc_texts[j] if it.doc_texts is not None else None,
        ),
      )


class _PairCombine(beam.CombineFn):
  """Result rows of one (query, document) -> its `aggregate.PairStats`."""

  def create_accumulator(self):
    return _Pair()

  def add_input(self, acc: _Pair, row):
    at, pos, clicks, dwell, last, label, text = row
    p = acc.stats
    p.add_showing(pos, clicks, dwell, last)
    if not math.isnan(label) and at > acc.label_at:
      p.label, acc.label_at = label, at
    if text and (not acc.text_at or at < acc.text_at):
      p.text, acc.text_at = text, at
    return acc

  def merge_accumulators(self, accs):
    out = _Pair()
    p = out.stats
    for acc in accs:
      q = acc.stats
      p.impressions_by_pos.update(q.impressions_by_pos)
      p.clicks_by_pos.update(q.clicks_by_pos)
      p.dwell += q.dwell
      p.dwell_clicks += q.dwell_clicks
      p.last_clicks += q.last_clicks
      if acc.label_at and acc.label_at > out.label_at:
        p.label, out.label_at = q.label, acc.label_at
      if acc.text_at and (not out.text_at or acc.text_at < out.text_at):
        p.text, out.text_at = q.text, acc.text_at
    return out

  def extract_output(self, acc: _Pair) -> aggregate.PairStats:
    return acc.stats


@dataclasses.dataclass
class _Query:
  """One query's counts while combining: sessions and interactions issuing it, its first
  interaction (where, and its `QueryInfo` fields) and the topics of its interactions."""

  sessions: int = 0
  interactions: int = 0
  first_at: tuple = ()
  info: tuple = ()
  topics: collections.Counter = dataclasses.field(default_factory=collections.Counter)


def _query_rows(keyed):
  """(query, `_Query`) per query of a session."""
  (f, n), session = keyed
  rows: dict[str, _Query] = {}
  for i, it in enumerate(session.interactions):
    row = rows.get(it.query_id)
    if row is None:
      info = (it.query, it.topic, it.freq_bucket, it.shown)
      row = rows[it.query_id] = _Query(1, 0, (f, n, i), info)
    row.interactions += 1
    if it.topic is not None:
      row.topics[it.topic] += 1
  return rows.items()


class _QueryCombine(beam.CombineFn):
  def create_accumulator(self):
    return _Query()

  def add_input(self, acc, row):
    return self.merge_accumulators([acc, row])

  def merge_accumulators(self, accs):
    out = _Query()
    for acc in accs:
      out.sessions += acc.sessions
      out.interactions += acc.interactions
      out.topics.update(acc.topics)
      if acc.first_at and (not out.first_at or acc.first_at < out.first_at):
        out.first_at, out.info = acc.first_at, acc.info
    return out

  def extract_output(self, acc):
    return acc


def _session_topics(keyed):
  _, session = keyed
  return [(t, 1) for t in {it.topic for it in session.interactions if it.topic is not None}]


def _add(a, b):
  return tuple(x + y for x, y in zip(a, b))


# -- 3. Decide -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Decided:
  """What the pipeline decided: the plan, or the user error it stopped on, and what the summary
  reports besides the read (position totals, conflicts)."""

  plan: plan.Plan | None
  error: str | None
  first_train: str | None
  queries: int
  position_totals: dict
  conflicts: dict
  flags: dict  # whether any pair has a human label ("human"), a text ("texts")


def _decide(rows, topic_sessions: Mapping, totals: Mapping, options: plan.Options) -> Decided:
  """The `aggregate.QueryTable` of the combined rows, and `plan.decide` on it."""
  rows = sorted(rows, key=lambda kv: kv[1].first_at)
  table = aggregate.QueryTable(
    queries={q: aggregate.QueryInfo(*r.info) for q, r in rows},
    freq=frequency.FrequencyCounter(),
    totals={q: totals[q][:2] for q, _ in rows},
    labelled={q for q, _ in rows if totals[q][2]},
    conflicts=collections.Counter(),
  )
  table.freq.sessions.update({q: r.sessions for q, r in rows})
  table.freq.interactions.update({q: r.interactions for q, r in rows})
  table.freq.topic_sessions.update(topic_sessions)
  table.freq.query_topic.update({q: i.topic for q, i in table.queries.items() if i.topic})
  for q, r in rows:
    topic = table.queries[q].topic
    if topic is not None:
      # the interactions with another topic than its first one's
      table.conflicts["query_in_several_topics"] += sum(r.topics.values()) - r.topics[topic]
  conflicts = {k: v for k, v in table.conflicts.items() if v}
  positions = collections.defaultdict(lambda: [0, 0])
  for t in totals.values():
    for pos, (i, c) in t[4].items():
      positions[pos][0] += i
      positions[pos][1] += c
  common = dict(
    queries=len(rows),
    position_totals={pos: tuple(ic) for pos, ic in sorted(positions.items())},
    conflicts=conflicts,
    flags={
      "human": bool(table.labelled),
      "texts": any(t[3] for t in totals.values()),
    },
  )
  try:
    decided = plan.decide(table, options)
  except UserError as e:  # raised again in the driver, as one line, not as a worker's failure
    return Decided(None, str(e), None, **common)
  train = (q for q in table.queries if decided.split_of[q] == "train")
  return Decided(decided, None, next(train, None), **common)


def _query_totals(kv):
  """(query, (impressions, clicks, labelled, has text, {position: (impressions, clicks)}))."""
  (q, _), p = kv
  by_pos = {pos: (n, p.clicks_by_pos[pos]) for pos, n in p.impressions_by_pos.items()}
  return q, (p.impressions, p.clicks, not math.isnan(p.label), bool(p.text), by_pos)


def _merge_totals(values):
  imp = clicks = 0
  labelled = text = False
  by_pos = collections.defaultdict(lambda: (0, 0))
  for i, c, lab, txt, pos in values:
    imp, clicks, labelled, text = imp + i, clicks + c, labelled or lab, text or txt
    for k, ic in pos.items():
      by_pos[k] = _add(by_pos[k], ic)
  return imp, clicks, labelled, text, dict(by_pos)


# -- 4. Build ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FeatureRows:
  """One query's rows of an svmlight feature file, sparse (`svmlight.Rows`'s layout)."""

  doc_ids: list[str]
  indptr: np.ndarray
  indices: np.ndarray
  values: np.ndarray

  def dense(self, width: int, docs: Sequence[str]) -> tuple[np.ndarray | None, list[str]]:
    """(float32 [len(docs), width] of `docs`' rows, the documents without one)."""
    row_of = {d: k for k, d in enumerate(self.doc_ids)}
    missing = [d for d in docs if d not in row_of]
    if missing:
      return None, missing
    rows = [row_of[d] for d in docs]
    return svmlight.dense_rows(self.indptr, self.indices, self.values, width, rows), []


def feature_rows(rows: svmlight.Rows) -> Iterator[tuple[str, FeatureRows]]:
  """Each query's rows of `rows` (in file order; a document listed twice keeps its last row, as
  the in-process path does)."""
  by_query = collections.defaultdict(list)
  for k, qid in enumerate(rows.qids):
    by_query[qid].append(k)
  for qid, ks in by_query.items():
    spans = [slice(rows.indptr[k], rows.indptr[k + 1]) for k in ks]
    yield (
      qid,
      FeatureRows(
        doc_ids=[rows.doc_ids[k] for k in ks],
        indptr=np.concatenate([[0], np.cumsum([s.stop - s.start for s in spans])]),
        indices=np.concatenate([rows.indices[s] for s in spans]),
        values=np.concatenate([rows.values[s] for s in spans]),
      ),
    )


class _BuildList(beam.DoFn):
  """(query, {"pairs": [(doc, PairStats, global CTR)], "query": [_Query], "llm": [(doc, label)],
  "features": [FeatureRows]}) -> its `RankingList`, tagged with its split; a list with a document
  that has no feature row is tagged `MISSING` instead, with those documents."""

  FIRST = "first"
  MISSING = "missing_features"

  def __init__(
    self,
    llm: bool,
    tokenizer: Callable[[], text.PairTokenizer] | None,
    feature_width: int | None = None,
  ):
    self.llm = llm
    self.feature_width = feature_width
    self.make_tokenizer = tokenizer
    self.tokenizer = None

  def setup(self):
    if self.make_tokenizer is not None:
      self.tokenizer = self.make_tokenizer()

  def process(self, element, decided: Decided):
    qid, joined = element
    (row,) = joined["query"]
    p = decided.plan
    lst = aggregate.ranking_list(
      qid,
      {d: stats for d, stats, _ in joined["pairs"]},
      aggregate.QueryInfo(*row.info),
      {d: ctr for d, _, ctr in joined["pairs"]},
      query_freq=p.freq.get(qid, 0.0),
      bucket=p.buckets.get(qid, schema.UNKNOWN_BUCKET),
      with_human=decided.flags["human"],
      with_texts=decided.flags["texts"],
    )
    if self.llm:
      labels = dict(joined["llm"])
      llm = [labels.get(d, math.nan) for d in lst.doc_ids]
      missing = sum(math.isnan(x) for x in llm)
      beam.metrics.Metrics.counter(COUNTERS, "llm_pairs").inc(len(llm))
      beam.metrics.Metrics.counter(COUNTERS, "llm_missing").inc(missing)
      lst = dataclasses.replace(lst, labels={**lst.labels, "llm": np.array(llm, np.float32)})
    if self.feature_width is not None:
      rows = joined["features"]
      features, missing = (
        rows[0].dense(self.feature_width, lst.doc_ids) if rows else (None, lst.doc_ids)
      )
      if missing:
        yield beam.pvalue.TaggedOutput(self.MISSING, (qid, missing[:5]))
        return
      lst = dataclasses.replace(lst, features=features)
    if self.tokenizer is not None:
      self.tokenizer.counts.clear()
      lst = self.tokenizer(lst)
      for name, n in self.tokenizer.counts.items():
        beam.metrics.Metrics.counter(COUNTERS, f"tokens_{name}").inc(n)
    if qid == decided.first_train:
      yield beam.pvalue.TaggedOutput(self.FIRST, lst)
    yield beam.pvalue.TaggedOutput(p.split_of[qid], lst)


def _with_global_ctr(element):
  """(doc, {"pairs": [(query, PairStats)], "doc": [(impressions, clicks)]}) ->
  (query, (doc, PairStats, the doc's CTR over all queries))."""
  doc, joined = element
  ((impressions, clicks),) = joined["doc"]
  ctr = clicks / max(impressions, 1)
  for qid, stats in joined["pairs"]:
    yield qid, (doc, stats, ctr)


# -- The pipelines --------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
  """What `prepare` returns: the dataset, the plan, and what the summary reports."""

  path: object
  decided: Decided
  read: readers.ReadSummary
  counters: dict[str, int]


def prepare(
  fmt: str,
  files: Sequence[str],
  reader_options: Mapping,
  options: plan.Options,
  *,
  directory: str,
  name: str,
  description: str,
  beam_options: po.PipelineOptions,
  llm_labels: Callable[[], Mapping[tuple[str, str], float]] | None = None,
  tokenizer: Callable[[], text.PairTokenizer] | None = None,
  features: tuple[int, Iterable[tuple[str, FeatureRows]]] | None = None,
  check_read: Callable[[readers.ReadSummary], None] = lambda summary: None,
) -> Result:
  """Prepares the dataset `<directory>/<name>/1.0.0` from log `files` of format `fmt` on Beam.

  Args:
    llm_labels: returns (query, doc) -> label, the "llm" source (called on a worker).
    tokenizer: returns the `text.PairTokenizer` that stores cross-encoder token arrays (called
      once on each worker: on a remote runner its files must be on the workers).
    features: (feature count, (query, its `FeatureRows`) per query) of an svmlight file read by
      the caller, joined to each list by query.
    check_read: called with the merged read summary before writing (e.g. the wrong-format check).
  Raises:
    UserError: a decision that cannot be made (e.g. `--split-by topic` of a log without topics).
    MissingFeatures: a listed document without a feature row.
  """
  work = f"{directory.rstrip('/')}/.beam-{name}-{uuid.uuid4().hex[:8]}"
  with beam.Pipeline(options=beam_options) as p:
    read = (
      p
      | "files" >> beam.Create(list(enumerate(files)))
      | "spread" >> beam.Reshuffle()
      | "read"
      >> beam.ParDo(_ReadFile(fmt, reader_options)).with_outputs(_ReadFile.SUMMARY, main="s")
    )
    sessions = read.s
    _ = (
      read[_ReadFile.SUMMARY]
      | "summaries" >> beam.combiners.ToList()
      | "merge" >> beam.Map(lambda s: _write(f"{work}/read.pkl", _merge_summaries(s)))
    )
    pairs = (
      sessions
      | "pair rows" >> beam.FlatMap(_pair_rows)
      | "pairs" >> beam.CombinePerKey(_PairCombine())
    )
    queries = (
      sessions
      | "query rows" >> beam.FlatMap(_query_rows)
      | "queries" >> beam.CombinePerKey(_QueryCombine())
    )
    topics = (
      sessions | "topic rows" >> beam.FlatMap(_session_topics) | "topics" >> beam.CombinePerKey(sum)
    )
    totals = (
      pairs
      | "totals rows" >> beam.Map(_query_totals)
      | "totals" >> beam.CombinePerKey(_merge_totals)
    )
    decided = (
      queries
      | "table" >> beam.combiners.ToList()
      | "decide"
      >> beam.Map(
        _decide,
        beam.pvalue.AsDict(topics),
        beam.pvalue.AsDict(totals),
        options,
      )
    )
    _ = decided | "keep plan" >> beam.Map(lambda d: _write(f"{work}/decided.pkl", d))
    docs = (
      pairs
      | "doc rows" >> beam.Map(lambda kv: (kv[0][1], (kv[1].impressions, kv[1].clicks)))
      | "docs" >> beam.CombinePerKey(_sum_pairs)
    )
    by_doc = pairs | "by doc" >> beam.Map(lambda kv: (kv[0][1], (kv[0][0], kv[1])))
    with_ctr = (
      {"pairs": by_doc, "doc": docs}
      | "join docs" >> beam.CoGroupByKey()
      | "global ctr" >> beam.FlatMap(_with_global_ctr)
    )
    joined = {"pairs": with_ctr, "query": queries}
    if llm_labels is not None:
      joined["llm"] = (
        p
        | "llm store" >> beam.Create([None])
        | "llm labels" >> beam.FlatMap(lambda _: llm_labels().items())
        | "llm by query" >> beam.Map(lambda kv: (kv[0][0], (kv[0][1], kv[1])))
      )
    if features is not None:
      joined["features"] = p | "feature rows" >> beam.Create(list(features[1]))
    build = _BuildList(llm_labels is not None, tokenizer, None if features is None else features[0])
    built = (
      joined
      | "join query" >> beam.CoGroupByKey()
      | "lists"
      >> beam.ParDo(build, beam.pvalue.AsSingleton(decided)).with_outputs(
        _BuildList.FIRST, _BuildList.MISSING, *_SPLITS
      )
    )
    _ = built[_BuildList.FIRST] | "keep first" >> beam.Map(lambda l: _write(f"{work}/first.pkl", l))
    _ = (
      built[_BuildList.MISSING]
      | "missing" >> beam.combiners.Top.Smallest(1)
      | "keep missing" >> beam.Map(lambda m: _write(f"{work}/missing.pkl", m))
    )
    for split in _SPLITS:
      _ = (
        built[split]
        | f"pickle {split}" >> beam.Map(pickle.dumps)
        | f"keep {split}" >> beam.io.WriteToTFRecord(f"{work}/{split}", file_name_suffix=".pkl")
      )
  decided = _read(f"{work}/decided.pkl")
  summary = _read(f"{work}/read.pkl")
  counters = _counters(p.result if hasattr(p, "result") else None)
  try:
    check_read(summary)
    missing = _read(f"{work}/missing.pkl")
    if missing:
      raise MissingFeatures(*missing[0])
    if decided.error:
      raise UserError(decided.error)
    if decided.first_train is None:
      raise UserError("no training list: every query went to a held-out split")
    first = _read(f"{work}/first.pkl")
    path = store.write_dataset_beam(
      directory,
      name=name,
      splits={s: _reader(f"{work}/{s}") for s in plan.split_names(decided.plan.sizes)},
      layout=store.layout_of(first),
      beam_options=beam_options,
      description=description,
      metadata={"bucket_ranges": frequency.bucket_ranges(decided.plan.bucket_rows)},
    )
  finally:
    FileSystems.delete([work])
  return Result(path, decided, summary, counters)


_SPLITS = ("train", "validation", "test")


class MissingFeatures(UserError):
  """A listed document has no row in the feature file (the first such query, by id)."""

  def __init__(self, qid: str, docs: list[str]):
    super().__init__(qid, docs)
    self.qid, self.docs = qid, docs


def _sum_pairs(values):
  total = (0, 0)
  for v in values:
    total = _add(total, v)
  return total


def _reader(prefix: str):
  def make(pipeline, split):
    return (
      pipeline
      | f"read {split}" >> beam.io.ReadFromTFRecord(f"{prefix}-*.pkl")
      | f"unpickle {split}" >> beam.Map(pickle.loads)
    )

  return make


def _write(path: str, obj) -> None:
  with FileSystems.create(path) as f:
    f.write(pickle.dumps(obj))


def _read(path: str):
  with FileSystems.open(path) as f:
    return pickle.loads(f.read())


def _counters(result) -> dict[str, int]:
  if result is None:
    return {}
  metrics = result.metrics().query(MetricsFilter().with_namespace(COUNTERS))["counters"]
  return {m.key.metric.name: m.committed for m in metrics}
