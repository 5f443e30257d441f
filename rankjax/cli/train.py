r"""Trains and evaluates a ranker; a config with a `study` section runs the study instead.

  rankjax train --config=configs/mslr_mlp.py:local --workdir=/tmp/rankjax_run \
      [--config.total_steps=100 ...]

The logic lives in `rankjax.engine.train.train_and_evaluate`; a config with a `study` section
(configs/demo.py) runs `rankjax.study.runner.run`: several variants and seeds, and a report. A
mistyped `--config.` override fails (the config is locked) naming the keys its section has; a
missing input (dataset, model directory) is a one-line error naming it. On a multi-host launch
(see launch/) JAX's distributed runtime is initialised first.

A workdir belongs to one run: one holding checkpoints of another config is refused (one line
naming the differing keys), as is one whose checkpoints all fail to restore; `--restart` first
moves the workdir's contents into `<workdir>/previous-<time>/` and starts a new run there.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from absl import flags

from rankjax.cli import common, errors


@functools.cache
def config_flags():
  """(--config, --workdir): absl flag holders, defined once, when a command first needs them.

  Not at import: `rankjax score` defines its own --workdir, and absl refuses a flag defined twice
  in one process (the doctest run imports every module). `rankjax study` shares these.
  """
  from ml_collections import config_flags as ml_config_flags  # pylint: disable=g-import-not-at-top

  config_flag = ml_config_flags.DEFINE_config_file(
    "config", None, "Experiment config file[:arg].", lock_config=True
  )
  workdir = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, logs, results).")
  flags.DEFINE_boolean(
    "restart",
    False,
    "Start a new run in --workdir: first move what it holds into <workdir>/previous-<time>/.",
  )
  flags.mark_flags_as_required(["config", "workdir"])
  return config_flag, workdir


def run(argv) -> dict:
  """Runs the flags' config: the study for a config with a `study` section, else training.

  Returns the summary of either (`rankjax study` reports it).
  """
  from absl import (
    app,  # pylint: disable=g-import-not-at-top
    logging,  # pylint: disable=g-import-not-at-top
  )

  from rankjax.engine import mesh  # pylint: disable=g-import-not-at-top

  config_flag, workdir_flag = config_flags()
  config, workdir = config_flag.value, workdir_flag.value
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:  # orbax logs every save at INFO
    logging.set_verbosity(logging.WARNING)
  mesh.maybe_initialize_distributed()
  from rankjax.engine import checkpoint, train  # pylint: disable=g-import-not-at-top

  if flags.FLAGS.restart and (moved := train.start_over(workdir)) is not None:
    print(f"--restart: moved the earlier run to {moved}")
  try:
    if "study" in config:
      from rankjax.study import runner as study  # pylint: disable=g-import-not-at-top

      return study.run(config, workdir)
    return train.train_and_evaluate(config, workdir)
  except (train.WorkdirInUse, checkpoint.NoGoodCheckpoint) as e:
    raise SystemExit(f"error: {e}") from None


def run_absl(command, argv: Sequence[str], prog: str, doc: str) -> None:
  """`command(argv)` under absl with --config and --workdir parsed, or the help (train, study)."""
  from absl import app  # pylint: disable=g-import-not-at-top

  from rankjax.engine import xla_flags  # pylint: disable=g-import-not-at-top

  config_flags()
  if common.absl_help(argv, prog=prog, doc=doc, flags_module=__name__):
    return
  xla_flags.fix_gpu_scatter_atomics()  # before any JAX computation, the config file's included
  app.run(command, argv=[prog, *argv], flags_parser=errors.parse_config_flags)


def _train(argv) -> None:
  run(argv)  # returns None: absl's app.run exits with the command's return value


def main(argv: Sequence[str], prog: str = "rankjax train") -> None:
  run_absl(_train, argv, prog, __doc__)
