r"""Trains and evaluates a ranker; a config with a `study` section runs the study instead.

  rankjax train --config=configs/mslr_mlp.py:local --workdir=/tmp/rankjax_run \
      [--config.total_steps=100 ...]

The logic lives in `rankjax.engine.train.train_and_evaluate`; a config with a `study` section
(configs/demo.py) runs `rankjax.study.runner.run`: several variants and seeds, and a report. A
mistyped `--config.` override fails (the config is locked) naming the keys its section has; the
whole config is checked before any data is read, each violation one line naming the key, its
value and what is allowed; a missing input (config file, dataset, model directory) is a one-line
error naming it. Exit status 0 when the run finished, 1 on an error, 75 when SIGTERM stopped it
(rerun to resume; `rankjax.cli.errors.PREEMPTED`): in training's loop after saving a checkpoint,
anywhere else at once, with a line saying from which checkpoint a rerun resumes, or that nothing
was saved. On a multi-host launch (see launch/) JAX's distributed runtime is initialised first.

A workdir belongs to one run: one holding checkpoints of another config is refused (one line
naming the differing keys), as is one whose checkpoints all fail to restore; `--restart` first
moves the workdir's contents into `<workdir>/previous-<time>/` and starts a new run there.
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Sequence

from absl import flags

from rankjax.cli import common, errors

REQUIRED = ("config", "workdir")


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
  flags.mark_flags_as_required(list(REQUIRED))
  return config_flag, workdir


def run(argv, study=None) -> dict:
  """Runs the flags' config: the study for a config with a `study` section, else training.

  The whole config is checked first (`rankjax.engine.validate`, `rankjax.study.runner.check`):
  a `ConfigError` names every violation. `study(config, workdir)` runs a study config instead of
  `rankjax.study.runner.run` (`rankjax study`'s --shard, --only, --report). Returns the summary
  (`rankjax study` reports it; "preempted" says SIGTERM stopped it).
  """
  from absl import app  # pylint: disable=g-import-not-at-top

  from rankjax.engine import mesh  # pylint: disable=g-import-not-at-top

  config_flag, workdir_flag = config_flags()
  config, workdir = config_flag.value, workdir_flag.value
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from rankjax.engine import train, validate  # pylint: disable=g-import-not-at-top

  if "study" in config:
    from rankjax.study import runner  # pylint: disable=g-import-not-at-top

    check, go = runner.check, study or runner.run
  else:
    check, go = validate.check, train.train_and_evaluate
  check(config)  # every violation of the config, one line each, before anything runs
  common.quiet_library_logs()
  mesh.maybe_initialize_distributed()
  if flags.FLAGS.restart and (moved := train.start_over(workdir)) is not None:
    print(f"--restart: moved the earlier run to {moved}")
  summary = go(config, workdir)
  if "study" in config and not summary["preempted"]:
    print("\n".join(runner.headline(summary, workdir)))
  return summary


def exit_status(summary: dict) -> int:
  """The program's exit status after a run or study: `errors.PREEMPTED` if SIGTERM stopped it
  (resumable), else `errors.FINISHED`."""
  return errors.PREEMPTED if summary.get("preempted") else errors.FINISHED


def _after_sigterm() -> str:
  """`resume_note` of the command's --workdir, once the flags are parsed."""
  return resume_note(flags.FLAGS["workdir"].value if flags.FLAGS.is_parsed() else None)


def resume_note(workdir: str | pathlib.Path | None) -> str:
  """What rerunning a `train` or `study` command that SIGTERM stopped does, from the checkpoints
  `workdir` holds (`errors.sigterm_stops`); None: the flags were not read yet."""
  if workdir is None:
    return "stopped before it began; rerun the same command"
  workdir = pathlib.Path(workdir)
  steps = [int(p.name) for p in workdir.glob("checkpoints/*") if p.name.isdigit()]
  if steps:
    return f"rerun the same command to resume from checkpoint step {max(steps)}"
  # A study's runs are `[sweep/<key>=<value>/]runs/<variant>/seed<seed>` (`rankjax.study.runner`).
  runs = {
    p.parents[1]
    for pattern in ("runs/*/*/checkpoints/*", "sweep/*/runs/*/*/checkpoints/*")
    for p in workdir.glob(pattern)
    if p.name.isdigit()
  }
  if runs:
    return (
      f"rerun the same command to resume: {len(runs)} of the study's runs have checkpoints "
      "(finished runs are reused, the others resume from theirs)"
    )
  return "nothing saved; rerun starts over"


def run_absl(
  command, argv: Sequence[str], prog: str, doc: str, flags_modules: Sequence[str] = (__name__,)
) -> None:
  """`command(argv)` under absl with --config and --workdir parsed, or the help (train, study)
  listing the flags of `flags_modules`.

  SIGTERM anywhere in it ends the command with status `errors.PREEMPTED` (75): within training's
  loop after saving a checkpoint, elsewhere (data, preparation, a study between runs) at once,
  with one line saying what a rerun does (`resume_note`).
  """
  from absl import app  # pylint: disable=g-import-not-at-top

  from rankjax.engine import xla_flags  # pylint: disable=g-import-not-at-top

  config_flags()
  if common.absl_help(argv, prog=prog, doc=doc, flags_modules=flags_modules):
    return
  with errors.sigterm_stops(prog, _after_sigterm):
    xla_flags.fix_gpu_scatter_atomics()  # before any JAX computation, the config file's included
    app.run(
      command,
      argv=[prog, *argv],
      flags_parser=functools.partial(errors.parse_config_flags, required=REQUIRED),
    )


def _train(argv) -> int:
  return exit_status(run(argv))  # absl's app.run exits with the command's return value


def main(argv: Sequence[str], prog: str = "rankjax train") -> None:
  run_absl(_train, argv, prog, __doc__)
