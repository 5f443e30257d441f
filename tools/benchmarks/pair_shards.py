"""Streamed click-model EM with the pair tables split by pair id over the devices
(`shard_pairs=True`, `rankjax.click_models.pair_shards`) against held whole on every device, side
by side in one process on the same devices.

The log: simulated PBM clicks over many pairs (`--pairs`, each session a query's 10 documents in a
random order, so pairs are seen at several ranks), held in memory (`LogSource`). Each path fits
every model by streamed EM, alternating, `--repeats` rounds, best round kept; seconds per
iteration are (t(n2) - t(n1)) / (n2 - n1) for fits of n1 and n2 iterations (PBM: its 50
iterations on the pair-rank table, timed whole). Per device: the bytes of the state the fit keeps
between batches on device 0 (the parameters and the sums with their compensations; PBM: the
pair-rank counts), read from the arrays' shards. The two paths' parameters are compared.

On one CPU the "devices" are fake (`--devices`, `XLA_FLAGS=--xla_force_host_platform_device_count`)
and share its cores and memory, so the time ratio is the cost of routing a batch's statistics to
their owners (two all-gathers and a reduce-scatter of [batch, ranks] per per-pair table), not a
speed-up:

  PYTHONPATH=. .venv/bin/python tools/benchmarks/pair_shards.py --sessions 1000000 --pairs 1000000
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time


def _simulated_log(sessions: int, pairs: int, ranks: int, seed: int = 0):
  import numpy as np

  from rankjax import click_models as cm

  rng = np.random.default_rng(seed)
  queries = pairs // ranks
  q = rng.integers(0, queries, sessions)
  order = rng.permuted(np.tile(np.arange(ranks), (sessions, 1)), axis=1)
  doc = (q[:, None] * ranks + order).astype(np.int32)
  alpha = rng.uniform(0.05, 0.9, queries * ranks)
  click = rng.random((sessions, ranks)) < alpha[doc] / np.arange(1, ranks + 1)
  log = cm.ClickLog(
    doc, click.astype(np.float32), np.ones_like(click), [("", "")] * (queries * ranks)
  )
  return cm.LogSource(log)


def _state_bytes(source, model, batch: int, shard_pairs: bool) -> int:
  """Bytes on device 0 of the parameters and the accumulator of one E-step pass (PBM: of its
  pair-rank counts pass, which its EM iterates on)."""
  import jax

  from rankjax.click_models import stream

  feed = stream._Feed(source, batch, None, shard_pairs)  # noqa: SLF001
  per_pair = stream._params_per_pair(model, source.num_ranks)  # noqa: SLF001
  params = feed.put(stream._float32(model.init(source.num_pairs, source.num_ranks)), per_pair)  # noqa: SLF001
  if model.pair_rank_e_step is not None:
    fn, sums_per_pair = feed.stats(stream._constant(stream._nothing), counts=True)  # noqa: SLF001
    args = ()
  else:
    fn, sums_per_pair = feed.stats(stream._constant(model.e_step), (params,), per_pair)  # noqa: SLF001
    args = (params,)
  acc = stream._zeros(jax.eval_shape(fn, *args, *feed.shapes()))  # noqa: SLF001
  acc = feed.put(acc, None if sums_per_pair is None else sums_per_pair * 2)
  device = jax.devices()[0]
  return sum(
    s.data.nbytes
    for leaf in jax.tree.leaves((params, acc))
    for s in leaf.addressable_shards
    if s.device == device
  )


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--sessions", type=int, default=1_000_000)
  p.add_argument("--pairs", type=int, default=1_000_000)
  p.add_argument("--devices", type=int, default=8)
  p.add_argument("--models", nargs="+", default=["pbm", "ubm", "dbn"])
  p.add_argument("--batch", type=int, default=1 << 16)
  p.add_argument("--repeats", type=int, default=2)
  p.add_argument("--n1", type=int, default=1)
  p.add_argument("--n2", type=int, default=3)
  args = p.parse_args()
  # Fake devices on a busy CPU can leave a collective waiting longer than XLA's 40 s before it
  # aborts the process: wait as long as it takes.
  os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + (
    f" --xla_force_host_platform_device_count={args.devices}"
    " --xla_cpu_collective_call_terminate_timeout_seconds=120"
  )
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  import jax
  import numpy as np

  from rankjax import click_models as cm
  from rankjax.click_models import stream

  meta = {
    "date": datetime.datetime.now().isoformat(timespec="minutes"),
    "load_avg": os.getloadavg(),
    "cpus": os.cpu_count(),
    "devices": jax.device_count(),
    **vars(args),
  }
  print(json.dumps(meta), flush=True)
  source = _simulated_log(args.sessions, args.pairs, 10)
  rows = []
  for name in args.models:
    model = cm.get(name)
    n1, n2 = (1, 51) if model.pair_rank_e_step else (args.n1, args.n2)

    def fit(n, shard_pairs, model=model):
      start = time.perf_counter()
      params = stream.run_em(
        model,
        source,
        params=None,
        iterations=n,
        smoothing=1.0,
        batch_sessions=args.batch,
        shard_pairs=shard_pairs,
      )[0]
      params = jax.block_until_ready(params)
      return time.perf_counter() - start, params

    best = {False: float("inf"), True: float("inf")}
    params = {}
    for shard_pairs in best:  # compile both paths' passes first
      fit(2, shard_pairs)
    for _ in range(args.repeats):
      for shard_pairs in best:
        t1, _ = fit(n1, shard_pairs)
        t2, params[shard_pairs] = fit(n2, shard_pairs)
        per_iteration = t2 / n2 if n2 == 51 else max(t2 - t1, 0.0) / (n2 - n1)
        best[shard_pairs] = min(best[shard_pairs], per_iteration)
    diff = max(
      float(np.nanmax(np.abs(np.asarray(params[True][k]) - np.asarray(params[False][k]))))
      for k in params[False]
    )
    row = {
      "model": name,
      "s_per_iteration_whole": best[False],
      "s_per_iteration_split": best[True],
      "split_vs_whole": best[False] / best[True],
      "state_bytes_device0_whole": _state_bytes(source, model, args.batch, False),
      "state_bytes_device0_split": _state_bytes(source, model, args.batch, True),
      "max_param_difference": diff,
      "load_avg_1min": os.getloadavg()[0],
    }
    rows.append(row)
    print(json.dumps(row), flush=True)
  print(
    "| model | s/iteration, tables whole | split by pair id | speed split / whole "
    "| per-pair state on device 0: whole | split | largest parameter difference |"
  )
  print("|---|---:|---:|---:|---:|---:|---:|")
  for r in rows:
    print(
      f"| {r['model']} | {r['s_per_iteration_whole']:.3f} | {r['s_per_iteration_split']:.3f} "
      f"| {r['split_vs_whole']:.2f}x | {r['state_bytes_device0_whole'] / 2**20:.1f} MB "
      f"| {r['state_bytes_device0_split'] / 2**20:.1f} MB | {r['max_param_difference']:.1e} |"
    )
  return 0


if __name__ == "__main__":
  sys.exit(main())
