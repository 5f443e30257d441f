r"""Scores a dataset split with a trained run's checkpoint: TREC run file plus metrics.

  rankjax score --workdir=/tmp/rankjax_run --split=test [--step=N] \
      [--output=/tmp/rankjax_run/test.run] [--label_source=human]

Writes the run file (`qid Q0 docid rank score rankjax`) and `<workdir>/score-<split>.json`
(metrics per bucket, the step scored); the logic is `rankjax.engine.scoring.score`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from absl import flags

from rankjax.cli import common


@functools.cache
def _flags():
  """absl flag holders, defined once, when the command runs (not at import: see
  `rankjax.cli.train.config_flags`)."""
  return {
    "workdir": flags.DEFINE_string("workdir", None, "A training run's directory.", required=True),
    "split": flags.DEFINE_string("split", "test", "Split of the run's dataset to score."),
    "step": flags.DEFINE_integer("step", None, "Checkpoint step; default the latest."),
    "output": flags.DEFINE_string("output", None, "Run file; default <workdir>/<split>.run."),
    "label_source": flags.DEFINE_string(
      "label_source", None, "Labels to evaluate against; default the run's eval source."
    ),
  }


def _score(argv) -> None:
  from rankjax.engine import (
    evaluate,  # pylint: disable=g-import-not-at-top
    scoring,  # pylint: disable=g-import-not-at-top
  )

  del argv
  common.quiet_library_logs()
  f = {name: holder.value for name, holder in _flags().items()}
  results = scoring.score(
    f["workdir"], f["split"], step=f["step"], output=f["output"], label_source=f["label_source"]
  )
  print(evaluate.markdown_table(results.pop("step"), {f["split"]: results}))


def main(argv: Sequence[str], prog: str = "rankjax score") -> None:
  from absl import app  # pylint: disable=g-import-not-at-top

  _flags()
  if common.absl_help(argv, prog=prog, doc=__doc__, flags_module=__name__):
    return
  app.run(_score, argv=[prog, *argv])
