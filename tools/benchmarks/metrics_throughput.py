r"""Throughput of NDCG@10 and ERR@10 on the CPU: rankjax next to pytrec_eval and ranx.

Lists of `--list_size` documents with random scores and graded labels 0-4 are
scored by each library in the same process; the table gives lists per second
of the compute alone and the one-off compile time (XLA for rankjax, numba for
ranx). Setup that is not computing the metric (building dicts, numba typed
lists, trec_eval's qrels index) is not timed.

* rankjax: one `jax.jit`-compiled call over the whole `[num_lists, list_size]`
  batch, per-list values (`reduce_fn=None`), best of `--repeats`.
* pytrec_eval: `RelevanceEvaluator.evaluate(run)` on `{qid: {docno: score}}`
  dicts (trec_eval's `ndcg_cut.10`, linear gain), one call.
* ranx: its numba kernel `ranx.metrics.ndcg` (linear gain) on typed lists that
  are already sorted by score, so ranx's sorting is not timed; first call
  (numba compile) reported separately.

Neither peer implements ERR; its row has rankjax alone. The per-list values of
the peers are checked against rankjax's (same gain) before the table prints.

Run (the figures in tools/benchmarks/README.md):

  .venv/bin/python tools/benchmarks/metrics_throughput.py --num_lists=1000000

and `--num_lists=10000` for a quick check.
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from rankjax import metrics


def make_lists(num_lists: int, list_size: int, seed: int):
  rng = np.random.default_rng(seed)
  scores = rng.normal(size=(num_lists, list_size)).astype(np.float32)
  labels = rng.integers(0, 5, size=(num_lists, list_size)).astype(np.float32)
  return scores, labels


def time_rankjax(metric_fn, scores, labels, repeats: int, **kwargs):
  """(compile seconds, best compute seconds, per-list values)."""
  fn = jax.jit(lambda s, y: metric_fn(s, y, reduce_fn=None, no_relevant="zero", **kwargs))
  scores, labels = jax.device_put(scores), jax.device_put(labels)
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

  num_lists, list_size = scores.shape
  ids = np.arange(list_size, dtype=np.float64)
  qrels, run = numba.typed.List(), numba.typed.List()
  for i in tqdm.trange(num_lists, desc="ranx typed lists", mininterval=5):
    by_label = np.argsort(-labels[i], kind="stable")
    by_score = np.argsort(-scores[i], kind="stable")
    qrels.append(np.stack([ids[by_label], labels[i][by_label].astype(np.float64)], axis=1))
    run.append(np.stack([ids[by_score], scores[i][by_score].astype(np.float64)], axis=1))
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
  parser.add_argument("--peers", default="pytrec_eval,ranx",
                      help="comma-separated peers to time; empty for rankjax only")
  args = parser.parse_args()

  scores, labels = make_lists(args.num_lists, args.list_size, args.seed)
  n, k = args.num_lists, args.topn
  print(f"{n:,} lists of {args.list_size}, top {k}; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}; jax {jax.__version__} on {jax.devices()[0]}")

  rows = []  # (library, metric, compile_s, compute_s)
  rankjax_values = {}
  for metric, gain in (("NDCG", "exp2"), ("NDCG", "linear"), ("ERR", "exp2")):
    metric_fn = metrics.ndcg_metric if metric == "NDCG" else metrics.err_metric
    gain_fn = metrics.exp2_gain if gain == "exp2" else metrics.linear_gain
    compile_s, compute_s, values = time_rankjax(
        metric_fn, scores, labels, args.repeats, topn=k, gain_fn=gain_fn)
    rows.append((f"rankjax ({gain} gain)", f"{metric}@{k}", compile_s, compute_s))
    rankjax_values[metric, gain] = values

  peers = [p for p in args.peers.split(",") if p]
  if "pytrec_eval" in peers:
    setup_s, compute_s, values = time_pytrec_eval(scores, labels, k)
    np.testing.assert_allclose(values, rankjax_values["NDCG", "linear"], rtol=1e-4, atol=1e-5)
    rows.append((f"pytrec_eval (linear gain; index build {setup_s:.1f} s)", f"NDCG@{k}", None,
                 compute_s))
  if "ranx" in peers:
    compile_s, compute_s, values = time_ranx(scores, labels, k)
    np.testing.assert_allclose(values, rankjax_values["NDCG", "linear"], rtol=1e-4, atol=1e-5)
    rows.append(("ranx (linear gain, pre-sorted)", f"NDCG@{k}", compile_s, compute_s))

  best_peer = max((n / r[3] for r in rows if not r[0].startswith("rankjax")), default=None)
  print("\n| library | metric | compile (s) | compute (s) | lists/s | vs fastest peer |")
  print("|---|---|---:|---:|---:|---:|")
  for library, metric, compile_s, compute_s in rows:
    rate = n / compute_s
    ratio = f"{rate / best_peer:.1f}x" if best_peer else "n/a"
    compile_text = "-" if compile_s is None else f"{compile_s:.2f}"
    print(f"| {library} | {metric} | {compile_text} | {compute_s:.3f} | {rate:,.0f} | {ratio} |")


if __name__ == "__main__":
  main()
