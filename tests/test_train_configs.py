"""The feature-ranker configs build, have a local variant, and reject unknown variants and keys."""

import pathlib
import subprocess
import sys

import pytest

from rankjax import models
from rankjax import supervision

from train_helpers import ROOT, load_config

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
      [sys.executable, "-m", "rankjax.main", "--config=configs/mslr_mlp.py:local",
       f"--workdir={tmp_path}", "--config.optimizer.learning_rate=1"],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  assert "learning_rate" in proc.stderr
  assert not (pathlib.Path(tmp_path) / "config.json").exists()


def test_unknown_model_lists_known_ones():
  with pytest.raises(ValueError, match=r"unknown model 'nope'; known: \[.*'mlp'"):
    models.get_module("nope")
