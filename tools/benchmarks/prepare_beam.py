"""`rankjax data prepare` in-process against its Beam pipeline (DirectRunner, 1 and 2 worker
processes) on the same simulated JSON Lines log: sessions/s and peak RSS of each.

  python tools/benchmarks/prepare_beam.py --sessions 200000 --shards 4

Each run is a `rankjax data prepare` subprocess; its peak RSS is the largest sum over its process
tree (Beam's workers are processes), sampled every 0.1 s with psutil. Needs rankjax[beam].
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time

import psutil


def simulate(directory: pathlib.Path, sessions: int, shards: int, queries: int) -> list[str]:
  """A JSON Lines log of `sessions` sessions in `shards` files: 1-3 queries of a Zipf-like mix
  each, 10 results from 200 documents, clicks at 30%."""
  rng = random.Random(0)
  paths = []
  for f in range(shards):
    path = directory / f"log-{f}.jsonl"
    with path.open("w") as out:
      for s in range(sessions // shards):
        for _ in range(rng.randint(1, 3)):
          q = int(rng.paretovariate(1.2)) % queries
          docs = rng.sample(range(200), 10)
          out.write(
            json.dumps(
              {
                "session_id": f"{f}-{s}",
                "query_id": f"q{q}",
                "doc_ids": [f"d{d}" for d in docs],
                "clicks": [int(rng.random() < 0.3) for _ in docs],
              }
            )
            + "\n"
          )
    paths.append(str(path))
  return paths


def run(command: list[str]) -> tuple[float, float]:
  """(seconds, peak RSS in MB over the process tree) of a command."""
  start = time.perf_counter()
  proc = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  peak = 0
  while proc.poll() is None:
    try:
      tree = [proc, *proc.children(recursive=True)]
      peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
    except psutil.Error:
      pass
    time.sleep(0.1)
  if proc.returncode:
    raise SystemExit(f"{command} exited {proc.returncode}")
  return time.perf_counter() - start, peak / 2**20


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--sessions", type=int, default=200_000)
  p.add_argument("--shards", type=int, default=4)
  p.add_argument("--queries", type=int, default=20_000)
  args = p.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    files = simulate(tmp, args.sessions, args.shards, args.queries)
    mb = sum(os.path.getsize(f) for f in files) / 2**20
    base = [sys.executable, "-m", "rankjax.cli", "data", "prepare", "--format", "jsonl", *files]
    runs = {
      "in-process": [],
      "beam, 1 worker": ["--beam", "--beam-option", "direct_num_workers=1"],
      "beam, 2 workers": ["--beam", "--beam-option", "direct_num_workers=2"],
    }
    rows = {}
    for i, (name, extra) in enumerate(runs.items()):
      out = ["--output", str(tmp / f"out{i}"), "--name", "bench", "--quiet", "--json"]
      rows[name] = run(base + out + extra)
  print(f"{args.sessions:,} sessions, {mb:.0f} MB in {args.shards} files, load {os.getloadavg()}")
  seconds0 = rows["in-process"][0]
  for name, (seconds, rss) in rows.items():
    print(
      f"{name:16} {args.sessions / seconds:9,.0f} sessions/s  x{seconds0 / seconds:.2f} "
      f"in-process  peak RSS {rss:,.0f} MB"
    )


if __name__ == "__main__":
  main()
