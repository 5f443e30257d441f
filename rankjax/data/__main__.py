"""Command line for click logs.

  python -m rankjax.data stats --format FMT FILES...
  python -m rankjax.data prepare --format FMT FILES... --output DIR --name NAME

`stats` streams the files and prints one JSON line: sessions, interactions, results, clicks,
unique_queries, skipped (with counts by reason and example locations), files and bytes.

`prepare` aggregates the log per (query, document) (`rankjax.data.aggregate`), attaches query
frequency and buckets, splits queries into train / test by a hash of the query id, and writes a
prepared dataset (`rankjax.data.store`) the training engine reads. It prints one JSON line: the
dataset path, lists per split, lists / impressions / clicks per frequency bucket and the read
summary.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

import numpy as np
import tqdm

from rankjax.data import aggregate, frequency, readers


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


def in_test_split(qid: str, fraction: float) -> bool:
  """A query's split from a hash of its id: stable across runs, machines and log orders."""
  h = int.from_bytes(hashlib.blake2b(qid.encode(), digest_size=8).digest(), "little")
  return h / 2**64 < fraction


def with_features(lists, path):
  """Attaches each document's feature row from an svmlight file (same qid and doc ids); a document
  without one is an error naming it."""
  import dataclasses

  from rankjax.data.svmlight import read_svmlight

  table = {x.qid: dict(zip(x.doc_ids, x.features)) for x in read_svmlight(path)}
  for lst in lists:
    rows = table.get(lst.qid, {})
    missing = [d for d in lst.doc_ids if d not in rows]
    if missing:
      raise ValueError(f"{path}: no features for query {lst.qid!r}, documents {missing[:5]}")
    yield dataclasses.replace(lst, features=np.stack([rows[d] for d in lst.doc_ids]))


def prepare(args) -> dict:
  from rankjax.data import store

  if args.freq_by == "dataset" and (args.format != "sogou" or not args.queries):
    raise SystemExit("--freq-by dataset needs --format sogou and its --queries file (sessions per query)")
  summary = readers.ReadSummary()
  sessions = readers.read_sessions(args.format, args.files, summary, **_options(args))
  agg = aggregate.ClickAggregator()
  for s in tqdm.tqdm(sessions, desc="sessions", unit="", disable=args.quiet, file=sys.stderr):
    agg.add(s)
  if not agg.pairs:
    raise SystemExit(f"no session read from {args.files}: {summary}")
  kw = {"high": args.high, "medium": args.medium} if args.buckets == "threshold" else \
       {"dataset": args.dataset} if args.buckets == "dataset" else {}
  if args.freq_by == "dataset":
    from rankjax.data.readers.sogou import load_sogou_queries

    freq = load_sogou_queries(args.queries, args.encoding or "gbk")[1]
  else:
    freq = agg.freq.frequency(args.freq_by)
  buckets = aggregate.buckets_for(agg, freq, args.buckets, **kw)

  def lists(test):
    out = aggregate.to_ranking_lists(agg, freq=freq, bucket_method=args.buckets,
                                     keep=lambda q: in_test_split(q, args.test_fraction) == test, **kw)
    return with_features(out, args.features) if args.features else out

  splits = {"train": lists(False)}
  if args.test_fraction > 0:
    splits["test"] = lists(True)
  path = store.write_dataset(args.output, name=args.name, splits=splits,
                             description=f"click log {args.files} ({args.format}), aggregated per (query, doc)")
  n_test = sum(in_test_split(q, args.test_fraction) for q in agg.pairs)
  return {"path": str(path), "lists": {"train": len(agg.pairs) - n_test, "test": n_test},
          "freq_by": args.freq_by, "buckets": aggregate.bucket_summary(agg, buckets, freq),
          "position_totals": {str(k): v for k, v in agg.position_totals().items()},
          "conflicts": dict(agg.conflicts), "read": summary.as_dict()}


def _log_args(p):
  p.add_argument("--format", required=True, choices=sorted(readers.FORMATS))
  p.add_argument("files", nargs="+")
  p.add_argument("--labels", help="human labels: TREC qrels, TianGong-ST label file")
  p.add_argument("--queries", help="query dictionary: TianGong-ST JSON, Sogou query_id file")
  p.add_argument("--encoding", help="text encoding of line-based logs (Sogou: gbk)")
  p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(prog="python -m rankjax.data", description=__doc__.split("\n")[0])
  sub = parser.add_subparsers(dest="command", required=True)
  _log_args(sub.add_parser("stats", help="read click logs and print one JSON line of counts"))
  p = sub.add_parser("prepare", help="aggregate click logs into a prepared dataset")
  _log_args(p)
  p.add_argument("--output", required=True, help="data directory; the dataset lands in OUTPUT/NAME/1.0.0")
  p.add_argument("--name", required=True, help="dataset name (lower-case identifier)")
  p.add_argument("--freq-by", choices=(*frequency.FREQ_BY, "dataset"), default="sessions",
                 help="sessions or interactions issuing the query in the log; dataset: the Sogou query file's counts")
  p.add_argument("--buckets", choices=("quantile", "threshold", "dataset"), default="quantile")
  p.add_argument("--high", type=float, help="threshold buckets: high if frequency >= HIGH")
  p.add_argument("--medium", type=float, help="threshold buckets: medium if frequency >= MEDIUM")
  p.add_argument("--dataset", default="baidu-ultr", help="dataset buckets: whose bucket map")
  p.add_argument("--test-fraction", type=float, default=0.2, help="queries held out, by hash of the id")
  p.add_argument("--features", help="svmlight file with a feature row per (qid, doc id), e.g. the one a log was "
                 "simulated from")
  args = parser.parse_args(argv)
  if args.command == "prepare" and args.buckets == "threshold" and (args.high is None or args.medium is None):
    parser.error("--buckets threshold needs --high and --medium")
  out = stats(args) if args.command == "stats" else prepare(args)
  print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
  main()
