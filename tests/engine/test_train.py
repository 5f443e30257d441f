"""Tests for the training loop: end to end, no retracing, exact resume, NaN stop."""

import json
import shutil

import jax
import numpy as np
import pytest
from train_helpers import tiny_config, tiny_dataset

from rankjax import supervision
from rankjax.configs.errors import ConfigError
from rankjax.data import pipeline, store
from rankjax.engine import mesh as mesh_lib
from rankjax.engine import step as step_lib
from rankjax.engine import train


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
  return tiny_dataset(tmp_path_factory.mktemp("data"))


@pytest.mark.slow
def test_train_and_evaluate_end_to_end(data_path, tmp_path):
  out = train.train_and_evaluate(tiny_config(data_path), tmp_path)
  assert out["step"] == 6 and not out["preempted"]
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["step"] == 6 and set(results["splits"]) == {"validation", "test"}
  test = results["splits"]["test"]
  assert set(test) == {"ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "err@10", "pnr"}
  # The tiny data has buckets -1..2: high, medium, low and all are reported.
  assert {"high", "medium", "low", "all"} <= set(test["ndcg@10"])
  assert 0 <= test["ndcg@10"]["all"] <= 1
  assert "| ndcg@10 |" in (tmp_path / "results.md").read_text()
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines if "train/loss" in l] == [1, 2, 3, 4, 5, 6]
  assert all(np.isfinite(l["train/grad_norm"]) for l in lines if "train/loss" in l)
  assert list((tmp_path / "tensorboard").iterdir())
  assert json.loads((tmp_path / "config.json").read_text())["data"]["batch_size"] == 4
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [
    "3",
    "6",
  ]


@pytest.mark.slow
def test_resume_from_checkpoint_is_exact(data_path, tmp_path):
  a, b = tmp_path / "a", tmp_path / "b"
  full = train.train_and_evaluate(tiny_config(data_path), a)
  # b: the same run, as if it had died after step 3's checkpoint.
  (b / "checkpoints").mkdir(parents=True)
  shutil.copytree(a / "checkpoints" / "3", b / "checkpoints" / "3")
  resumed = train.train_and_evaluate(tiny_config(data_path), b)
  for x, y in zip(jax.tree.leaves(full["state"]), jax.tree.leaves(resumed["state"])):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert resumed["eval"] == full["eval"]
  # Started again on a finished run: nothing to do, the results stand.
  again = train.train_and_evaluate(tiny_config(data_path), b)
  assert again["step"] == 6 and again["eval"] == full["eval"]


def test_train_step_compiles_once_per_list_size(data_path):
  config = tiny_config(data_path)
  split = store.open_split(data_path, "train")
  mesh = mesh_lib.make_mesh()
  example = pipeline.make_batch([], batch_size=1, list_size=16, layout=split.layout)
  model, tx, _, init = train.build(config, mesh, example)
  step_fn = step_lib.compile_train_step(
    mesh, model=model, tx=tx, objective=supervision.get_objective("single"), config=config
  )
  state = init()
  it = iter(pipeline.train_dataset(split, batch_size=4, list_sizes=(16, 32), seed=0, num_threads=0))
  shapes = set()
  for _ in range(8):
    batch = next(it)
    shapes.add(batch["mask"].shape)
    state, _ = step_fn(state, mesh_lib.shard_batch(batch, mesh))
  assert int(state.step) == 8
  assert step_fn._cache_size() == len(shapes) < 8  # pylint: disable=protected-access


@pytest.mark.slow
def test_non_finite_loss_stops_with_step(tmp_path):
  data_path = tiny_dataset(tmp_path / "data")
  # A step size of 1e30 overflows the scores within a couple of steps.
  config = tiny_config(
    data_path, **{"optimizer.lr": 1e30, "optimizer.warmup_steps": 0, "optimizer.clip_norm": 1e30}
  )
  with pytest.raises(FloatingPointError, match=r"non-finite .* at step \d"):
    train.train_and_evaluate(config, tmp_path / "run")


def test_check_finite_names_last_checkpoint():
  with pytest.raises(FloatingPointError, match="step 7.*last good checkpoint is step 6"):
    train._check_finite(7, {"train/loss": np.nan, "train/grad_norm": 1.0}, 6)  # pylint: disable=protected-access
  train._check_finite(7, {"train/loss": 1.0, "train/grad_norm": 1.0}, 6)  # pylint: disable=protected-access


def test_a_label_source_the_dataset_lacks_is_refused_before_compiling(data_path, tmp_path):
  config = tiny_config(data_path, **{"supervision.source": "llm"})
  with pytest.raises(ConfigError) as error:
    train.train_and_evaluate(config, tmp_path)
  assert error.value.lines == (
    f"config.supervision.source='llm': {data_path} has no labels from 'llm'; it has ['click', "
    "'human']",
  )
  assert not (tmp_path / "config.json").exists()  # refused before preparation


@pytest.mark.slow
def test_keeps_latest_and_best_checkpoint(data_path, tmp_path):
  config = tiny_config(
    data_path, **{"total_steps": 12, "checkpoint.keep": 1, "checkpoint.every": 2, "eval.every": 4}
  )
  train.train_and_evaluate(config, tmp_path)
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  scored = {l["step"]: l["validation/ndcg@10/all"] for l in lines if "validation/ndcg@10/all" in l}
  assert sorted(scored) == [4, 8, 12]
  best = max(scored, key=scored.get)
  kept = {int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()}
  assert kept == {best, 12}
