"""Command line for click logs: `python -m rankjax.data stats --format FMT FILES...`.

`stats` streams the files and prints one JSON line: sessions, interactions, results, clicks,
unique_queries, skipped (with counts by reason and example locations), files and bytes.
"""

from __future__ import annotations

import argparse
import json
import sys

import tqdm

from rankjax.data import readers


def _options(args) -> dict:
  opts = {k: getattr(args, k) for k in ("labels", "queries", "encoding") if getattr(args, k) is not None}
  known = readers.reader_options(args.format)
  unknown = sorted(set(opts) - set(known))
  if unknown:
    raise SystemExit(f"--format {args.format} takes {['--' + k for k in known] or 'no options'}, not {unknown}")
  return opts


def stats(args) -> dict:
  summary = readers.ReadSummary()
  sessions = readers.read_sessions(args.format, args.files, summary, **_options(args))
  for _ in tqdm.tqdm(sessions, desc="sessions", unit="", disable=args.quiet, file=sys.stderr):
    pass
  return summary.as_dict()


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(prog="python -m rankjax.data", description=__doc__.split("\n")[0])
  sub = parser.add_subparsers(dest="command", required=True)
  p = sub.add_parser("stats", help="read click logs and print one JSON line of counts")
  p.add_argument("--format", required=True, choices=sorted(readers.FORMATS))
  p.add_argument("files", nargs="+")
  p.add_argument("--labels", help="human labels: TREC qrels, TianGong-ST label file")
  p.add_argument("--queries", help="query dictionary: TianGong-ST JSON, Sogou query_id file")
  p.add_argument("--encoding", help="text encoding of line-based logs (Sogou: gbk)")
  p.add_argument("--quiet", action="store_true", help="no progress bar")
  args = parser.parse_args(argv)
  print(json.dumps(stats(args), ensure_ascii=False))


if __name__ == "__main__":
  main()
