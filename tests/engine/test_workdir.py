"""A workdir belongs to one run: `rankjax train` with another config in a workdir holding
checkpoints is refused before anything is written, naming the differing keys; `--restart` moves the
earlier run aside and starts over; the keys that only set how long a run goes may change."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from train_helpers import CACHE_ENV, ROOT, flag_overrides, tiny_config, tiny_dataset

from rankjax.engine import train


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
  return tiny_dataset(tmp_path_factory.mktemp("data"))


def _rankjax_train(data_path, workdir, *args):
  return subprocess.run(
    [
      sys.executable,
      "-m",
      "rankjax.main",
      "--config=configs/mslr_mlp.py:local",
      f"--workdir={workdir}",
      *flag_overrides(data_path),
      *args,
    ],
    cwd=ROOT,
    env={**os.environ, **CACHE_ENV, "JAX_PLATFORMS": "cpu"},
    capture_output=True,
    text=True,
    timeout=600,
  )


@pytest.fixture(scope="module")
def finished(data_path, tmp_path_factory):
  """A workdir where `rankjax train` ran the tiny config to its end."""
  workdir = tmp_path_factory.mktemp("finished")
  proc = _rankjax_train(data_path, workdir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir


def _tree(workdir):
  """Every path under `workdir` with its size and modification time."""
  return {
    str(p.relative_to(workdir)): (p.stat().st_size, p.stat().st_mtime_ns)
    for p in workdir.rglob("*")
  }


@pytest.mark.slow
def test_another_config_is_refused_before_anything_is_written(data_path, finished, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(finished, workdir)
  before = _tree(workdir)

  proc = _rankjax_train(
    data_path, workdir, "--config.model.hidden=64", "--config.optimizer.lr=0.002"
  )

  assert proc.returncode == 1
  assert "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
    f"error: {workdir} holds checkpoints of a run with another config (config.user.json): "
    "model.hidden: 16 -> 64; optimizer.lr: 0.001 -> 0.002. Rerun with that config to resume it, "
    "add --restart to move its files aside and start over, or choose another --workdir"
  )
  assert _tree(workdir) == before


@pytest.mark.slow
def test_restart_moves_the_earlier_run_aside_and_starts_over(data_path, finished, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(finished, workdir)
  before = _tree(workdir)

  proc = _rankjax_train(data_path, workdir, "--config.seed=1", "--restart")

  assert proc.returncode == 0, proc.stderr[-3000:]
  (previous,) = workdir.glob("previous-*")
  assert proc.stdout.splitlines()[0] == f"--restart: moved the earlier run to {previous}"
  assert "resumed from" not in proc.stdout
  # The earlier run, whole and untouched, under previous-<time>/.
  assert {
    k.removeprefix(f"{previous.name}/"): v
    for k, v in _tree(workdir).items()
    if k.startswith(f"{previous.name}/")
  } == before
  assert json.loads((workdir / "config.user.json").read_text())["seed"] == 1
  assert json.loads((workdir / "results.json").read_text())["step"] == 6


def test_keys_setting_only_how_long_a_run_goes_may_change(data_path, tmp_path):
  config = tiny_config(data_path)
  (tmp_path / "checkpoints" / "3").mkdir(parents=True)
  (tmp_path / train.USER_CONFIG).write_text(config.to_json_best_effort())
  longer = tiny_config(
    data_path, total_steps=12, log_every=2, **{"eval.every": 4, "checkpoint.every": 4}
  )
  train.check_workdir(longer, tmp_path)  # no refusal
  other = tiny_config(data_path, **{"data.batch_size": 8, "total_steps": 12})
  with pytest.raises(train.WorkdirInUse, match=r"\(config.user.json\): data.batch_size: 4 -> 8\. "):
    train.check_workdir(other, tmp_path)


def test_a_refusal_lists_ten_differing_keys_and_counts_the_rest(data_path, tmp_path):
  (tmp_path / "checkpoints" / "3").mkdir(parents=True)
  (tmp_path / train.USER_CONFIG).write_text(tiny_config(data_path).to_json_best_effort())
  world = {f"data.world.{k}": 7 for k in sorted(tiny_config(data_path).data.world)[:12]}
  with pytest.raises(train.WorkdirInUse) as refused:
    train.check_workdir(tiny_config(data_path, **world), tmp_path)
  message = str(refused.value)
  assert message.count(" -> ") == 10
  assert f" and {len(world) - 10} more. " in message


def test_a_workdir_written_before_config_user_json_is_compared_with_its_config_json(
  data_path, tmp_path
):
  # Its config.json is the prepared config: keys the preparation filled are no difference.
  prepared = tiny_config(data_path)
  prepared.supervision.gate.coef = 0.5
  prepared.supervision.propensities = (1.0, 0.5)
  (tmp_path / "checkpoints" / "3").mkdir(parents=True)
  (tmp_path / "config.json").write_text(prepared.to_json_best_effort())
  train.check_workdir(tiny_config(data_path), tmp_path)
  with pytest.raises(train.WorkdirInUse, match=r"\(config.json\): model.hidden: 16 -> 64\. "):
    train.check_workdir(tiny_config(data_path, **{"model.hidden": 64}), tmp_path)
