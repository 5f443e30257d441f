r"""Trains and evaluates a ranker: parses flags and calls `train.train_and_evaluate`.

  python -m rankjax.main --config=configs/mslr_mlp.py:local --workdir=/tmp/rankjax_run \
      [--config.total_steps=100 ...]

The logic lives in `rankjax.train`, importable and testable; this file only reads flags. A config
with a `study` section (configs/demo.py) runs `rankjax.study.run` instead: several variants and
seeds, and a report. A mistyped `--config.` override fails (the config is locked) naming the keys
its section has; a missing input (dataset, model directory) is a one-line error naming it. On a
multi-host launch (see launch/) JAX's distributed runtime is initialised first.
"""

import importlib.util

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from rankjax import xla_flags

xla_flags.fix_gpu_scatter_atomics()  # before any JAX computation, configs included

from rankjax import cli  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from rankjax import mesh  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from rankjax import study  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from rankjax import train  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

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


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, where an override of a key the locked config lacks is a flag error.

  ml_collections raises AttributeError (or KeyError, for a section) there, which absl would show
  as a traceback; this names the override and the keys its section has.
  """
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as e:
    raise SystemExit(f"FATAL Flags parsing error: {_missing_key_message(argv, e)}") from None


def _missing_key_message(argv: list[str], error: Exception) -> str:
  """Which `--config.` override names no key of the config, and the keys of its section."""
  file_arg = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if file_arg is None:
    return f"a --config. override names no key of the config ({error})"
  path, _, arg = file_arg.partition(":")
  spec = importlib.util.spec_from_file_location("rankjax_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg) if arg else module.get_config()
  for override in (a for a in argv if a.startswith("--config.")):
    *section, key = override[len("--config."):].split("=", 1)[0].split(".")
    node = config
    for i, name in enumerate([*section, key]):
      owner = ".".join(["config", *section[:i]])
      if not hasattr(node, "keys"):
        return f"{override}: {owner} is a value ({node!r}), not a section"
      if name not in node:
        return f"{override}: {owner} has no key {name!r}; its keys: {sorted(node.keys())}"
      node = node[name]
  return f"a --config. override names no key of the config ({error})"


def main(argv):
  run(argv)  # returns None: absl's app.run exits with main's return value


if __name__ == "__main__":
  app.run(cli.one_line_errors(main), flags_parser=parse_flags)
