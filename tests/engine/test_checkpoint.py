"""Preemption: a run killed with SIGKILL, or stopped with SIGTERM, and restarted ends exactly as a
run never interrupted (same parameters, optimizer state, metrics). Runs `rankjax.main`
subprocesses on a tiny dataset."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from train_helpers import CACHE_ENV, ROOT, flag_overrides, tiny_dataset

from rankjax import registry
from rankjax.engine import checkpoint, train

TOTAL = 300
OVERRIDES = {"total_steps": TOTAL, "checkpoint.every": 20, "eval.every": 100, "log_every": 1}


def _command(data_path, workdir):
  return [
    sys.executable,
    "-m",
    "rankjax.main",
    "--config=configs/mslr_mlp.py:local",
    f"--workdir={workdir}",
    *flag_overrides(data_path, **OVERRIDES),
  ]


def _env():
  return {**os.environ, **CACHE_ENV, "JAX_PLATFORMS": "cpu"}


def _run(data_path, workdir):
  proc = subprocess.run(
    _command(data_path, workdir), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600
  )
  assert proc.returncode == 0, proc.stderr[-5000:]
  return proc


def _logged_step(workdir) -> int:
  path = workdir / "metrics.jsonl"
  if not path.exists():
    return 0
  lines = path.read_text().splitlines()
  return max((json.loads(l)["step"] for l in lines if l.endswith("}")), default=0)


def _saved_steps(workdir):
  ckpts = workdir / "checkpoints"
  return sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit()) if ckpts.exists() else []


def _start_and_interrupt(data_path, workdir, sig, at_step):
  """Starts a run, sends `sig` once it logged `at_step` with a checkpoint saved; returns proc."""
  proc = subprocess.Popen(
    _command(data_path, workdir),
    cwd=ROOT,
    env=_env(),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  deadline = time.monotonic() + 300
  while not (_logged_step(workdir) >= at_step and _saved_steps(workdir)):
    assert proc.poll() is None, f"run ended before step {at_step}: {proc.communicate()[1][-3000:]}"
    assert time.monotonic() < deadline
    time.sleep(0.005)
  assert proc.poll() is None, "the run finished before it could be interrupted"
  os.kill(proc.pid, sig)
  out, err = proc.communicate(timeout=120)
  return proc.returncode, out, err


def _final(workdir):
  results = json.loads((workdir / "results.json").read_text())
  return jax.device_get(train.load_for_scoring(workdir).variables), results


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
  return tiny_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def uninterrupted(data_path, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  _run(data_path, workdir)
  return _final(workdir)


def _assert_same(a, b):
  for x, y in zip(jax.tree.leaves(a[0]), jax.tree.leaves(b[0]), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert a[1] == b[1]


@pytest.mark.slow
def test_sigkill_at_random_step_then_restart_matches(data_path, uninterrupted, tmp_path):
  at_step = random.Random().randint(25, TOTAL - 60)
  code, _, _ = _start_and_interrupt(data_path, tmp_path, signal.SIGKILL, at_step)
  assert code == -signal.SIGKILL, f"kill at step {at_step}"
  killed_at = _logged_step(tmp_path)
  assert _saved_steps(tmp_path)[-1] < TOTAL
  _run(data_path, tmp_path)
  _assert_same(uninterrupted, _final(tmp_path))
  print(f"killed at logged step {killed_at} (target {at_step}); restarted and matched")


@pytest.mark.slow
def test_sigterm_saves_and_exits_cleanly_then_resumes(data_path, uninterrupted, tmp_path):
  code, out, err = _start_and_interrupt(data_path, tmp_path, signal.SIGTERM, 50)
  assert code == 75, err[-3000:]  # stopped, resumable (rankjax.cli.errors.PREEMPTED)
  stopped = int(out.split("SIGTERM: saved step ")[1].split(",")[0])
  assert 50 <= stopped < TOTAL and _saved_steps(tmp_path)[-1] == stopped
  proc = _run(data_path, tmp_path)
  assert f"resumed from step {stopped}" in proc.stdout
  _assert_same(uninterrupted, _final(tmp_path))


def test_an_unknown_best_mode_lists_the_modes(tmp_path):
  with pytest.raises(
    registry.UnknownName, match="unknown checkpoint.best_mode 'largest'; known: .*max"
  ):
    checkpoint.Checkpointer(tmp_path, best_metric="validation/ndcg@10/all", best_mode="largest")
  assert not (tmp_path / "checkpoints").exists()
