"""Several hosts: two processes (2 CPU devices each, JAX's distributed runtime with gloo
collectives on localhost) train exactly as one process with 4 devices."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from train_helpers import CACHE_ENV, ROOT, flag_overrides, tiny_dataset

from rankjax.engine import train


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _flat(tree, prefix=""):
  for k, v in tree.items():
    if isinstance(v, dict):
      yield from _flat(v, f"{prefix}/{k}")
    else:
      yield f"{prefix}/{k}", v


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
  data_path = tiny_dataset(tmp_path / "data")
  # MSE: see tests/engine/test_train_multidevice.py on softmax's noise-driven output bias. One list
  # size and one eval split keep the number of compiled programs (the cost here) small.
  flags = flag_overrides(
    data_path,
    **{
      "loss.name": "mse",
      "data.list_sizes": (32,),
      "eval.splits": ("test",),
      "checkpoint.best_metric": "",
    },
  )
  base = {
    **os.environ,
    **CACHE_ENV,
    "JAX_PLATFORMS": "cpu",
    "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo",
  }

  def command(workdir):
    return [
      sys.executable,
      "-m",
      "rankjax.main",
      "--config=configs/mslr_mlp.py:local",
      f"--workdir={workdir}",
      *flags,
    ]

  single = subprocess.run(
    command(tmp_path / "single"),
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env={**base, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"},
  )
  assert single.returncode == 0, single.stderr[-3000:]

  port = _free_port()
  procs = [
    subprocess.Popen(
      command(tmp_path / "multi"),
      cwd=ROOT,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
      env={
        **base,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_COORDINATOR_ADDRESS": f"localhost:{port}",
        "RANKJAX_NUM_PROCESSES": "2",
        "RANKJAX_PROCESS_ID": str(i),
      },
    )
    for i in range(2)
  ]
  outputs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-3000:]

  a = dict(_flat(json.loads((tmp_path / "single" / "results.json").read_text())))
  b = dict(_flat(json.loads((tmp_path / "multi" / "results.json").read_text())))
  assert a.keys() == b.keys()
  np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=1e-4, atol=1e-5)
  va = jax.device_get(train.load_for_scoring(tmp_path / "single").variables)
  vb = jax.device_get(train.load_for_scoring(tmp_path / "multi").variables)
  for x, y in zip(jax.tree.leaves(va), jax.tree.leaves(vb), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)
