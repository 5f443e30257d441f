r"""Scores a dataset split with a trained run's checkpoint: TREC run file plus metrics.

  python tools/score.py --workdir=/tmp/rankjax_run --split=test [--step=N] \
      [--output=/tmp/rankjax_run/test.run] [--label_source=human]

Writes the run file (`qid Q0 docid rank score rankjax`) and `<workdir>/score-<split>.json`
(metrics per bucket, the step scored). The data, model and metrics come from the run's saved
config; no training happens.
"""

from __future__ import annotations

import json
import pathlib
import sys

from absl import app
from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
# pylint: disable=g-import-not-at-top,wrong-import-position
from rankjax import evaluate
from rankjax import train
from rankjax.data import store

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's directory.", required=True)
_SPLIT = flags.DEFINE_string("split", "test", "Split of the run's dataset to score.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step; default the latest.")
_OUTPUT = flags.DEFINE_string("output", None, "Run file; default <workdir>/<split>.run.")
_LABEL_SOURCE = flags.DEFINE_string("label_source", None,
                                    "Labels to evaluate against; default the run's eval source.")


def score(workdir, split_name: str, *, step: int | None = None, output=None,
          label_source: str | None = None) -> dict:
  """Scores `split_name` with the checkpoint; writes the run file and JSON.

  Returns:
    {"step": the checkpoint's step, <metric>: {bucket: value}}.
  """
  workdir = pathlib.Path(workdir)
  run = train.load_for_scoring(workdir, step)
  split = store.open_split(run.data_path, split_name)
  source = label_source or run.config.eval.label_source
  eval_step = evaluate.make_eval_step(run.model, run.config.eval.metrics, source, run.mesh)
  results, scores = evaluate.evaluate_split(
      eval_step, run.variables, split, batch_size=run.config.eval.batch_size,
      list_sizes=run.config.data.list_sizes, mesh=run.mesh, with_scores=True)
  output = pathlib.Path(output or workdir / f"{split_name}.run")
  evaluate.write_trec_run(output, split, scores)
  (workdir / f"score-{split_name}.json").write_text(json.dumps(
      {"step": run.step, "split": split_name, "label_source": source, "run_file": str(output),
       "metrics": results}, indent=1))
  return {"step": run.step, **results}


def main(argv):
  del argv
  results = score(_WORKDIR.value, _SPLIT.value, step=_STEP.value, output=_OUTPUT.value,
                  label_source=_LABEL_SOURCE.value)
  print(evaluate.markdown_table(results.pop("step"), {_SPLIT.value: results}))


if __name__ == "__main__":
  app.run(main)
