"""TREC run and qrels files through ranx, rankjax's metrics on any run, and runs compared.

Runs are written with `ranx.Run.save` (scores unrounded: no ties that the model did not make),
a chunk of queries at a time, so a run of any size is written in constant memory. `read_run` reads
any system's TREC run (BM25, LightGBM, ...), `evaluate_run` scores it with rankjax's metrics
(per query-frequency bucket when the queries have buckets), and `compare` puts several runs side
by side with ranx's paired statistical tests.

Metrics here are rankjax's (`rankjax.ranking.metrics`), as training evaluates: over the documents
of a query that the run ranks and the qrels judge (unjudged ones are left out, as unlabelled items
are in training's evaluation). ranx's, in `compare`, count unjudged documents as not relevant and
judged documents the run misses too, as trec_eval does.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rankjax.data import schema
from rankjax.data.readers.errors import InputError
from rankjax.ranking import metrics as metrics_lib
from rankjax.serve import batching

RUN_NAME = "rankjax"


def _ranx():
  import ranx  # pylint: disable=g-import-not-at-top  (numba: a slow import)

  return ranx


def _run_dict(scored: Iterable) -> dict[str, dict[str, float]]:
  """{qid: {doc: score}} in rank order (ranx keeps the order of ties); duplicates are errors."""
  out = {}
  for s in scored:
    if s.qid in out:
      raise ValueError(f"qid {s.qid!r} appears twice; a run holds one list per query")
    order = np.argsort(s.ranks)
    docs = {str(s.doc_ids[i]): float(s.scores[i]) for i in order}
    if len(docs) != len(s.doc_ids):
      raise ValueError(f"qid {s.qid!r}: a document id appears twice in its list")
    out[s.qid] = docs
  return out


def write_run(
  path: str | os.PathLike, scored: Iterable, *, name: str = RUN_NAME, chunk: int = 1024
) -> int:
  """Writes `scored` (`ranker.Scored`s, streamed) as a TREC run file via ranx; returns the number
  of queries written."""
  ranx = _ranx()
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  seen: set[str] = set()
  with open(path, "w") as out, tempfile.TemporaryDirectory() as tmp:
    part: list = []

    def flush():
      run = _run_dict(part)
      again = seen & set(run)
      if again:
        raise ValueError(f"qid {sorted(again)[0]!r} appears twice; a run holds one list per query")
      seen.update(run)
      ranx.Run(run, name=name).save(f"{tmp}/part.trec", kind="trec")
      out.write(pathlib.Path(f"{tmp}/part.trec").read_text() + "\n")  # ranx ends without one
      part.clear()

    for s in scored:
      part.append(s)
      if len(part) == chunk:
        flush()
    if part:
      flush()
  return len(seen)


def read_run(path: str | os.PathLike):
  """A TREC run file (`qid Q0 doc rank score name`) as a `ranx.Run`, named after the file."""
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"{path}: no such run file")
  try:
    run = _ranx().Run.from_file(str(path), kind="trec")
  except (ValueError, IndexError) as e:  # ranx's parse errors name neither the file nor the line
    raise InputError(
      f"{path}: not a TREC run file (lines `qid Q0 doc rank score name`): {e}"
    ) from None
  run.name = path.stem
  return run


def read_qrels(path: str | os.PathLike):
  """A TREC qrels file (`qid 0 doc grade`) as a `ranx.Qrels`."""
  if not pathlib.Path(path).exists():
    raise FileNotFoundError(f"{path}: no such qrels file")
  return _ranx().Qrels.from_file(str(path), kind="trec")


class Evaluator:
  """rankjax's metrics over padded batches, summed per query-frequency bucket.

  `add(batch, scores)` takes a `batching.batches` batch made with a `label_source`; `results()`
  is {metric spec: {bucket: mean, "count/<bucket>": lists}} as training's evaluation reports.
  """

  def __init__(self, metric_specs: Sequence[str]):
    parsed = {spec: metrics_lib.parse_spec(spec) for spec in metric_specs}

    def stats(scores, labels, where, mask, bucket):
      counted = mask.any(-1) & metrics_lib.has_relevant(labels, where)
      out = {}
      for spec, (name, topn) in parsed.items():
        values = metrics_lib.get_metric(name)(
          scores, labels, where=where, topn=topn, reduce_fn=None
        )
        out[spec] = metrics_lib.bucket_stats(values, bucket, counted)
      return out

    self._stats = jax.jit(stats)
    self._total = None

  def add(self, batch: Mapping[str, np.ndarray], scores: np.ndarray):
    s = self._stats(scores, batch["labels"], batch["where"], batch["mask"], batch["bucket"])
    self._total = s if self._total is None else jax.tree.map(jnp.add, self._total, s)

  def results(self) -> dict[str, dict[str, float]]:
    if self._total is None:
      return {}
    return {spec: metrics_lib.finalize_bucket_stats(s) for spec, s in self._total.items()}


def _lists(run, qrels, buckets: Mapping[str, int] | None) -> Iterator[schema.RankingList]:
  """Each query of `run` as a list: its documents in run order, run scores as extra "score",
  qrels grades as human labels (NaN: unjudged), its bucket from `buckets`."""
  judged = qrels.to_dict()
  for qid, docs in run.to_dict().items():
    grades = judged.get(qid, {})
    ids = list(docs)
    yield schema.RankingList(
      qid=qid,
      doc_ids=ids,
      labels={"human": np.array([grades.get(d, np.nan) for d in ids], np.float32)},
      bucket=(buckets or {}).get(qid, schema.UNKNOWN_BUCKET),
      extras={"score": np.array([docs[d] for d in ids], np.float32)},
    )


def evaluate_run(
  run,
  qrels,
  metric_specs: Sequence[str],
  *,
  buckets: Mapping[str, int] | None = None,
  list_sizes: Sequence[int] = (16, 64, 256),
  max_batch: int = 64,
) -> dict[str, dict[str, float]]:
  """rankjax's metrics of a `ranx.Run` against `ranx.Qrels`, per bucket (`buckets`: qid -> bucket
  id, `schema.BUCKETS`); queries the qrels lack count as lists without a relevant document."""
  evaluator = Evaluator(metric_specs)
  lists = list(_lists(run, qrels, buckets))
  for batch, _ in batching.batches(
    lists,
    max_batch=max_batch,
    list_sizes=list_sizes,
    label_source="human",
    extras=("score",),
  ):
    evaluator.add(batch, batch["score"])
  return evaluator.results()


def dataset_qrels(data_path: str | os.PathLike, split: str) -> tuple[object, dict[str, int]]:
  """(`ranx.Qrels` of a prepared split's human labels, {qid: query-frequency bucket id})."""
  from rankjax.data import store  # pylint: disable=g-import-not-at-top

  records = store.open_split(data_path, split)
  if "human" not in records.layout["sources"]:
    raise ValueError(f"{data_path} split {split!r} has no human labels to judge runs by")
  judged, buckets = {}, {}
  for i in range(len(records)):
    rec = records[i]
    qid = _text(rec["qid"])
    labels = rec["label_human"]
    judged[qid] = {_text(d): int(g) for d, g in zip(rec["doc_ids"], labels) if not np.isnan(g)}
    buckets[qid] = int(rec["bucket"])
  return _ranx().Qrels({q: d for q, d in judged.items() if d}), buckets


def _text(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


def _restrict(ranx, run_or_qrels, qids: set[str], kind: str):
  kept = {q: d for q, d in run_or_qrels.to_dict().items() if q in qids and d}
  return ranx.Run(kept, name=run_or_qrels.name) if kind == "run" else ranx.Qrels(kept)


def compare(
  runs: Sequence,
  qrels,
  *,
  metric_specs: Sequence[str],
  ranx_metrics: Sequence[str],
  buckets: Mapping[str, int] | None = None,
  stat_test: str = "student",
  max_p: float = 0.05,
) -> str:
  """Markdown: rankjax's metrics of each run per bucket, then ranx's comparison (`ranx.compare`,
  paired `stat_test`, significance at `max_p`) over all queries and, with `buckets`, per bucket.
  """
  ranx = _ranx()
  lines = []
  per_run = {r.name: evaluate_run(r, qrels, metric_specs, buckets=buckets) for r in runs}
  present = [
    b for b in metrics_lib.BUCKETS if any(b in v for res in per_run.values() for v in res.values())
  ]
  lines += ["## rankjax metrics", "", "| run | metric | " + " | ".join(present) + " |"]
  lines.append("|---|---|" + "---|" * len(present))
  for name, results in per_run.items():
    for spec, values in results.items():
      cells = [
        f"{values[b]:.4f} ({values[f'count/{b}']:.0f})" if b in values else "" for b in present
      ]
      lines.append(f"| {name} | {spec} | " + " | ".join(cells) + " |")
  groups = {"all": None}
  if buckets:
    for b, name in enumerate(schema.BUCKETS):
      qids = {q for q, v in buckets.items() if v == b}
      if qids:
        groups[name] = qids
  for group, qids in groups.items():
    sub_qrels = qrels if qids is None else _restrict(ranx, qrels, qids, "qrels")
    sub_runs = runs if qids is None else [_restrict(ranx, r, qids, "run") for r in runs]
    if not sub_qrels.to_dict():
      continue
    report = ranx.compare(
      sub_qrels,
      list(sub_runs),
      list(ranx_metrics),
      stat_test=stat_test,
      max_p=max_p,
      make_comparable=True,
    )
    lines += [
      "",
      f"## ranx: {group} ({len(sub_qrels.to_dict())} queries, {stat_test} test, p < {max_p})",
      "",
      str(report),
    ]
  return "\n".join(lines)
