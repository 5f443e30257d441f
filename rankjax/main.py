r"""Trains and evaluates a ranker: parses flags and calls `train.train_and_evaluate`.

  python -m rankjax.main --config=configs/mslr_mlp.py:local --workdir=/tmp/rankjax_run \
      [--config.total_steps=100 ...]

The logic lives in `rankjax.engine.train`, importable and testable; this file only reads flags. A config
with a `study` section (configs/demo.py) runs `rankjax.study.runner.run` instead: several variants and
seeds, and a report. A mistyped `--config.` override fails (the config is locked) naming the keys
its section has; a missing input (dataset, model directory) is a one-line error naming it. On a
multi-host launch (see launch/) JAX's distributed runtime is initialised first.
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from rankjax.engine import xla_flags

xla_flags.fix_gpu_scatter_atomics()  # before any JAX computation, configs included

from rankjax import cli  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from rankjax.engine import mesh  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from rankjax.study import runner as study  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from rankjax.engine import train  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:arg].",
                                         lock_config=True)
WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, logs, results).")
flags.mark_flags_as_required(["config", "workdir"])


def run(argv) -> dict:
  """Runs the flags' config: `study.run` for a config with a `study` section, else training.

  Returns the summary of either (tools/study.py reports it).
  """
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:  # orbax logs every save at INFO
    logging.set_verbosity(logging.WARNING)
  mesh.maybe_initialize_distributed()
  if "study" in CONFIG.value:
    return study.run(CONFIG.value, WORKDIR.value)
  return train.train_and_evaluate(CONFIG.value, WORKDIR.value)


def main(argv):
  run(argv)  # returns None: absl's app.run exits with main's return value


if __name__ == "__main__":
  app.run(cli.one_line_errors(main), flags_parser=cli.parse_config_flags)
