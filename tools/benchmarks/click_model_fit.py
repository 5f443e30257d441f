"""Click-model fitting time on a simulated log: rankjax (JAX, jitted) vs EM in pure Python.

PyClick (the usual Python baseline) is not on PyPI and cannot be installed here; the other PyPI
click-model packages do not install on Python 3 (`clickmodels` 1.0.2 is Python 2 code,
`pyclickmodels` 0.0.2 fails to build). The baseline is therefore PBM EM written the way PyClick
writes it: a Python loop over sessions and ranks accumulating posterior counts in dicts. Both run
the same EM from the same start (0.5 everywhere, no smoothing), so their parameters must agree;
the script checks that, then reports seconds per EM iteration.

  python tools/benchmarks/click_model_fit.py --sessions 1000000 --iterations 50 \
      --python-iterations 2
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time

import numpy as np

from rankjax import click_models as cm
from rankjax.data import schema
from rankjax.sim import clicks as sim_lib


def python_pbm_em(sessions, num_ranks: int, iterations: int):
  """PBM EM over [(pair ids, clicks)] sessions with dict accumulators (PyClick's structure)."""
  theta = [0.5] * num_ranks
  alpha = collections.defaultdict(lambda: 0.5)
  for _ in range(iterations):
    a_num, a_den = collections.defaultdict(float), collections.defaultdict(float)
    e_num, e_den = [0.0] * num_ranks, [0.0] * num_ranks
    for docs, clicks in sessions:
      for k, (d, c) in enumerate(zip(docs, clicks)):
        t, a = theta[k], alpha[d]
        if c:
          pe = pa = 1.0
        else:
          denom = 1 - t * a
          pe, pa = t * (1 - a) / denom, a * (1 - t) / denom
        e_num[k] += pe
        e_den[k] += 1
        a_num[d] += pa
        a_den[d] += 1
    theta = [n / max(m, 1) for n, m in zip(e_num, e_den)]
    alpha = collections.defaultdict(lambda: 0.5, {d: a_num[d] / a_den[d] for d in a_den})
  return theta, alpha


def synthetic_lists(num_queries: int, docs_per_query: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  return [
    schema.RankingList(
      qid=str(q),
      doc_ids=[f"{q}-{d}" for d in range(docs_per_query)],
      labels={"human": rng.integers(0, 5, docs_per_query).astype(np.float32)},
    )
    for q in range(num_queries)
  ]


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--sessions", type=int, default=1_000_000)
  p.add_argument("--queries", type=int, default=2000)
  p.add_argument("--docs-per-query", type=int, default=30)
  p.add_argument("--iterations", type=int, default=50)
  p.add_argument("--python-iterations", type=int, default=2)
  args = p.parse_args()
  import jax

  t = time.perf_counter()
  sim = sim_lib.simulate(
    synthetic_lists(args.queries, args.docs_per_query),
    sessions=args.sessions,
    model="pbm",
    eta=1.0,
    seed=0,
  )
  log = sim.log
  out = {
    "sessions": log.num_sessions,
    "pairs": log.num_pairs,
    "ranks": log.num_ranks,
    "simulate_seconds": round(time.perf_counter() - t, 1),
    "device": str(jax.devices()[0]),
    "cpu_count": os.cpu_count(),
    "load_avg_1min": os.getloadavg()[0],
  }
  pbm = cm.get("pbm")
  for name, method, iters in (
    ("pbm", "em", args.iterations),
    ("ubm", "em", args.iterations),
    ("sdbn", "counts", 1),
    ("dbn", "gradient", args.iterations),
  ):
    first = cm.fit(cm.get(name), log, method=method, iterations=iters, smoothing=0.0)
    again = cm.fit(cm.get(name), log, method=method, iterations=iters, smoothing=0.0)
    out[f"rankjax_{name}_{method}"] = {
      "iterations": iters,
      "first_call_seconds": round(first.seconds, 2),
      "seconds": round(again.seconds, 2),
      "seconds_per_iteration": round(again.seconds / iters, 4),
      "train_perplexity": round(again.train["perplexity"], 4),
    }

  sessions = [(log.doc[n].tolist(), log.click[n].tolist()) for n in range(log.num_sessions)]
  t = time.perf_counter()
  theta_py, alpha_py = python_pbm_em(sessions, log.num_ranks, args.python_iterations)
  py_seconds = time.perf_counter() - t
  same = cm.fit(pbm, log, method="em", iterations=args.python_iterations, smoothing=0.0).params
  theta_diff = float(np.abs(np.asarray(same["theta"]) - np.array(theta_py)).max())
  seen = np.array(sorted(alpha_py))
  alpha_diff = float(
    np.abs(np.asarray(same["alpha"])[seen] - np.array([alpha_py[d] for d in seen])).max()
  )
  assert theta_diff < 1e-3 and alpha_diff < 1e-3, (theta_diff, alpha_diff)
  per_iter_py = py_seconds / args.python_iterations
  per_iter_jax = out["rankjax_pbm_em"]["seconds_per_iteration"]
  out["python_pbm_em"] = {
    "iterations": args.python_iterations,
    "seconds": round(py_seconds, 1),
    "seconds_per_iteration": round(per_iter_py, 2),
    "max_param_diff_vs_rankjax": max(theta_diff, alpha_diff),
  }
  out["pbm_em_speedup_per_iteration"] = round(per_iter_py / per_iter_jax, 1)
  print(json.dumps(out))


if __name__ == "__main__":
  main()
