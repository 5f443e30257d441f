"""Click-log XML parsing: rankjax's streaming reader vs a whole-document `xml.dom.minidom` parse.

The log is the real TREC Session 2013 log repeated to the requested size (root element kept, the
sessions inside repeated). Each measurement runs in a fresh process, which reports its wall time
and peak resident memory (ru_maxrss); the baseline RSS of a process that only imported the parser
is reported beside it. minidom builds the whole document in memory (as common preprocessing scripts
do, e.g. TianGong-ST's), so it is measured on a smaller prefix file by default; rankjax is measured
on both.

  python tools/benchmarks/parse_throughput.py --size-gb 1 --minidom-mb 100
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time


def make_log(src: pathlib.Path, out: pathlib.Path, size: int) -> pathlib.Path:
  """`src` with its sessions repeated until the file is at least `size` bytes."""
  if out.exists() and out.stat().st_size >= size:
    return out
  text = src.read_text(encoding="utf-8")
  start, end = text.index("<session "), text.rindex("</session>") + len("</session>")
  head, body, tail = text[:start], text[start:end] + "\n", text[end:]
  with open(out, "w", encoding="utf-8") as f:
    f.write(head)
    written = len(head.encode())
    chunk = body.encode()
    while written < size:
      f.write(body)
      written += len(chunk)
    f.write(tail)
  return out


def child(parser: str, path: str) -> dict:
  """Runs one parser over `path` in this process; returns counts, seconds and peak RSS."""
  if parser == "rankjax":
    from rankjax.data import readers
  else:
    import xml.dom.minidom
  base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  t = time.perf_counter()
  if parser == "rankjax":
    summary = readers.ReadSummary()
    for _ in readers.read_sessions("trec-session", path, summary):
      pass
    sessions, clicks = summary.sessions + summary.reasons["empty_session"], summary.clicks
  else:
    dom = xml.dom.minidom.parse(path)
    sessions = len(dom.documentElement.getElementsByTagName("session"))
    clicks = len(dom.documentElement.getElementsByTagName("click"))
  seconds = time.perf_counter() - t
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  return {
    "parser": parser,
    "sessions": sessions,
    "clicks": clicks,
    "seconds": seconds,
    "peak_rss_mb": peak,
    "baseline_rss_mb": base,
  }


def measure(parser: str, path: pathlib.Path) -> dict:
  out = subprocess.run(
    [sys.executable, __file__, "--child", parser, str(path)],
    check=True,
    capture_output=True,
    text=True,
  ).stdout
  r = json.loads(out.strip().splitlines()[-1])
  mb = path.stat().st_size / 2**20
  r.update(file_mb=round(mb, 1), mb_per_s=round(mb / r["seconds"], 1))
  return r


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--size-gb", type=float, default=1.0)
  p.add_argument("--minidom-mb", type=float, default=100.0, help="size of the file minidom parses")
  p.add_argument("--workdir", default="/tmp/rankjax_parse_bench")
  p.add_argument("--child", nargs=2, metavar=("PARSER", "FILE"), help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    print(json.dumps(child(*args.child)))
    return
  from rankjax.data import paths

  src = paths.data_path("trec_session_2012_2013", "sessiontrack2013.xml")
  work = pathlib.Path(args.workdir)
  work.mkdir(parents=True, exist_ok=True)
  small = make_log(
    src, work / f"trec2013x_{int(args.minidom_mb)}mb.xml", int(args.minidom_mb * 2**20)
  )
  big = make_log(src, work / f"trec2013x_{args.size_gb:g}gb.xml", int(args.size_gb * 2**30))
  rows = [measure("minidom", small), measure("rankjax", small), measure("rankjax", big)]
  for r in rows:
    print(json.dumps(r))
  m, s = rows[0], rows[1]
  assert m["sessions"] == s["sessions"] and m["clicks"] == s["clicks"], "the parsers disagree"
  print(
    json.dumps(
      {
        "throughput_ratio_same_file": round(s["mb_per_s"] / m["mb_per_s"], 1),
        "peak_rss_ratio_same_file": round(m["peak_rss_mb"] / s["peak_rss_mb"], 1),
        "rankjax_big_file_mb_per_s": rows[2]["mb_per_s"],
        "rankjax_big_file_peak_rss_mb": round(rows[2]["peak_rss_mb"], 1),
        "cpu_count": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0],
      }
    )
  )


if __name__ == "__main__":
  main()
