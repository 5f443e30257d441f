r"""Runs a study: its variants over seeds (and sweep values), then `<workdir>/report.md`.

  rankjax study --config=configs/demo.py --workdir=/tmp/rankjax_demo \
      [--config.study.seeds=0,1,2,3,4] [--config.total_steps=600]

The same as `rankjax train` with a study config (the logic is `rankjax.study.runner.run`); a
config without a `study` section is an error here. Finished runs are reused (each run resumes
from its checkpoint), so a rerun after adding seeds trains only the new ones. Stopped by SIGTERM,
the study exits with status 75 (`rankjax.cli.errors.PREEMPTED`); the same command resumes it.

Fanned out (a SLURM array job, separate TPU VMs: launch/slurm_study_array.sh,
launch/tpu_vm_study_shards.sh), each job runs a part of the grid of (sweep value, variant, seed)
runs on the same --workdir (a shared filesystem), and one more writes the report:

  rankjax study --config=C --workdir=W --shard=0/4    # runs 0, 4, 8, ... of the grid
  rankjax study --config=C --workdir=W --only=variant=click,seed=1
  rankjax study --config=C --workdir=W --report       # refuses, naming them, unfinished runs

Other systems' TREC run files are scored beside the variants in every table, plot and test
(`config.study.runs`), one `--run NAME=FILE` each:

  rankjax study --config=C --workdir=W --run anserini_bm25=runs/bm25.trec --run splade=s.trec
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from absl import flags

from rankjax.cli import train


@functools.cache
def _flags():
  """(--shard, --only, --report, --run), defined once, when the command first needs them."""
  shard = flags.DEFINE_string(
    "shard",
    None,
    "I/N: run only shard I (from 0) of N of the study's grid of runs (runs I, I+N, I+2N, ... in "
    "the grid's fixed order), then stop without a report (--report writes it).",
  )
  only = flags.DEFINE_string(
    "only",
    None,
    "KEY=VALUE[,KEY=VALUE]: run only the runs matching every pair (keys: variant, seed, and a "
    "sweep's key, e.g. variant=click,seed=1), then stop without a report.",
  )
  report = flags.DEFINE_boolean(
    "report",
    False,
    "Train nothing: write the report from the finished runs' saved scores (and score the "
    "baselines); refused, naming them, while runs are missing or unfinished.",
  )
  runs = flags.DEFINE_multi_string(
    "run",
    [],
    "NAME=FILE: another system's TREC run file, scored as NAME beside the variants (added to "
    "config.study.runs); repeat for more.",
  )
  return shard, only, report, runs


def _shard(text: str | None) -> tuple[int, int] | None:
  from absl import app  # pylint: disable=g-import-not-at-top

  if text is None:
    return None
  match = re.fullmatch(r"(\d+)/(\d+)", text)
  if not match or not int(match[1]) < int(match[2]):
    raise app.UsageError(f"--shard={text}: I/N with 0 <= I < N, e.g. --shard=0/4")
  return int(match[1]), int(match[2])


def _only(text: str | None) -> dict[str, str] | None:
  from absl import app  # pylint: disable=g-import-not-at-top

  if text is None:
    return None
  pairs = [p.partition("=") for p in text.split(",")]
  if any(not k or not sep or not v for k, sep, v in pairs):
    raise app.UsageError(f"--only={text}: KEY=VALUE pairs separated by commas")
  return {k: v for k, _, v in pairs}


def _runs(texts: Sequence[str]) -> dict[str, str]:
  from absl import app  # pylint: disable=g-import-not-at-top

  out = {}
  for text in texts:
    name, sep, path = text.partition("=")
    if not name or not sep or not path:
      raise app.UsageError(f"--run={text}: NAME=FILE, e.g. --run=anserini_bm25=runs/bm25.trec")
    if name in out:
      raise app.UsageError(f"--run: {name!r} given twice")
    out[name] = path
  return out


def _study(argv) -> int:
  from absl import app  # pylint: disable=g-import-not-at-top

  config_flag, _ = train.config_flags()
  if "study" not in config_flag.value:
    raise app.UsageError(
      f"{flags.FLAGS['config'].value!r} has no `study` section; "
      "train a single run with `rankjax train`"
    )
  shard_flag, only_flag, report_flag, runs_flag = _flags()
  shard, only = _shard(shard_flag.value), _only(only_flag.value)
  if runs_flag.value:  # the runner checks each (a new name, an existing file) with the config
    study = config_flag.value.study
    study.runs = {**study.runs, **_runs(runs_flag.value)}
  if report_flag.value and (shard or only):
    raise app.UsageError("--report writes the report of the whole grid: not with --shard/--only")
  if flags.FLAGS.restart and (shard or only or report_flag.value):
    raise app.UsageError(
      "--restart moves the whole study's workdir aside: not with --shard, --only or --report"
    )
  from rankjax.study import runner  # pylint: disable=g-import-not-at-top

  go = runner.report if report_flag.value else functools.partial(runner.run, shard=shard, only=only)
  summary = train.run(argv, study=go)  # prints the headline table and where the report is
  if summary["preempted"]:
    print("study: stopped by SIGTERM; rerun the same command to resume")
  return train.exit_status(summary)


def main(argv: Sequence[str], prog: str = "rankjax study") -> None:
  _flags()
  train.run_absl(_study, argv, prog, __doc__, flags_modules=(train.__name__, __name__))
