"""Click-log XML parsing, side by side on one file: rankjax's session reader against a plain
`xml.etree.ElementTree.iterparse` pass and a plain `lxml.etree.iterparse` pass (and, on a smaller
prefix file, a whole-document `xml.dom.minidom` parse). The reader runs twice: as installed (its
walk of a session's elements in C, `_xml_fields.pyx`) and with the walk in Python alone
(`rankjax_python`, the reader where the extension is not built).

The log is the real TREC Session 2013 log repeated to the requested size (root element kept, the
sessions inside repeated) in `--workdir`. The plain passes do what the usual constant-memory idiom
does: iterate over every element's end event and clear the element, counting sessions and clicks
so that every parser is checked to read the same log. rankjax reads every session into its
records (`rankjax.data.readers.read_sessions("trec-session", ...)`).

Each measurement runs in a fresh process, which reports its wall and CPU seconds and its peak
resident memory (VmHWM; the peak of the process after its imports is reported beside it). The
parsers take turns, `--repeats` rounds, and each keeps its best round, so a busy machine slows them
alike; the ratios use CPU seconds (wall seconds are in the rows too).

  python tools/benchmarks/xml_parse.py --size 100M
  python tools/benchmarks/xml_parse.py --size 1G --repeats 1
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import time

PARSERS = ("rankjax", "rankjax_python", "etree", "lxml")
UNITS = {"K": 2**10, "M": 2**20, "G": 2**30}


def parse_size(text: str) -> int:
  """Bytes of "100M", "1G", "512K" or a plain number of bytes."""
  unit = UNITS.get(text[-1:].upper())
  return int(float(text[:-1]) * unit) if unit else int(text)


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


def _rankjax(path: str) -> tuple[int, int]:
  from rankjax.data import readers

  summary = readers.ReadSummary()
  for _ in readers.read_sessions("trec-session", path, summary):
    pass
  return summary.sessions + summary.reasons["empty_session"], summary.clicks


def _iterparse(iterparse, path: str) -> tuple[int, int]:
  sessions = clicks = 0
  for _, el in iterparse(path):
    tag = el.tag
    if tag == "session":
      sessions += 1
    elif tag == "click":
      clicks += 1
    el.clear()
  return sessions, clicks


def _minidom(path: str) -> tuple[int, int]:
  import xml.dom.minidom

  root = xml.dom.minidom.parse(path).documentElement
  return len(root.getElementsByTagName("session")), len(root.getElementsByTagName("click"))


def peak_rss_mb() -> float:
  """This process's peak resident memory: VmHWM, which starts afresh at exec (ru_maxrss keeps the
  parent's peak across it on Linux); ru_maxrss where there is no /proc."""
  try:
    with open("/proc/self/status") as f:
      return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
  except (OSError, StopIteration):
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(parser: str, path: str) -> dict:
  """Runs one parser over `path` in this process; returns counts, seconds and peak RSS."""
  if parser.startswith("rankjax"):
    from rankjax.data.readers import xml_sessions

    if parser == "rankjax_python":
      xml_sessions._xml_fields = None
    elif xml_sessions._xml_fields is None:
      sys.exit("the reader's C walk is not built (pip install -e . with a C compiler)")
    run = _rankjax
  elif parser == "etree":
    import xml.etree.ElementTree as ET

    run = lambda p: _iterparse(ET.iterparse, p)  # noqa: E731
  elif parser == "lxml":
    from lxml import etree

    run = lambda p: _iterparse(etree.iterparse, p)  # noqa: E731
  else:
    run = _minidom
  base = peak_rss_mb()
  wall, cpu = time.perf_counter(), time.process_time()
  sessions, clicks = run(path)
  wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
  return {
    "parser": parser,
    "sessions": sessions,
    "clicks": clicks,
    "wall_s": wall,
    "cpu_s": cpu,
    "peak_rss_mb": peak_rss_mb(),
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
  r.update(
    file_mb=round(mb, 1),
    mb_per_s=round(mb / r["wall_s"], 1),
    mb_per_cpu_s=round(mb / r["cpu_s"], 1),
  )
  return r


def best_of(rounds: list[dict]) -> dict:
  """The round with the least CPU time, with the largest peak RSS of all rounds."""
  best = dict(min(rounds, key=lambda r: r["cpu_s"]))
  best["peak_rss_mb"] = round(max(r["peak_rss_mb"] for r in rounds), 1)
  best["rounds"] = len(rounds)
  return best


def versions() -> dict:
  from xml.parsers import expat

  from lxml import etree

  return {
    "python": platform.python_version(),
    "lxml": ".".join(map(str, etree.LXML_VERSION)),
    "libxml2": ".".join(map(str, etree.LIBXML_VERSION)),
    "expat": expat.EXPAT_VERSION,
  }


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--size", type=parse_size, default="100M", help="log size, e.g. 100M or 1G")
  p.add_argument("--repeats", type=int, default=3, help="rounds; each parser keeps its best")
  p.add_argument(
    "--minidom-mb", type=float, default=0.0, help="also parse a prefix of this size with minidom"
  )
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
  log = make_log(src, work / f"trec2013x_{args.size}.xml", args.size)
  load_before = os.getloadavg()[0]
  rounds = {name: [] for name in PARSERS}
  for _ in range(args.repeats):
    for name in PARSERS:
      rounds[name].append(measure(name, log))
  rows = [best_of(rounds[name]) for name in PARSERS]
  _agree(rows)
  if args.minidom_mb:
    small = make_log(
      src, work / f"trec2013x_{args.minidom_mb:g}mb.xml", int(args.minidom_mb * 2**20)
    )
    rows += _agree([best_of([measure("rankjax", small)]), best_of([measure("minidom", small)])])
  for r in rows:
    print(json.dumps(r))
  ours, peers = rows[0], rows[1 : len(PARSERS)]
  print(
    json.dumps(
      {
        "date": datetime.date.today().isoformat(),
        "file_mb": ours["file_mb"],
        **{f"rankjax_vs_{r['parser']}_speed": round(r["cpu_s"] / ours["cpu_s"], 2) for r in peers},
        **{
          f"rankjax_vs_{r['parser']}_speed_wall": round(r["wall_s"] / ours["wall_s"], 2)
          for r in peers
        },
        **{f"{r['parser']}_peak_rss_mb": r["peak_rss_mb"] for r in rows[: len(PARSERS)]},
        "cpu_count": os.cpu_count(),
        "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        **versions(),
      }
    )
  )


def _agree(rows: list[dict]) -> list[dict]:
  """`rows`, once every parser in them is seen to read as many sessions and clicks."""
  counts = {r["parser"]: (r["sessions"], r["clicks"]) for r in rows}
  assert len(set(counts.values())) == 1, f"the parsers read different logs: {counts}"
  return rows


if __name__ == "__main__":
  main()
