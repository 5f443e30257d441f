"""Peak resident memory of `rankjax data prepare` on hostile, small and large input.

Each case runs `rankjax data prepare` in a fresh process and reports its peak resident memory
(ru_maxrss), its wall time and exit status:

- hostile: the small log with `--features` a 20-byte svmlight file `1 qid:q1 50000000:1` (read
  densely, 200 MB of float32 for its one line before any copy); prepare must stop at the line
  (exit status 1) with the memory of its imports.
- small: the real TREC Session 2013 log (3.4 MB) with its qrels.
- repeated: that log's sessions repeated to `--size-gb` (the same query-document pairs again and
  again): memory must not grow with the file's size.
- distinct: a generated JSON-lines log of `--distinct-mb` where every interaction has a query of
  its own (10 documents each): the aggregator keeps statistics per (query, document) pair until
  it writes the dataset, so memory grows with the distinct pairs; reported per pair.

The generated logs are written to a temporary directory (`--workdir`, default under /tmp) and
deleted afterwards.

  PYTHONPATH=. .venv/bin/python tools/benchmarks/prepare_memory.py --size-gb 1 --distinct-mb 100
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

# Sibling: run as a file, this script's directory is sys.path[0].
import xml_parse  # pylint: disable=g-import-not-at-top,wrong-import-position

HOSTILE = "1 qid:q1 50000000:1\n"


def child(argv: list[str]) -> dict:
  """Runs `rankjax data prepare argv` in this process; its exit status, message and peak RSS."""
  from rankjax import cli

  status, message = 0, ""
  try:
    cli.main(["data", "prepare", *argv])
  except SystemExit as e:
    status, message = (1, str(e)) if e.code not in (None, 0) else (0, "")
  return {
    "status": status,
    "message": message[:200],
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
  }


def measure(name: str, argv: list[str], files: list[pathlib.Path]) -> dict:
  start = time.perf_counter()
  out = subprocess.run(
    [sys.executable, __file__, "--child", json.dumps(argv)],
    check=True,
    capture_output=True,
    text=True,
  ).stdout
  r = {"case": name, **json.loads(out.strip().splitlines()[-1])}
  r["seconds"] = round(time.perf_counter() - start, 1)
  r["input_mb"] = round(sum(f.stat().st_size for f in files) / 2**20, 1)
  r["peak_rss_mb"] = round(r["peak_rss_mb"], 1)
  print(json.dumps(r), flush=True)
  return r


def make_distinct_log(out: pathlib.Path, size: int) -> int:
  """A generic-layout JSON-lines log of at least `size` bytes, every line a query of its own
  with 10 documents and one click; returns the number of lines."""
  n, written = 0, 0
  with open(out, "w", encoding="utf-8") as f:
    while written < size:
      docs = [f"q{n}-d{k}" for k in range(10)]
      clicks = [int(k == n % 10) for k in range(10)]
      line = json.dumps({"query_id": f"q{n}", "doc_ids": docs, "clicks": clicks}) + "\n"
      f.write(line)
      written += len(line)
      n += 1
  return n


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--size-gb", type=float, default=1.0, help="the repeated log's size")
  p.add_argument("--distinct-mb", type=float, default=100.0, help="the distinct-query log's size")
  p.add_argument("--workdir", help="where the generated logs go (default: a fresh temp dir)")
  p.add_argument("--child", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    print(json.dumps(child(json.loads(args.child))))
    return
  from rankjax.data import paths

  log = paths.data_path("trec_session_2012_2013", "sessiontrack2013.xml")
  qrels = paths.data_path("trec_session_2012_2013", "relevance2013.txt")
  work = pathlib.Path(tempfile.mkdtemp(prefix="rankjax_prepare_mem_", dir=args.workdir))
  try:
    common = ["--quiet", "--name", "bench", "--output"]
    trec = ["--format", "trec-session", "--labels", str(qrels)]
    hostile = work / "hostile.svm"
    hostile.write_text(HOSTILE)
    rows = [
      measure(
        "hostile",
        [*trec, str(log), *common, str(work / "out_h"), "--features", str(hostile)],
        [log, hostile],
      ),
      measure("small", [*trec, str(log), *common, str(work / "out_s")], [log]),
    ]
    big = xml_parse.make_log(log, work / "repeated.xml", int(args.size_gb * 2**30))
    rows.append(measure("repeated", [*trec, str(big), *common, str(work / "out_r")], [big]))
    big.unlink()
    distinct = work / "distinct.jsonl"
    lines = make_distinct_log(distinct, int(args.distinct_mb * 2**20))
    rows.append(
      measure(
        "distinct",
        ["--format", "jsonl", str(distinct), *common, str(work / "out_d")],
        [distinct],
      )
    )
    small, last = rows[1], rows[-1]
    print(
      json.dumps(
        {
          "distinct_pairs": lines * 10,
          "bytes_per_distinct_pair": round(
            (last["peak_rss_mb"] - small["peak_rss_mb"]) * 2**20 / (lines * 10)
          ),
          "date": datetime.date.today().isoformat(),
          "cpu_count": os.cpu_count(),
          "load_avg_1min": os.getloadavg()[0],
        }
      )
    )
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
