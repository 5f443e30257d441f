"""The `rankjax` program: `rankjax <command> [<subcommand>] [flags]`, one module per command.

  rankjax train --config=FILE[:ARG] --workdir=DIR [--config.KEY=VALUE ...]
  rankjax data stats|prepare --format FMT FILES...
  rankjax clicks fit|harvest --format FMT FILES...   rankjax clicks simulate --svmlight FILE ...
  rankjax annotate run|agreement --format FMT FILES... --store DB --model NAME
  rankjax score --workdir=DIR [--split=test | --input=FILE --output=RUN]
  rankjax export --workdir=DIR --output=DIR      rankjax compare RUN... --qrels=FILE | --dataset=DIR
  rankjax study --config=FILE --workdir=DIR

`rankjax <command> --help` describes a command. The module of a command (`rankjax.cli.<command>`)
is imported only when that command runs, and the commands import the heavy libraries (jax, orbax,
tensorflow_datasets, matplotlib, scipy, transformers) inside the functions that run, after their
command line is parsed, so a mistyped flag or a missing argument is reported within a second or
two (names that only a heavy module holds, such as the click models, are checked last:
`common.Names`; train's `--config` file loads after its other flags are checked). A user error
(a missing input file or `--config` file, a config that cannot run, an unknown name) ends a
command with one `error:` line per problem (`errors.USER_ERRORS`); train and study check the whole
config before any data or compilation.

Exit statuses (`rankjax.cli.errors`):
  0    finished; also every `--help`
  1    an error (the `error:` lines), or a usage error of train, study, score (absl's)
  2    a usage error of the argparse commands (data, clicks, annotate, an unknown command;
       argparse's convention)
  75   train, study or annotate run stopped by SIGTERM: the same command resumes from what was
       saved (`errors.PREEMPTED`, sysexits' EX_TEMPFAIL); training's loop saves a checkpoint
       first, elsewhere one line says from which checkpoint a rerun resumes, or that nothing was
       saved
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from rankjax.cli import common

COMMANDS = {
  "train": "train and evaluate a ranker (a config with a study section runs the study)",
  "data": "click logs: read statistics, prepare a dataset for training",
  "clicks": "click models: fit one to a log, harvest propensities, simulate a log",
  "annotate": "LLM relevance labels of a log's pairs, and their agreement with human labels",
  "score": "score a dataset split or a new svmlight file with a trained run's checkpoint",
  "export": "write a trained ranker as a jax.export serving artifact (loads with jax alone)",
  "compare": "compare TREC runs: rankjax's metrics per bucket and ranx's statistical tests",
  "study": "run a study: supervision variants over seeds, then a report",
}


def _command(name: str):
  from rankjax.cli import errors  # pylint: disable=g-import-not-at-top

  return errors.one_line_errors(importlib.import_module(f"{__name__}.{name}").main)


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command `argv` (default: the program's arguments) names; the exit status is 0 when
  it returns (errors and the absl commands exit on their own, with the statuses above)."""
  common.dispatch(
    sys.argv[1:] if argv is None else argv,
    prog="rankjax",
    doc=__doc__,
    helps=COMMANDS,
    resolve=_command,
  )
  return 0
