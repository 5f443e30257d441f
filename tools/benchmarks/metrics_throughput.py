r"""Throughput of NDCG@10 and ERR@10 on the CPU: rankjax next to pytrec_eval and ranx.

Lists of `--list_size` documents with random scores and graded labels 0-4 are
scored by each library in the same process; the table gives lists per second
of the compute alone and the one-off compile time (XLA for rankjax, numba for
ranx). Setup that is not computing the metric (building dicts, numba typed
lists, trec_eval's qrels index) is not timed.

* rankjax: one `jax.jit`-compiled call over the whole `[num_lists, list_size]`
  batch, per-list values (`reduce_fn=None`), best of `--repeats`. The batch is
  sharded over `--devices` CPU devices (default: one per core), as ranx's
  numba kernel runs one thread per core.
* pytrec_eval: `RelevanceEvaluator.evaluate(run)` on `{qid: {docno: score}}`
  dicts (trec_eval's `ndcg_cut.10`, linear gain), one call.
* ranx: its numba kernel `ranx.metrics.ndcg` (linear gain) on typed lists that
  are already sorted by score, so ranx's sorting is not timed; first call
  (numba compile) reported separately.

Neither peer implements ERR; its row has rankjax alone. The per-list values of
the peers are checked against rankjax's (same gain) before the table prints.

Run (the figures in tools/benchmarks/README.md):

  PYTHONPATH=. .venv/bin/python tools/benchmarks/metrics_throughput.py --num_lists=1000000

and `--num_lists=10000` for a quick check.
"""

import argparse
import os
import sys
import time


def _set_cpu_devices():
  """One XLA CPU device per core (or `--devices=N`); must run before JAX starts."""
  count = os.cpu_count()
  for arg in sys.argv[1:]:
    if arg.startswith("--devices="):
      count = int(arg.split("=", 1)[1])
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={count}"
  )


_set_cpu_devices()

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import tqdm  # pylint: disable=wrong-import-position
from jax.sharding import NamedSharding  # pylint: disable=wrong-import-position
from jax.sharding import PartitionSpec as P

from rankjax.ranking import metrics  # pylint: disable=wrong-import-position


def make_lists(num_lists: int, list_size: int, seed: int):
  rng = np.random.default_rng(seed)
  scores = rng.normal(size=(num_lists, list_size)).astype(np.float32)
  labels = rng.integers(0, 5, size=(num_lists, list_size)).astype(np.float32)
  return scores, labels


def time_rankjax(metric_fn, scores, labels, repeats: int, **kwargs):
  """(compile seconds, best compute seconds, per-list values)."""
  fn = jax.jit(lambda s, y: metric_fn(s, y, reduce_fn=None, no_relevant="zero", **kwargs))
  sharding = NamedSharding(jax.make_mesh((jax.device_count(),), ("data",)), P("data"))
  scores, labels = jax.device_put(scores, sharding), jax.device_put(labels, sharding)
  start = time.perf_counter()
  compiled = fn.lower(scores, labels).compile()
  compile_s = time.perf_counter() - start
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    values = compiled(scores, labels).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return compile_s, best, np.asarray(values)


def time_pytrec_eval(scores, labels, topn: int):
  """(setup seconds, compute seconds, per-list values) for trec_eval's ndcg_cut."""
  import pytrec_eval  # pylint: disable=g-import-not-at-top

  num_lists, list_size = scores.shape
  docnos = [f"d{j}" for j in range(list_size)]
  qrels, run = {}, {}
  for i in tqdm.trange(num_lists, desc="pytrec_eval dicts", mininterval=5):
    qid = str(i)
    qrels[qid] = dict(zip(docnos, labels[i].astype(int).tolist()))
    run[qid] = dict(zip(docnos, scores[i].tolist()))
  start = time.perf_counter()
  evaluator = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{topn}"})
  setup_s = time.perf_counter() - start
  start = time.perf_counter()
  results = evaluator.evaluate(run)
  compute_s = time.perf_counter() - start
  values = np.asarray([results[str(i)][f"ndcg_cut_{topn}"] for i in range(num_lists)])
  return setup_s, compute_s, values


