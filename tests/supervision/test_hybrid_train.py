"""The hybrid objectives inside the trainer: exact resume across a schedule stage boundary."""

import shutil

import jax
import numpy as np
import pytest
from train_helpers import load_config

from rankjax.engine import train
from rankjax.sim import world as demo_world
from rankjax.study import runner as study


@pytest.fixture(scope="module")
def world(tmp_path_factory):
  cfg = demo_world.WorldConfig(num_queries=80, num_docs=300, sessions=1000, seed=4)
  return demo_world.build(tmp_path_factory.mktemp("world"), cfg)


def run_config(world, variant):
  path, meta = world
  config = load_config("demo", "tiny")
  config.total_steps = 6
  config.eval.every = config.checkpoint.every = 3
  config.checkpoint.keep = 3
  config.log_every = 1
  config.study.variants.data_schedule.stages = (
    {"start": 0, "end": 3, "mix": {"llm": 1.0}},
    {"start": 3, "end": 6, "mix": {"click": 0.5, "human": 0.5}},
  )
  return study.variant_config(config, variant, 0, path)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["data_schedule", "freq_multi_objective"])
def test_resume_is_exact(world, tmp_path, variant):
  a, b = tmp_path / "a", tmp_path / "b"
  meta = world[1]  # the world's PBM propensities, for the variants' IPS weights
  full = train.train_and_evaluate(run_config(world, variant), a, metadata=meta)
  (b / "checkpoints").mkdir(parents=True)
  shutil.copytree(a / "checkpoints" / "3", b / "checkpoints" / "3")
  resumed = train.train_and_evaluate(run_config(world, variant), b, metadata=meta)
  for x, y in zip(jax.tree.leaves(full["state"]), jax.tree.leaves(resumed["state"])):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  logged = (a / "metrics.jsonl").read_text()
  if variant == "data_schedule":  # the stages show in the logged shares
    assert '"train/share_llm": 1.0' in logged and '"train/share_human"' in logged
