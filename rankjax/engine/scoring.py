"""Scoring without training: a run's checkpoint scores a split into a TREC run file and metrics.

The data, model and metrics come from the run's saved config. `rankjax score` is the command line.
"""

from __future__ import annotations

import json
import os
import pathlib

from rankjax.data import pipeline, store
from rankjax.engine import evaluate, train


def score(
  workdir: str | os.PathLike,
  split_name: str,
  *,
  step: int | None = None,
  best: bool | None = None,
  output: str | os.PathLike | None = None,
  label_source: str | None = None,
) -> dict:
  """Scores `split_name` with the checkpoint of `workdir` at `step`; without one, the best
  checkpoint when one is recorded, else the latest (`train.load_for_scoring`'s `best`).

  Writes the run file (`qid Q0 docid rank score rankjax`, default `<workdir>/<split>.run`) and
  `<workdir>/score-<split>.json` (metrics per bucket, the step scored).

  Returns:
    {"step": the checkpoint's step, "best_metric": the metric it is best by (None: not the best
     one), "run_file": the run file's path, <metric>: {bucket: value}}.
  """
  workdir = pathlib.Path(workdir)
  run = train.load_for_scoring(workdir, step, best=best)
  best_metric = run.config.checkpoint.best_metric if run.best else None
  split = store.open_split(run.data_path, split_name)
  source = label_source or run.config.eval.label_source
  results, scores = evaluate_loaded(run, split, source)
  output = pathlib.Path(output or workdir / f"{split_name}.run")
  evaluate.write_trec_run(output, split, scores)
  (workdir / f"score-{split_name}.json").write_text(
    json.dumps(
      {
        "step": run.step,
        "best_metric": best_metric,
        "split": split_name,
        "label_source": source,
        "run_file": str(output),
        "metrics": results,
      },
      indent=1,
    )
  )
  return {"step": run.step, "best_metric": best_metric, "run_file": str(output), **results}


def evaluate_loaded(run: train.Trained, split, label_source: str):
  """Metrics per bucket and scores of `split` as training's evaluation computes them: the run's
  checkpoint on its mesh, padded batches of `eval.batch_size` lists, the run's token widths."""
  eval_step = evaluate.make_eval_step(run.model, run.config.eval.metrics, label_source, run.mesh)
  return evaluate.evaluate_split(
    eval_step,
    run.variables,
    split,
    batch_size=run.config.eval.batch_size,
    list_sizes=run.config.data.list_sizes,
    mesh=run.mesh,
    with_scores=True,
    token_widths=pipeline.token_widths(split, run.config.data.token_buckets),
  )
