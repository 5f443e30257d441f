"""Evaluation: metrics per query-frequency bucket, results files, scores and TREC run files.

Metrics are named `<metric>@<k>` (or `<metric>` for the whole list), with `<metric>` from
`rankjax.ranking.metrics` (`metrics.parse_spec`). Each is computed per list against one label source
(default human), over lists that have a relevant item, and reported for the high / medium / low
buckets and all lists (buckets without lists are left out; data without buckets reports only "all").

Results land in the workdir as `results.json` (latest evaluation of every split, with the step)
and `results.md` (the same as Markdown tables); the history is in `metrics.jsonl`.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from rankjax import progress as progress_lib
from rankjax import supervision
from rankjax.data import pipeline
from rankjax.engine import mesh as mesh_lib
from rankjax.ranking import metrics as metrics_lib


def make_eval_step(
  model, metric_specs: Sequence[str], label_source: str, mesh: jax.sharding.Mesh
) -> Callable:
  """A jitted `(variables, batch) -> (stats, scores)`, saying on stderr when it compiles for a
  new batch shape (`rankjax.progress.announcing`).

  stats: metric spec -> `metrics.bucket_stats` {"sum": f32[4], "count": f32[4]}, additive over
  batches; scores: f32[B, L] sharded like the batch.
  """
  parsed = {spec: metrics_lib.parse_spec(spec) for spec in metric_specs}

  def eval_step(variables, batch):
    labels, where = supervision.labels_and_where(batch, label_source, "config.eval.label_source")
    scores = model.apply(variables, batch, train=False)
    counted = batch["list_valid"] & metrics_lib.has_relevant(labels, where)
    stats = {}
    for spec, (name, topn) in parsed.items():
      values = metrics_lib.get_metric(name)(scores, labels, where=where, topn=topn, reduce_fn=None)
      stats[spec] = metrics_lib.bucket_stats(values, batch["bucket"], counted)
    return stats, scores

  return progress_lib.announcing(
    jax.jit(eval_step, out_shardings=(mesh_lib.replicated(mesh), mesh_lib.data_sharding(mesh))),
    "the eval step",
    shapes=lambda variables, batch: pipeline.describe(batch),
    enabled=jax.process_index() == 0,
  )


def evaluate_split(
  eval_step,
  variables,
  split,
  *,
  batch_size: int,
  list_sizes: Sequence[int],
  mesh: jax.sharding.Mesh,
  with_scores: bool = False,
  token_widths: Sequence[int] | None = None,
):
  """Runs `eval_step` over every list of a split once (token arrays cut to `token_widths`).

  Returns:
    (results, scores): results maps metric spec -> {"high": .., ..., "all": .., "count/all": ..};
    scores (only `with_scores`, on every host) maps record index -> f32[n] item scores.
  """
  total = None
  scores_by_index = {} if with_scores else None
  for batch, local_indices in pipeline.eval_batches(
    split,
    batch_size=batch_size,
    list_sizes=list_sizes,
    token_widths=token_widths,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
  ):
    stats, scores = eval_step(variables, mesh_lib.shard_batch(batch, mesh))
    total = stats if total is None else jax.tree.map(jnp.add, total, stats)
    if with_scores:
      indices = mesh_lib.shard_batch({"i": local_indices.astype(np.int32)}, mesh)["i"]
      all_scores = np.asarray(multihost_utils.process_allgather(scores, tiled=True))
      all_indices = np.asarray(multihost_utils.process_allgather(indices, tiled=True))
      for i, row in zip(all_indices, all_scores):
        if i >= 0:
          scores_by_index[int(i)] = row[: split.lengths[i]]
  results = {spec: metrics_lib.finalize_bucket_stats(s) for spec, s in total.items()}
  return results, scores_by_index


def write_results(workdir: str | os.PathLike, step: int, results: dict[str, dict]):
  """Writes `results.json` and `results.md`: {split: {metric: {bucket: value}}} at `step`."""
  if jax.process_index():
    return
  workdir = pathlib.Path(workdir)
  (workdir / "results.json").write_text(json.dumps({"step": step, "splits": results}, indent=1))
  (workdir / "results.md").write_text(markdown_table(step, results))


def metric_order(spec: str) -> tuple[str, int]:
  """Sort key of a metric spec: by name, then by cutoff as a number (ndcg@3 before ndcg@10).

  >>> sorted(["ndcg@10", "err@10", "ndcg@3", "ndcg"], key=metric_order)
  ['err@10', 'ndcg', 'ndcg@3', 'ndcg@10']
  """
  name, _, cutoff = spec.partition("@")
  return name, int(cutoff) if cutoff.isdigit() else 0


def markdown_table(step: int, results: dict[str, dict]) -> str:
  """One Markdown table per split: a row per metric (in `metric_order`), a column per bucket,
  list counts below.

  >>> print(markdown_table(5, {"test": {"ndcg@10": {"all": 0.5, "count/all": 3.0}}}))
  ## test (step 5)
  <BLANKLINE>
  | metric | all |
  |---|---|
  | ndcg@10 | 0.5000 |
  | lists | 3 |
  <BLANKLINE>
  """
  lines = []
  for split, per_metric in results.items():
    buckets = [b for b in metrics_lib.BUCKETS if any(b in v for v in per_metric.values())]
    lines += [
      f"## {split} (step {step})",
      "",
      "| metric | " + " | ".join(buckets) + " |",
      "|---|" + "---|" * len(buckets),
    ]
    for spec in sorted(per_metric, key=metric_order):
      values = per_metric[spec]
      lines.append(
        f"| {spec} | "
        + " | ".join(f"{values[b]:.4f}" if b in values else "" for b in buckets)
        + " |"
      )
    first = next(iter(per_metric.values()), {})
    lines.append(
      "| lists | " + " | ".join(f"{first.get(f'count/{b}', 0):.0f}" for b in buckets) + " |"
    )
    lines.append("")
  return "\n".join(lines)


def write_trec_run(
  path: str | os.PathLike, split, scores_by_index: dict[int, np.ndarray], run_name: str = "rankjax"
):
  """Writes a TREC run file: `qid Q0 docid rank score run_name`, rank 1-based by score.

  Ties keep the stored item order (as the metrics rank them).
  """
  with open(path, "w") as f:
    for index in range(len(split)):
      if index not in scores_by_index:
        raise KeyError(f"no scores for list {index} of {split}")
      rec = split[index]
      qid = _text(rec["qid"])
      scores = scores_by_index[index]
      order = np.argsort(-scores, kind="stable")
      for rank, item in enumerate(order, 1):
        f.write(f"{qid} Q0 {_text(rec['doc_ids'][item])} {rank} {scores[item]:.6f} {run_name}\n")


def _text(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)
