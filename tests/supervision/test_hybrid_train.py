"""The hybrid objectives inside the trainer: exact resume across a schedule stage boundary."""

import json
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


def run_config(world, variant, mode):
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
  config.study.variants.data_schedule.schedule_mode = mode
  return study.variant_config(config, variant, 0, path)


@pytest.mark.slow
@pytest.mark.parametrize(
  "variant,mode",
  [
    ("data_schedule", "iterator"),
    ("data_schedule", "per_list"),
    ("freq_multi_objective", "per_list"),
  ],
)
def test_resume_is_exact(world, tmp_path, variant, mode):
  """Killed after the checkpoint at the stage boundary (step 3): the resumed run, its data
  iterator restored from that checkpoint, ends bit-identical."""
  a, b = tmp_path / "a", tmp_path / "b"
  meta = world[1]  # the world's PBM propensities, for the variants' IPS weights
  full = train.train_and_evaluate(run_config(world, variant, mode), a, metadata=meta)
  (b / "checkpoints").mkdir(parents=True)
  shutil.copytree(a / "checkpoints" / "3", b / "checkpoints" / "3")
  resumed = train.train_and_evaluate(run_config(world, variant, mode), b, metadata=meta)
  for x, y in zip(jax.tree.leaves(full["state"]), jax.tree.leaves(resumed["state"])):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  if variant == "data_schedule":  # the stages show in the logged shares
    logged = [json.loads(line) for line in (a / "metrics.jsonl").read_text().splitlines()]
    shares = {r["step"]: r for r in logged if "train/share_llm" in r}
    assert [shares[s]["train/share_llm"] for s in (1, 2, 3)] == [1.0] * 3
    assert all(0 < shares[s]["train/share_human"] < 1 for s in (4, 5, 6))
