"""Scoring throughput of a trained run three ways, on the same lists: the `jax.export` artifact
(loaded with jax and numpy alone), the in-process `rankjax.Ranker`, and training's evaluation path
(`engine.evaluate.evaluate_split`, which also computes the metrics). One run, side by side, in
lists/s after a warm-up pass (compilation excluded).

  rankjax train --config=configs/mslr_mlp.py:local --workdir=/tmp/rankjax_run
  python tools/benchmarks/predict_throughput.py --workdir /tmp/rankjax_run --split test \
      --repeats 20
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from rankjax import export_check
from rankjax.data import pipeline, store
from rankjax.engine import evaluate
from rankjax.serve import batching, export, ranker


def _lists(split) -> list:
  from rankjax.data import schema  # pylint: disable=g-import-not-at-top

  out = []
  for i in range(len(split)):
    rec = split[i]
    out.append(
      schema.RankingList(
        qid=rec["qid"].decode(),
        doc_ids=[d.decode() for d in rec["doc_ids"]],
        features=rec.get("features"),
        tokens=rec.get("tokens"),
        token_types=rec.get("token_types"),
      )
    )
  return out


def _rate(fn, n_lists: int, repeats: int) -> float:
  fn()  # warm-up: compiles every shape
  start = time.perf_counter()
  for _ in range(repeats):
    fn()
  return n_lists * repeats / (time.perf_counter() - start)


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--workdir", required=True)
  p.add_argument("--split", default="test")
  p.add_argument("--repeats", type=int, default=20)
  args = p.parse_args()

  r = ranker.Ranker.load(args.workdir)
  split = store.open_split(r.data_path, args.split)
  lists = _lists(split)
  with tempfile.TemporaryDirectory() as tmp:
    export.export(r, tmp)
    score, signature = export_check.load(tmp)
    names = list(signature["inputs"])
    padded = [
      {k: b[k] for k in names}
      for b, _ in batching.batches(
        lists, max_batch=r.max_batch, list_sizes=r.list_sizes, token_widths=r.token_widths
      )
    ]
    rates = {
      "exported (jax.export, padded batches)": _rate(
        lambda: [np.asarray(score(b)) for b in padded], len(lists), args.repeats
      )
    }
  rates["Ranker.score (in process, from lists)"] = _rate(
    lambda: r.score(lists), len(lists), args.repeats
  )
  from rankjax.engine import mesh as mesh_lib  # pylint: disable=g-import-not-at-top

  mesh = mesh_lib.make_mesh()
  eval_step = evaluate.make_eval_step(r.model, r.config.eval.metrics, "human", mesh)
  rates["training evaluation (evaluate_split, with metrics)"] = _rate(
    lambda: evaluate.evaluate_split(
      eval_step,
      r.variables,
      split,
      batch_size=r.config.eval.batch_size,
      list_sizes=r.config.data.list_sizes,
      mesh=mesh,
      token_widths=pipeline.token_widths(split, r.config.data.token_buckets),
    ),
    len(lists),
    args.repeats,
  )
  print(json.dumps({"lists": len(lists), "repeats": args.repeats, "lists_per_s": rates}, indent=1))
  for name, rate in rates.items():
    print(f"| {name} | {rate:,.0f} |")


if __name__ == "__main__":
  main()
