"""Click-model EM at scale, streamed: seconds per iteration, peak RSS, log-likelihood, side by side.

For each log size, a simulated PBM log (10 ranks, 2,000 queries x 30 documents = 60,000 pairs,
Zipf query popularity, each page a rotating window of its query's documents so every pair is seen
at several ranks) is written once as .npy shards (`rankjax.click_models.ShardWriter`), and every
path fits it in its own subprocess (its own peak RSS), from the same start, without smoothing:

  numpy          PBM EM in numpy float64, the whole log in memory (gathers, `np.bincount`)
  full           rankjax's full-batch EM: the whole log as [N, K] arrays, one jitted loop, float32
  stream         rankjax's streamed EM from the shards (`fit(model, ShardSource(dir),
                 batch_sessions=B)`): PBM iterates on the pair-rank counts of one pass; UBM and
                 DBN pass over the shards every iteration; compensated float32 sums
  (pbm-session   PBM streamed with the per-session E-step: a pass over the shards every iteration)

Seconds per iteration: numpy's is the mean over its iterations; rankjax's is
(t(n2) - t(n1)) / (n2 - n1) for fits of n1 and n2 iterations in one process, each after a run that
compiled it, so setup and one-off passes cancel out (a negative difference, noise around an
iteration too short to time, counts as 0). The 50-iteration column is 50 x s/iteration, except
for PBM streamed, whose 51-iteration fit (one pass, then [pairs, ranks] tables) is timed whole;
its "first pass" is t(1) minus one iteration. Peak RSS is each subprocess's VmHWM (Linux).
Log-likelihood: every PBM fit of n2 iterations (4) is scored by one float64 numpy evaluation
here, and its difference from the numpy EM's is shown; `eval` is rankjax's own (streamed,
compensated) evaluation minus the float64 one.

  PYTHONPATH=. .venv/bin/python tools/benchmarks/click_fit_stream.py --sessions 1000000 10000000

UBM and DBN (`--models`) run at the sizes up to `--models-up-to`, 10^6 by default, which keeps
the run near 10 minutes on 2 shared cores; logs larger than `--in-memory-up-to` (10^7) run the
streamed paths alone: numpy's and the full batch's arrays of 10^8 sessions (about 75 and 39 GB)
would not fit.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

QUERIES, DOCS, RANKS = 2000, 30, 10


def simulate(directory: pathlib.Path, sessions: int, seed: int = 0, chunk: int = 1 << 20):
  """PBM clicks with theta_k = 1 / k, written as shards; the true alpha is not needed here."""
  from rankjax.click_models import source

  rng = np.random.default_rng(seed)
  popularity = 1.0 / np.arange(1, QUERIES + 1) ** 1.1
  popularity /= popularity.sum()
  theta = 1.0 / np.arange(1, RANKS + 1)
  alpha = rng.uniform(0.05, 0.9, QUERIES * DOCS)
  writer = source.ShardWriter(directory, RANKS)
  for start in range(0, sessions, chunk):
    n = min(chunk, sessions - start)
    q = rng.choice(QUERIES, n, p=popularity)
    shift = rng.integers(0, DOCS, n)
    doc = (q[:, None] * DOCS + (shift[:, None] + np.arange(RANKS)) % DOCS).astype(np.int32)
    click = rng.random((n, RANKS)) < theta * alpha[doc]
    writer.add(doc, click, np.ones((n, RANKS), bool))
  writer.close(QUERIES * DOCS)


def load(directory) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The whole log in memory: doc int32, click float32, mask bool."""
  from rankjax.click_models import source

  parts = list(source.ShardSource(directory).chunks())
  doc, click, mask = (np.concatenate(a) for a in zip(*parts))
  return doc, click.astype(np.float32), mask


def numpy_pbm_em(doc, click, mask, iterations: int):
  """PBM EM, float64, vectorised over the whole log; seconds of each iteration."""
  num_pairs = int(doc.max()) + 1
  click = click.astype(np.float64)
  d, w = doc[mask], mask.astype(np.float64)
  shown_by_rank, shown_by_pair = w.sum(0), np.bincount(d, minlength=num_pairs)
  theta, alpha = np.full(doc.shape[1], 0.5), np.full(num_pairs, 0.5)
  seconds = []
  for _ in range(iterations):
    start = time.perf_counter()
    a = alpha[doc]
    denom = 1 - theta * a
    post_e = click + (1 - click) * theta * (1 - a) / denom
    post_a = click + (1 - click) * a * (1 - theta) / denom
    theta = (post_e * w).sum(0) / shown_by_rank
    alpha = np.bincount(d, post_a[mask], minlength=num_pairs) / np.maximum(shown_by_pair, 1)
    seconds.append(time.perf_counter() - start)
  return {"theta": theta, "alpha": alpha}, seconds


