r"""Training throughput of the MLP ranker in lists/s, and the input pipeline's share of step time.

  python tools/benchmarks/train_throughput.py [--config=configs/mslr_mlp.py:local] [--steps=200]

After compiling every list size, it times `--steps` training steps as the training loop runs them
(grain reads ahead in threads while the device computes) and the host time spent waiting for the
next batch (`next(iterator)` plus the host-to-device transfer). The pipeline share is that waiting
time over the total; under 10% means the accelerator rarely waits on the host. It also times the
pipeline alone and the step alone (same batches, already on the device), for reference.
"""

from __future__ import annotations

import pathlib
import tempfile
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from rankjax import supervision
from rankjax.data import pipeline, store

# pylint: disable=g-import-not-at-top,wrong-import-position
from rankjax.engine import data_source, train
from rankjax.engine import mesh as mesh_lib
from rankjax.engine import step as step_lib

_CONFIG = config_flags.DEFINE_config_file(
  "config",
  str(pathlib.Path(__file__).resolve().parents[2] / "configs/mslr_mlp.py") + ":local",
  "Experiment config.",
  lock_config=True,
)
_STEPS = flags.DEFINE_integer("steps", 200, "Timed steps.")
_CACHE = flags.DEFINE_string(
  "cache_dir",
  str(pathlib.Path(tempfile.gettempdir()) / "rankjax_data"),
  "Where the dataset is prepared.",
)


def main(argv):
  del argv
  config = _CONFIG.value
  mesh = mesh_lib.make_mesh()
  with config.unlocked():
    config.data.cache_dir = config.data.cache_dir or _CACHE.value
  data_path, _ = data_source.resolve(config, _CACHE.value)
  split = store.open_split(data_path, "train")

  def stream():
    return iter(
      pipeline.train_dataset(
        split,
        batch_size=config.data.batch_size,
        list_sizes=config.data.list_sizes,
        seed=config.seed,
        num_threads=config.data.num_threads,
      )
    )

  example = pipeline.make_batch(
    [], batch_size=1, list_size=min(config.data.list_sizes), layout=split.layout
  )
  model, tx, _, init = train.build(config, mesh, example)
  step_fn = step_lib.compile_train_step(
    mesh,
    model=model,
    tx=tx,
    config=config,
    objective=supervision.get_objective(config.supervision.objective),
  )
  state = init()

  # Compile every list size the data produces.
  it = stream()
  seen = set()
  for _ in range(max(50, 4 * len(config.data.list_sizes))):
    batch = next(it)
    if batch["mask"].shape not in seen:
      seen.add(batch["mask"].shape)
      state, m = step_fn(state, mesh_lib.shard_batch(batch, mesh))
  jax.block_until_ready(m)

  # The loop as train.py runs it.
  it = stream()
  next(it)  # let the reader threads start
  waiting = 0.0
  start = time.perf_counter()
  for _ in range(_STEPS.value):
    t = time.perf_counter()
    batch = mesh_lib.shard_batch(next(it), mesh)
    waiting += time.perf_counter() - t
    state, m = step_fn(state, batch)
  jax.block_until_ready(m)
  total = time.perf_counter() - start

  # The pipeline alone, and the step alone on batches already on the device.
  it = stream()
  t = time.perf_counter()
  batches = [next(it) for _ in range(_STEPS.value)]
  pipeline_alone = time.perf_counter() - t
  on_device = [mesh_lib.shard_batch(b, mesh) for b in batches]
  jax.block_until_ready(on_device)
  t = time.perf_counter()
  for batch in on_device:
    state, m = step_fn(state, batch)
  jax.block_until_ready(m)
  step_alone = time.perf_counter() - t

  lists = _STEPS.value * config.data.batch_size
  print(
    f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, batch "
    f"{config.data.batch_size} lists, list sizes {tuple(config.data.list_sizes)}, "
    f"model {dict(config.model)}"
  )
  print(
    f"training loop: {lists / total:.0f} lists/s ({_STEPS.value / total:.1f} steps/s); "
    f"waiting for input {100 * waiting / total:.1f}% of the time"
  )
  print(
    f"pipeline alone: {lists / pipeline_alone:.0f} lists/s; "
    f"step alone: {lists / step_alone:.0f} lists/s"
  )


if __name__ == "__main__":
  app.run(main)