def time_ranx(scores, labels, topn: int):
  """(numba compile seconds, compute seconds, per-list values) for ranx's NDCG kernel."""
  import numba  # pylint: disable=g-import-not-at-top
  from ranx import metrics as ranx_metrics  # pylint: disable=g-import-not-at-top

  @numba.njit
  def typed_list(pairs):  # [num_lists, list_size, 2] -> List of [list_size, 2].
    out = numba.typed.List()
    for i in range(pairs.shape[0]):
      out.append(pairs[i])
    return out

  ids = np.broadcast_to(np.arange(scores.shape[1], dtype=np.float64), scores.shape)
  by_label = np.argsort(-labels, axis=1, kind="stable")
  by_score = np.argsort(-scores, axis=1, kind="stable")
  take = lambda a, order: np.take_along_axis(a.astype(np.float64), order, axis=1)
  qrels = typed_list(np.stack([take(ids, by_label), take(labels, by_label)], axis=-1))
  run = typed_list(np.stack([take(ids, by_score), take(scores, by_score)], axis=-1))
  start = time.perf_counter()
  ranx_metrics.ndcg(qrels[:1], run[:1], k=topn)
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  values = ranx_metrics.ndcg(qrels, run, k=topn)
  compute_s = time.perf_counter() - start
  return compile_s, compute_s, np.asarray(values)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num_lists", type=int, default=1_000_000)
  parser.add_argument("--list_size", type=int, default=10)
  parser.add_argument("--topn", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument(
    "--devices",
    type=int,
    default=os.cpu_count(),
    help="CPU devices to shard the lists over (read before JAX starts)",
  )
  parser.add_argument(
    "--peers",
    default="pytrec_eval,ranx",
    help="comma-separated peers to time; empty for rankjax only",
  )
  args = parser.parse_args()

  scores, labels = make_lists(args.num_lists, args.list_size, args.seed)
  n, k = args.num_lists, args.topn
  print(
    f"{n:,} lists of {args.list_size}, top {k}; {os.cpu_count()} CPUs, "
    f"load average {os.getloadavg()[0]:.2f}; jax {jax.__version__}, "
    f"{jax.device_count()} CPU devices"
  )

  rows = []  # (library, metric, compile_s, compute_s)
  rankjax_values = {}
  for metric, gain in (("NDCG", "exp2"), ("NDCG", "linear"), ("ERR", "exp2")):
    metric_fn = metrics.ndcg_metric if metric == "NDCG" else metrics.err_metric
    gain_fn = metrics.exp2_gain if gain == "exp2" else metrics.linear_gain
    compile_s, compute_s, values = time_rankjax(
      metric_fn, scores, labels, args.repeats, topn=k, gain_fn=gain_fn
    )
    rows.append((f"rankjax ({gain} gain)", f"{metric}@{k}", compile_s, compute_s))
    rankjax_values[metric, gain] = values

  peers = [p for p in args.peers.split(",") if p]
  if "pytrec_eval" in peers:
    setup_s, compute_s, values = time_pytrec_eval(scores, labels, k)
    np.testing.assert_allclose(values, rankjax_values["NDCG", "linear"], rtol=1e-4, atol=1e-5)
    rows.append(
      (f"pytrec_eval (linear gain; index build {setup_s:.1f} s)", f"NDCG@{k}", None, compute_s)
    )
  if "ranx" in peers:
    compile_s, compute_s, values = time_ranx(scores, labels, k)
    np.testing.assert_allclose(values, rankjax_values["NDCG", "linear"], rtol=1e-4, atol=1e-5)
    rows.append(("ranx (linear gain, pre-sorted)", f"NDCG@{k}", compile_s, compute_s))

  peer_rates = {r[0].split()[0]: n / r[3] for r in rows if not r[0].startswith("rankjax")}
  print(
    "\n| library | metric | compile (s) | compute (s) | lists/s |"
    + "".join(f" vs {peer} |" for peer in peer_rates)
  )
  print("|---|---|---:|---:|---:|" + "---:|" * len(peer_rates))
  for library, metric, compile_s, compute_s in rows:
    rate = n / compute_s
    compile_text = "-" if compile_s is None else f"{compile_s:.2f}"
    ratios = "".join(f" {rate / peer_rate:.1f}x |" for peer_rate in peer_rates.values())
    print(f"| {library} | {metric} | {compile_text} | {compute_s:.3f} | {rate:,.0f} |{ratios}")


if __name__ == "__main__":
  main()
