"""Tiny datasets and configs for the training tests (not a test module)."""

import os
import pathlib
import re
import subprocess
import sys
import tempfile
import warnings

import jax
import numpy as np

from rankjax.cli import errors
from rankjax.data import schema, store

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Every run builds fresh jitted functions; a persistent compilation cache shared by the tests
# (and their subprocesses, through the environment) compiles each distinct program once.
JAX_CACHE = os.path.join(tempfile.gettempdir(), f"rankjax-test-jax-cache-{os.getuid()}")
CACHE_ENV = {
  "JAX_COMPILATION_CACHE_DIR": JAX_CACHE,
  "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
}
jax.config.update("jax_compilation_cache_dir", JAX_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def tiny_lists(num_lists=13, max_len=20, num_features=4, seed=0):
  """Random lists of varying length with click labels everywhere and human labels on some."""
  rng = np.random.default_rng(seed)
  out = []
  for i in range(num_lists):
    n = int(rng.integers(1, max_len + 1))
    human = rng.integers(0, 5, n).astype(np.float32)
    human[rng.uniform(size=n) < 0.3] = np.nan
    out.append(
      schema.RankingList(
        qid=f"q{i}",
        doc_ids=[f"d{i}_{j}" for j in range(n)],
        labels={"click": rng.integers(0, 2, n), "human": human},
        positions=np.arange(1, n + 1),
        query_freq=float(i),
        bucket=i % 4 - 1,
        features=rng.normal(size=(n, num_features)),
      )
    )
  return out


def load_config(name="mslr_mlp", arg="local"):
  return errors.load_config(ROOT / "configs" / f"{name}.py", arg)


def tiny_dataset(directory, **kwargs):
  """A prepared dataset with train / validation / test splits of random lists."""
  return store.write_dataset(
    directory,
    name="tiny",
    splits={
      "train": tiny_lists(16, seed=0, **kwargs),
      "validation": tiny_lists(5, seed=1, **kwargs),
      "test": tiny_lists(6, seed=2, **kwargs),
    },
  )


# The same overrides as --config.<key>=<value> flags for subprocess runs.
TINY_OVERRIDES = {
  "total_steps": 6,
  "log_every": 1,
  "data.batch_size": 4,
  "data.list_sizes": (16, 32),
  "data.num_threads": 0,
  "model.hidden": 16,
  "model.num_blocks": 1,
  "eval.every": 3,
  "eval.batch_size": 4,
  "checkpoint.every": 3,
  "checkpoint.keep": 5,
}


def tiny_config(data_path, **overrides):
  config = load_config()
  config.data.path = str(data_path)
  for key, value in {**TINY_OVERRIDES, **overrides}.items():
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def tiny_study(data_path, **study):
  """`tiny_config` of 4 steps on lists of up to 32 documents with a study of `click` against
  `human` over seeds 0 and 1; `study` replaces its keys."""
  import ml_collections  # pylint: disable=g-import-not-at-top

  config = tiny_config(data_path, total_steps=4, log_every=2, **{"data.list_sizes": (32,)})
  config.eval.every = config.checkpoint.every = 4
  config.study = ml_collections.ConfigDict(
    {
      "seeds": (0, 1),
      "split": "test",
      "baseline": "click",
      "relevant_label": 1.0,
      "doc_signals": (),
      "semantic_signals": (),
      "variants": {"click": {"source": "click"}, "human": {"source": "human"}},
      "runs": {},
      "sweep": None,
      "baselines": ("logged_order",),
      **study,
    }
  )
  return config


def flag_overrides(data_path, **overrides):
  return [f"--config.data.path={data_path}"] + [
    f"--config.{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
    for k, v in {**TINY_OVERRIDES, **overrides}.items()
  ]


def run_on_eight_devices(script: str) -> str:
  """Runs `script` (Python source; argv[1] is the tests directory) on 8 fake CPU devices in a
  subprocess, since JAX fixes its device count at start-up; asserts it printed EQUIVALENT."""
  env = {
    **os.environ,
    **CACHE_ENV,
    "JAX_PLATFORMS": "cpu",
    "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
  }
  proc = subprocess.run(
    [sys.executable, "-c", script, str(ROOT / "tests")],
    env=env,
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  assert "EQUIVALENT" in proc.stdout
  return proc.stdout


def parse_config_flags(*args):
  """The config as `rankjax train` parses it: a locked config file flag with overrides."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  argv = ["rankjax", *args]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file(
    "config", None, "", flag_values=values, lock_config=True, sys_argv=argv
  )
  with warnings.catch_warnings():  # ml_collections loads config files with load_module()
    warnings.filterwarnings("ignore", "the load_module", DeprecationWarning)
    values(argv)
  return values.config


def unpinned(lines) -> tuple:
  """The lines with a registry's known names cut: tests register toy entries (a toy objective,
  gate, weights hook) in the same process, so the full list depends on which tests ran before."""
  return tuple(re.sub(r"; known: .*", "; known: ...", line) for line in lines)