def pbm_log_likelihood(params, doc, click, mask) -> float:
  """Float64 log-likelihood per shown result of PBM parameters (probabilities clipped as
  rankjax's `log_probs` clips them)."""
  p = np.clip(
    np.asarray(params["theta"], np.float64) * np.asarray(params["alpha"])[doc], 1e-6, 1 - 1e-6
  )
  lp = np.where(click > 0, np.log(p), np.log1p(-p))
  return float(lp[mask].sum() / mask.sum())


def peak_rss_mb() -> float:
  """This process's peak resident memory. Linux's VmHWM, which starts afresh at exec;
  `ru_maxrss` would report the parent's size at fork when that is larger."""
  with open("/proc/self/status") as f:
    return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def _model(name: str):
  from rankjax import click_models as cm

  if name == "pbm-session":  # PBM without its pair-rank E-step: every iteration passes the log
    return dataclasses.replace(cm.get("pbm"), pair_rank_e_step=None)
  return cm.get(name)


def child(args) -> dict:
  """One path on one log, in this process; its figures as a dict."""
  import jax

  from rankjax import click_models as cm
  from rankjax.click_models import stream

  path, model_name = args.child.split(":")
  out = {"path": path, "model": model_name}
  if path == "numpy":
    params, seconds = numpy_pbm_em(*load(args.data), args.n2)
    out["seconds_per_iteration"] = float(np.mean(seconds))
  else:
    model = _model(model_name)
    if path == "full":
      doc, click, mask = load(args.data)
      log = cm.ClickLog(doc, click, mask, [("", "")] * (QUERIES * DOCS))
      arrays = [jax.numpy.asarray(a) for a in (doc, click, mask)]

      em = cm.FIT_METHODS["em"]

      def run(n):
        state = em.start(model, log, None, 0.0)
        state = em.steps(model, log, state, n, *arrays, learning_rate=0.0, smoothing=0.0)
        return em.params(model, state)

      data = log
    else:
      data = cm.ShardSource(args.data)

      def run(n):
        return stream.run_em(
          model, data, params=None, iterations=n, smoothing=0.0, batch_sessions=args.batch
        )[0]

    def timed(n):
      start = time.perf_counter()
      params = jax.block_until_ready(run(n))
      return time.perf_counter() - start, params

    # PBM's streamed EM is one pass and iterations on [pairs, ranks] tables: its 50 iterations
    # are timed whole (the difference of two fits would be the noise of their passes).
    n1, n2 = (1, 51) if path == "stream" and model.pair_rank_e_step else (args.n1, args.n2)
    # Compile first: the full batch's iteration count is a static argument (one program each);
    # the streamed passes compile in a fit's first two iterations (the second leaves out what
    # does not depend on the parameters).
    for n in (n1, n2) if path == "full" else (2,):
      timed(n)
    times = {n1: timed(n1)[0]}
    times[n2], params = timed(n2)
    per_iteration = max(times[n2] - times[n1], 0.0) / (n2 - n1)
    out["seconds_per_iteration"] = per_iteration
    if path == "stream" and model.pair_rank_e_step:
      out["first_pass_seconds"] = times[n1] - n1 * per_iteration
    out["fit_50_seconds"] = times[n2] if n2 == 51 else 50 * per_iteration
    if n2 != args.n2:  # the log-likelihood is compared after n2 iterations on every path
      params = timed(args.n2)[1]
    out["log_likelihood_rankjax"] = cm.evaluate(model, params, data, batch_sessions=args.batch)[
      "log_likelihood"
    ]
  out.setdefault("fit_50_seconds", 50 * out["seconds_per_iteration"])
  out["peak_rss_mb"] = peak_rss_mb()
  np.savez(args.params_out, **{k: np.asarray(v) for k, v in params.items()})
  return out


