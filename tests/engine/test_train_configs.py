"""The feature-ranker configs build, have a local variant, and reject unknown variants and keys."""

import pathlib
import subprocess
import sys

import pytest
from train_helpers import ROOT, load_config

from rankjax import models, supervision
from rankjax.cli import errors

CONFIGS = ("mslr_mlp", "lightgbm_example")


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("arg", [None, "local"])
def test_config_is_complete(name, arg):
  config = load_config(name, arg)
  models.build(config.model)
  supervision.get_objective(config.supervision.objective)
  assert config.eval.every <= config.total_steps and config.checkpoint.every <= config.total_steps
  assert config.checkpoint.best_metric.split("/")[0] in config.eval.splits


@pytest.mark.parametrize("name", CONFIGS)
def test_unknown_variant_is_an_error(name):
  with pytest.raises(ValueError, match="unknown config variant"):
    load_config(name, "nope")


@pytest.mark.slow
def test_mistyped_override_names_the_key(tmp_path):
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "rankjax.cli",
      "train",
      "--config=configs/mslr_mlp.py:local",
      f"--workdir={tmp_path}",
      "--config.optimizer.learning_rate=1",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode != 0
  assert (
    "--config.optimizer.learning_rate=1: config.optimizer has no key 'learning_rate'; "
    "its keys: ['clip_norm', 'lr', "
  ) in proc.stderr
  assert "Traceback" not in proc.stderr
  assert not (pathlib.Path(tmp_path) / "config.json").exists()


@pytest.mark.slow
def test_missing_dataset_is_a_one_line_error(tmp_path):
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "rankjax.cli",
      "train",
      "--config=configs/mslr_mlp.py:local",
      f"--workdir={tmp_path}",
      f"--config.data.path={tmp_path}/nothing",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == (
    f"error: config.data.path='{tmp_path}/nothing': not a prepared dataset (no dataset_info.json); "
    "write one with `rankjax data prepare ... --output DIR --name NAME` and give DIR/NAME/1.0.0"
  )
  assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
  "override,message",
  [
    ("--config.modle.dropout=0.2", "config has no key 'modle'; its keys: ['checkpoint', "),
    ("--config.model.depth=3", "config.model has no key 'depth'; its keys: ['batch_norm_momentum'"),
    ("--config.optimizer.lr.peak=1", "config.optimizer.lr is a value (0.001), not a section"),
  ],
)
def test_override_of_a_missing_key_names_it_and_its_section(override, message):
  argv = ["main", f"--config={ROOT}/configs/mslr_mlp.py", "--workdir=/tmp/unused", override]
  assert errors._missing_key_message(argv, AttributeError()).startswith(f"{override}: {message}")


def test_unknown_model_lists_known_ones():
  with pytest.raises(ValueError, match=r"unknown model 'nope'; known: .*\bmlp\b"):
    models.get_module("nope")
