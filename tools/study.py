r"""Runs a study: every supervision variant over seeds, then `<workdir>/report.md`.

  python tools/study.py --config=configs/demo.py --workdir=/tmp/rankjax_demo \
      [--config.study.seeds=0,1,2,3,4] [--config.total_steps=600]

The same as `python -m rankjax.main` with a study config (the logic is `rankjax.study.runner.run`); a
config without a `study` section is an error here. Finished runs are reused (each run resumes
from its checkpoint), so a rerun after adding seeds trains only the new ones.
"""

from __future__ import annotations

import pathlib
import sys

from absl import app
from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
# pylint: disable=g-import-not-at-top,wrong-import-position
from rankjax import cli
from rankjax import main as entry  # --config and --workdir, and the run itself


def main(argv):
  if "study" not in entry.CONFIG.value:
    raise app.UsageError(f"{flags.FLAGS['config'].value!r} has no `study` section; "
                         "train a single run with `python -m rankjax.main`")
  summary = entry.run(argv)
  print(f"wrote {pathlib.Path(entry.WORKDIR.value) / 'report.md'} ({summary['seconds']:.0f} s)")


if __name__ == "__main__":
  app.run(cli.one_line_errors(main), flags_parser=cli.parse_config_flags)
