r"""The data schedule's two modes side by side: quality per bucket, steps/s, batch slots that train.

  PYTHONPATH=. .venv/bin/python tools/benchmarks/schedule_modes.py \
      [--config=configs/demo.py] [--workdir=/tmp/rankjax_schedule_modes] [--seeds=0,1,2]

The config's `data_schedule` study variant (the demo: preset `frequency_staged`, IPS-weighted
clicks) runs twice, as `per_list` (every list comes, its source drawn in the step; a list whose
bucket the stage leaves out fills its slot and adds 0) and as `iterator` (the input pipeline
serves only the lists the stage trains, each with its source). Both are variants of one study
(`rankjax.study.runner`, the seeds given, baseline `per_list`), so NDCG@10 per bucket is the
study's: mean and std over seeds on the study split, the paired test Holm-corrected.

Speed, on seed 0 of each mode in the same process, after compiling: the training loop as
`rankjax.engine.train` runs it (input stream, then the jitted step), over all `total_steps` of the
schedule, without evaluation or checkpoints, the modes alternating `--repeats` times (the
median). The share of slots that train is the step's logged "share_trained" averaged over the
run; trained lists/s = steps/s x batch size x that share.
"""

from __future__ import annotations

import pathlib
import statistics
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from rankjax import supervision
from rankjax.data import pipeline, store
from rankjax.engine import data_source, train
from rankjax.engine import mesh as mesh_lib
from rankjax.engine import step as step_lib
from rankjax.study import runner

_CONFIG = config_flags.DEFINE_config_file(
  "config",
  str(pathlib.Path(__file__).resolve().parents[2] / "configs/demo.py"),
  "A study config with a `data_schedule` variant.",
  lock_config=False,
)
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/rankjax_schedule_modes", "Where the runs go.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds of the quality comparison.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs of each mode (alternating).")

MODES = ("per_list", "iterator")
BUCKETS = ("high", "medium", "low", "all")


def time_loop(cfg, data_path, meta, mesh) -> tuple[float, float]:
  """(steps/s, mean share_trained) of the training loop over `cfg.total_steps` (module doc)."""
  cfg, _ = supervision.prepare(cfg, supervision.Context(data_path, meta))
  split = store.open_split(data_path, "train")

  def stream():
    return iter(
      pipeline.train_dataset(
        split,
        batch_size=cfg.data.batch_size,
        list_sizes=cfg.data.list_sizes,
        seed=cfg.seed,
        phases=supervision.data_phases(cfg),
        num_threads=cfg.data.num_threads,
      )
    )

  example = pipeline.make_batch(
    [], batch_size=1, list_size=min(cfg.data.list_sizes), layout=split.layout
  )
  model, tx, _, init = train.build(cfg, mesh, example)
  step_fn = step_lib.compile_train_step(
    mesh, model=model, tx=tx, config=cfg, objective=supervision.get_objective("data_schedule")
  )
  state, measured = step_fn(init(), mesh_lib.shard_batch(next(stream()), mesh))  # compiles
  jax.block_until_ready(measured)
  state = init()
  it = stream()
  shares = []
  start = time.perf_counter()
  for _ in range(cfg.total_steps):
    state, measured = step_fn(state, mesh_lib.shard_batch(next(it), mesh))
    shares.append(measured["share_trained"])
  jax.block_until_ready(state)
  seconds = time.perf_counter() - start
  return cfg.total_steps / seconds, float(np.mean(jax.device_get(shares)))


def main(argv):
  del argv
  config = _CONFIG.value
  workdir = pathlib.Path(_WORKDIR.value)
  variant = config.study.variants.data_schedule.to_dict()
  config.study.variants = {m: {**variant, "schedule_mode": m} for m in MODES}
  config.study.baseline = "per_list"
  config.study.baselines = ()
  config.study.seeds = tuple(int(s) for s in _SEEDS.value)
  summary = runner.run(config, workdir)

  data_path, meta = data_source.resolve(config, workdir)
  mesh = mesh_lib.make_mesh()
  rates = {m: [] for m in MODES}
  shares = {}
  for _ in range(_REPEATS.value):
    for mode in MODES:
      rate, shares[mode] = time_loop(
        runner.variant_config(config, mode, config.study.seeds[0], data_path), data_path, meta, mesh
      )
      rates[mode].append(rate)

  batch = config.data.batch_size
  print(
    f"{config.total_steps} steps, batch {batch}, seeds {list(config.study.seeds)}, study split "
    f"{config.study.split!r}, {jax.devices()[0].device_kind} x{jax.device_count()}"
  )
  print(
    "| mode | NDCG@10 high | medium | low | all | steps/s | slots that train | trained lists/s |"
  )
  print("|---|---|---|---|---|---:|---:|---:|")
  for mode in MODES:
    metrics, tests = summary["metrics"][mode]["ndcg@10"], summary["tests"].get(mode, {})
    cells = []
    for b in BUCKETS:
      cell = f"{metrics[b]['mean']:.3f} ± {metrics[b]['std']:.3f}"
      test = tests.get("ndcg@10", {}).get(b)
      if test:
        cell += f" ({test['diff']:+.3f}, p_holm {test['p_holm']:.2g})"
      cells.append(cell)
    rate = statistics.median(rates[mode])
    print(
      f"| {mode} | {' | '.join(cells)} | {rate:.1f} | {100 * shares[mode]:.1f}% | "
      f"{rate * batch * shares[mode]:.0f} |"
    )
  print(f"steps/s of each timed run: {rates}")


if __name__ == "__main__":
  app.run(main)
