"""Fit a click model to a log: `python -m rankjax.click_models --model pbm --format FMT FILES...`.

Reads the log with `rankjax.data.readers`, holds out a random fraction of the result pages, fits,
and prints one JSON line: the model, method, held-out and training log-likelihood and perplexity,
and for position models the propensities by rank (relative to rank 1), ready for
`config.supervision.propensities` of the `ips_pbm` weights hook.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from rankjax import cli
from rankjax import click_models as cm
from rankjax.data import readers


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(prog="python -m rankjax.click_models", description=__doc__.split("\n")[0])
  p.add_argument("--model", choices=sorted(cm.MODELS), default="pbm")
  p.add_argument("--method", help="em, counts or gradient (default: the model's first)")
  p.add_argument("--format", required=True, choices=sorted(readers.FORMATS))
  p.add_argument("files", nargs="+")
  p.add_argument("--max-rank", type=int, default=10)
  p.add_argument("--iterations", type=int, default=50)
  p.add_argument("--smoothing", type=float, default=1.0)
  p.add_argument("--test-fraction", type=float, default=0.2)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args(argv)
  summary = readers.ReadSummary()
  log = cm.ClickLog.from_sessions(readers.read_sessions(args.format, args.files, summary), args.max_rank)
  if log.num_sessions == 0:
    raise SystemExit(f"no result page read from {args.files}: {summary}")
  train, test = log.split(args.test_fraction, args.seed)
  model = cm.get(args.model)
  r = cm.fit(model, train, method=args.method, iterations=args.iterations, smoothing=args.smoothing)
  out = {"model": model.name, "method": r.method, "pages": log.num_sessions, "pairs": log.num_pairs,
         "seconds": round(r.seconds, 3), "train": r.train,
         "test": cm.evaluate(model, r.params, test) if test.num_sessions else None,
         "skipped": summary.skipped}
  if model.propensity is not None:
    theta = np.asarray(model.propensity(r.params), np.float64)
    out["propensities"] = (theta / theta[0]).round(6).tolist()
  print(json.dumps(out))
  return out


if __name__ == "__main__":
  cli.one_line_errors(main)()
