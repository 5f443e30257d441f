r"""Scores a dataset split with a trained run's checkpoint: TREC run file plus metrics.

  python tools/score.py --workdir=/tmp/rankjax_run --split=test [--step=N] \
      [--output=/tmp/rankjax_run/test.run] [--label_source=human]

Writes the run file (`qid Q0 docid rank score rankjax`) and `<workdir>/score-<split>.json`
(metrics per bucket, the step scored); the logic is `rankjax.engine.scoring.score`.
"""

from __future__ import annotations

import pathlib
import sys

from absl import app
from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
# pylint: disable=g-import-not-at-top,wrong-import-position
from rankjax import cli
from rankjax.engine import evaluate
from rankjax.engine import scoring

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's directory.", required=True)
_SPLIT = flags.DEFINE_string("split", "test", "Split of the run's dataset to score.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step; default the latest.")
_OUTPUT = flags.DEFINE_string("output", None, "Run file; default <workdir>/<split>.run.")
_LABEL_SOURCE = flags.DEFINE_string("label_source", None,
                                    "Labels to evaluate against; default the run's eval source.")


def main(argv):
  del argv
  results = scoring.score(_WORKDIR.value, _SPLIT.value, step=_STEP.value,
                          output=_OUTPUT.value, label_source=_LABEL_SOURCE.value)
  print(evaluate.markdown_table(results.pop("step"), {_SPLIT.value: results}))


if __name__ == "__main__":
  app.run(cli.one_line_errors(main))
