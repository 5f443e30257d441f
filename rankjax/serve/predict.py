"""Scoring a file with a trained run: a TREC run file, and metrics when the file has labels.

`score_file` streams the input (`inputs`) a chunk of queries at a time through the `Ranker`, the
metrics (`runs.Evaluator`) and the run writer (`runs.write_run`), so memory does not grow with the
file. `rankjax score --input` is the command line.
"""

from __future__ import annotations

import os
import pathlib

from rankjax.serve import ranker as ranker_lib
from rankjax.serve import runs


def score_file(
  ranker: ranker_lib.Ranker,
  input_path: str | os.PathLike,
  output: str | os.PathLike,
  *,
  metric_specs=None,
  chunk: int = 1024,
) -> dict:
  """Scores `input_path` into the run file `output`.

  Returns:
    {"queries": lists scored, "run_file": output, "step": the checkpoint's step, "best": whether
     it is the best one, "metrics": {spec: {bucket: value}} ({} when no list has a relevant
     document by the file's labels)}.
  """
  specs = metric_specs or ranker.config.eval.metrics
  evaluator = runs.Evaluator(specs)
  output = pathlib.Path(output)
  n = runs.write_run(
    output, ranker.score_iter(input_path, chunk=chunk, evaluator=evaluator), chunk=chunk
  )
  metrics = evaluator.results()
  return {
    "queries": n,
    "run_file": str(output),
    "step": ranker.step,
    "best": ranker.best,
    "metrics": metrics if any(metrics.values()) else {},
  }
