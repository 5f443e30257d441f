r"""Compares TREC runs (rankjax's, BM25's, LightGBM's, ...) on the same queries.

  rankjax compare RUN [RUN ...] --qrels QRELS [--metrics ndcg@10,err@10] \
      [--ranx-metrics ndcg@10,map@100,mrr] [--test student]
  rankjax compare RUN [RUN ...] --dataset DIR [--split test]

Prints rankjax's metrics of each run (as training evaluates them), then ranx's comparison with
paired statistical tests. The judgments come from a qrels file, or from a prepared dataset's split
(`--dataset`, its human labels), whose query-frequency buckets then split both: metrics per
bucket, and ranx's comparison over all queries and within each bucket.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str], prog: str = "rankjax compare") -> None:
  p = argparse.ArgumentParser(
    prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("runs", nargs="+", help="TREC run files (qid Q0 doc rank score name)")
  source = p.add_mutually_exclusive_group(required=True)
  source.add_argument("--qrels", help="TREC qrels file (qid 0 doc grade)")
  source.add_argument("--dataset", help="a prepared dataset: its split's labels and buckets")
  p.add_argument("--split", default="test", help="with --dataset: the split (default test)")
  p.add_argument("--metrics", default="ndcg@10", help="rankjax metrics, comma-separated")
  p.add_argument("--ranx-metrics", default="ndcg@10,map@100,mrr", help="ranx's metric names")
  p.add_argument("--test", default="student", help="ranx's paired test: student, fisher, tukey")
  p.add_argument("--max-p", type=float, default=0.05, help="significance level")
  args = p.parse_args(argv)
  from rankjax.serve import runs  # pylint: disable=g-import-not-at-top

  loaded = [runs.read_run(r) for r in args.runs]
  if len({r.name for r in loaded}) < len(loaded):
    raise SystemExit("error: run files need different names (their file names, less suffix)")
  if args.qrels:
    qrels, buckets = runs.read_qrels(args.qrels), None
  else:
    qrels, buckets = runs.dataset_qrels(args.dataset, args.split)
  print(
    runs.compare(
      loaded,
      qrels,
      metric_specs=args.metrics.split(","),
      ranx_metrics=args.ranx_metrics.split(","),
      buckets=buckets,
      stat_test=args.test,
      max_p=args.max_p,
    )
  )
