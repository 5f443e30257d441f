"""`rankjax export`: the jax.export artifact scores as the in-process `Ranker` does, for batch and
list sizes never seen in training, and loads with jax and numpy alone."""

import os
import subprocess
import sys

import numpy as np
import pytest
from train_helpers import CACHE_ENV, ROOT, load_config

from rankjax import export_check
from rankjax.data import svmlight
from rankjax.engine import train
from rankjax.serve import export, ranker

# The artifact runs the same XLA program as the in-process jit; float32 reassociation differs
# between the two compilations only in the last bits.
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}

# What python -m rankjax.export_check runs under: flax, ml_collections and the rest of rankjax
# unimportable; afterwards it prints the rankjax modules that were loaded.
BLOCKED = """
import runpy, sys
for name in ("flax", "ml_collections", "orbax", "optax", "transformers", "rankjax.serve",
             "rankjax.engine", "rankjax.models", "rankjax.data"):
  sys.modules[name] = None
sys.argv = ["export_check", *sys.argv[1:]]
try:
  runpy.run_module("rankjax.export_check", run_name="__main__")
finally:
  print("loaded:", sorted(m for m, v in sys.modules.items() if v and m.startswith("rankjax")))
"""


@pytest.mark.slow
def test_exported_mlp_on_mslr_scores_as_the_ranker_does(tmp_path, shared_data):
  sample = shared_data("mslr_web10k_sample")
  config = load_config("mslr_mlp", "local")
  config.data.cache_dir = str(tmp_path / "data")
  config.total_steps = config.eval.every = config.checkpoint.every = 4
  config.model.hidden, config.data.num_threads = 32, 0
  train.train_and_evaluate(config, tmp_path / "run")
  r = ranker.Ranker.load(tmp_path / "run")
  export.export(r, tmp_path / "export")
  score, signature = export_check.load(tmp_path / "export")
  assert signature["inputs"]["features"]["shape"] == ["b", "l", "136"]

  # Test queries in batches of 3 and 5 lists padded to their longest list only (training saw
  # batches of 8 lists padded to 64, 128, 192 or 320).
  lists = list(svmlight.iter_svmlight(sample / "msn1.fold1.test.5k.txt", num_features=136))[:8]
  expected = r.score(lists[0].features)  # one list
  for part in (lists[:3], lists[3:]):
    l = max(len(x) for x in part)
    features = np.zeros((len(part), l, 136), np.float32)
    mask = np.zeros((len(part), l), bool)
    for i, x in enumerate(part):
      features[i, : len(x)], mask[i, : len(x)] = x.features, True
    got = score({"features": features, "mask": mask})
    assert got.shape == (len(part), l)
    for i, x in enumerate(part):
      np.testing.assert_allclose(got[i, : len(x)], r.score(x.features)[0].scores, **TOLERANCE)
  np.testing.assert_allclose(expected[0].scores, r.score(lists[0].features)[0].scores)

  # python -m rankjax.export_check needs jax and numpy only.
  inputs = tmp_path / "inputs.npz"
  np.savez(inputs, features=features, mask=mask)
  proc = subprocess.run(
    [
      sys.executable,
      "-c",
      BLOCKED,
      str(tmp_path / "export"),
      str(inputs),
      "--output",
      str(tmp_path / "scores.npy"),
    ],
    cwd=ROOT,
    env={**os.environ, **CACHE_ENV},
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.splitlines()[-1] == "loaded: ['rankjax']"
  np.testing.assert_array_equal(np.load(tmp_path / "scores.npy"), got)