def parent(args):
  pbm_runs = [("numpy", "pbm"), ("full", "pbm"), ("stream", "pbm"), ("stream", "pbm-session")]
  other_runs = [(p, m) for m in args.models for p in ("full", "stream")]
  started = datetime.datetime.now().isoformat(timespec="minutes")
  meta = {"date": started, "load_avg": os.getloadavg(), "cpus": os.cpu_count()}
  print(json.dumps(meta), flush=True)
  rows = []
  with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
    for sessions in args.sessions:
      data = pathlib.Path(tmp) / f"log{sessions}"
      start = time.perf_counter()
      simulate(data, sessions)
      print(f"simulated {sessions:,} sessions in {time.perf_counter() - start:.0f} s", flush=True)
      in_memory = sessions <= args.in_memory_up_to
      runs = pbm_runs if in_memory else [r for r in pbm_runs if r[0] == "stream"]
      results = {}
      for path, model in runs + (other_runs if sessions <= args.models_up_to else []):
        params_out = pathlib.Path(tmp) / f"{path}-{model}.npz"
        cmd = [sys.executable, __file__, "--child", f"{path}:{model}", "--data", str(data)]
        cmd += ["--params-out", str(params_out), "--n1", str(args.n1), "--n2", str(args.n2)]
        cmd += ["--batch", str(args.batch)] if args.batch else []
        r = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout)
        r.update(sessions=sessions, load_avg_1min=os.getloadavg()[0])
        results[(path, model)] = (r, dict(np.load(params_out)))
        print(json.dumps(r), flush=True)
      log = load(data) if in_memory else None
      reference = pbm_log_likelihood(results[("numpy", "pbm")][1], *log) if in_memory else None
      for (path, model), (r, params) in results.items():
        if model.startswith("pbm") and in_memory:
          ll = pbm_log_likelihood(params, *log)
          r["log_likelihood_float64"] = ll
          r["ll_minus_numpy"] = ll - reference
          if "log_likelihood_rankjax" in r:
            r["eval_minus_float64"] = r["log_likelihood_rankjax"] - ll
        rows.append(r)
      del log
  print(json.dumps({"meta": meta, "rows": rows}))
  print(table(rows))


def table(rows) -> str:
  """Markdown: one row per (size, path, model), ratios against numpy and the full batch."""
  lines = [
    "| sessions | model | path | s/iteration | first pass (s) | 50 iterations (s) | vs numpy | "
    "vs full batch | peak RSS (MB) | LL - numpy EM | eval error |",
    "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  ]
  by = {(r["sessions"], r["path"], r["model"]): r for r in rows}
  for r in rows:
    numpy_row = by.get((r["sessions"], "numpy", "pbm"))
    full = by.get((r["sessions"], "full", r["model"].replace("-session", "")))
    # A time below the timer's noise (tiny logs: two fits' difference) shows no ratio.
    timed = r["fit_50_seconds"] > 0
    vs_numpy = (
      f"{numpy_row['fit_50_seconds'] / r['fit_50_seconds']:.1f}x"
      if timed and numpy_row and r["model"].startswith("pbm")
      else ""
    )
    vs_full = f"{full['fit_50_seconds'] / r['fit_50_seconds']:.1f}x" if timed and full else ""
    fmt = lambda k, f: format(r[k], f) if k in r else ""  # noqa: E731
    lines.append(
      f"| {r['sessions']:,} | {r['model']} | {r['path']} | {fmt('seconds_per_iteration', '.4f')} "
      f"| {fmt('first_pass_seconds', '.2f')} | {fmt('fit_50_seconds', '.1f')} | {vs_numpy} "
      f"| {vs_full} | {fmt('peak_rss_mb', ',.0f')} | {fmt('ll_minus_numpy', '.1e')} "
      f"| {fmt('eval_minus_float64', '.1e')} |"
    )
  return "\n".join(lines)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--sessions", type=int, nargs="+", default=[1_000_000])
  p.add_argument("--models", nargs="*", default=["ubm", "dbn"], help="besides PBM")
  p.add_argument(
    "--models-up-to", type=int, default=1_000_000, help="--models only at logs up to this size"
  )
  p.add_argument(
    "--in-memory-up-to",
    type=int,
    default=10_000_000,
    help="larger logs: only the streamed paths (the others hold the log in memory)",
  )
  p.add_argument("--batch", type=int, help="sessions per streamed batch (default: rankjax's)")
  p.add_argument("--n1", type=int, default=1)
  p.add_argument("--n2", type=int, default=4)
  p.add_argument("--workdir", help="where the shards go (default: the system's temporary dir)")
  p.add_argument("--child", help=argparse.SUPPRESS)
  p.add_argument("--data", help=argparse.SUPPRESS)
  p.add_argument("--params-out", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    print(json.dumps(child(args)))
  else:
    parent(args)


if __name__ == "__main__":
  main()
