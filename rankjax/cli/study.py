r"""Runs a study: every supervision variant over seeds, then `<workdir>/report.md`.

  rankjax study --config=configs/demo.py --workdir=/tmp/rankjax_demo \
      [--config.study.seeds=0,1,2,3,4] [--config.total_steps=600]

The same as `rankjax train` with a study config (the logic is `rankjax.study.runner.run`); a
config without a `study` section is an error here. Finished runs are reused (each run resumes
from its checkpoint), so a rerun after adding seeds trains only the new ones. Stopped by SIGTERM,
the study exits with status 75 (`rankjax.cli.errors.PREEMPTED`); the same command resumes it.
"""

from __future__ import annotations

from collections.abc import Sequence

from rankjax.cli import train


def _study(argv) -> int:
  from absl import (
    app,  # pylint: disable=g-import-not-at-top
    flags,  # pylint: disable=g-import-not-at-top
  )

  config_flag, _ = train.config_flags()
  if "study" not in config_flag.value:
    raise app.UsageError(
      f"{flags.FLAGS['config'].value!r} has no `study` section; "
      "train a single run with `rankjax train`"
    )
  summary = train.run(argv)  # prints the headline table and where the report is
  if summary["preempted"]:
    print("study: stopped by SIGTERM; rerun the same command to resume")
  return train.exit_status(summary)


def main(argv: Sequence[str], prog: str = "rankjax study") -> None:
  train.run_absl(_study, argv, prog, __doc__)
