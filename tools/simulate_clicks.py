"""Simulates a click log (a simulation, not real users) from a labelled data set.

Reads svmlight (`--svmlight`) or TREC qrels (`--qrels`), draws sessions with Zipf query
frequencies, ranks with a logging ranker and clicks with PBM, UBM or DBN (see
`rankjax.sim.clicks`), and writes the generic click-log layout (JSON lines, or
Parquet for a `.parquet` output) plus `<output>.meta.json` with the configuration and the true
position propensities.

  python tools/simulate_clicks.py --svmlight ../shared/data/mslr_web10k_sample/msn1.fold1.train.5k.txt \\
      --sessions 100000 --model pbm --eta 1.0 --noise 0.1 --output /tmp/sim.jsonl
  python -m rankjax.data stats --format jsonl /tmp/sim.jsonl
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from rankjax import cli  # noqa: E402
from rankjax import click_models  # noqa: E402
from rankjax.sim.clicks import simulate  # noqa: E402
from rankjax.data import schema  # noqa: E402
from rankjax.data.readers.generic import write_jsonl  # noqa: E402
from rankjax.data.readers.trec import load_trec_qrels  # noqa: E402


def qrels_lists(path) -> list[schema.RankingList]:
  """One list per topic of a TREC qrels file, graded labels as "human"."""
  return [schema.RankingList(qid=t, doc_ids=list(g), labels={"human": np.array(list(g.values()), np.float32)})
          for t, g in load_trec_qrels(path).items()]


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument("--svmlight", help="svmlight / LETOR file with qid:")
  src.add_argument("--qrels", help="TREC qrels: topic iteration doc grade")
  p.add_argument("--output", required=True, help=".jsonl (or .jsonl.gz) or .parquet")
  p.add_argument("--sessions", type=int, default=100_000)
  p.add_argument("--model", choices=sorted(click_models.MODELS), default="pbm")
  p.add_argument("--list-size", type=int, default=10)
  p.add_argument("--zipf", type=float, default=1.1, help="query popularity exponent")
  p.add_argument("--eta", type=float, default=1.0, help="position bias: examination k ** -eta")
  p.add_argument("--noise", type=float, default=0.1, help="click probability of a non-relevant document")
  p.add_argument("--gamma", type=float, default=0.9, help="DBN continuation probability")
  p.add_argument("--doc-quality", type=float, default=0.0, help="std of a per-document logit effect")
  p.add_argument("--logger", default="noisy-label", help="noisy-label, fixed-noisy-label, random, feature:J")
  p.add_argument("--logger-noise", type=float, default=1.0)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args(argv)

  if args.svmlight:
    from rankjax.data.svmlight import read_svmlight

    lists = read_svmlight(args.svmlight)
  else:
    lists = qrels_lists(args.qrels)
  sim = simulate(lists, sessions=args.sessions, model=args.model, list_size=args.list_size, zipf=args.zipf,
                 eta=args.eta, noise=args.noise, gamma=args.gamma, doc_quality=args.doc_quality,
                 logger=args.logger, logger_noise=args.logger_noise, seed=args.seed)
  out = pathlib.Path(args.output)
  if out.suffix == ".parquet":
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = list(sim.records())
    pq.write_table(pa.table({k: [r[k] for r in rows] for k in rows[0]}), out)
  else:
    import gzip

    opener = gzip.open if out.suffix == ".gz" else open
    with opener(out, "wt", encoding="utf-8") as f:
      write_jsonl(sim.records(), f)
  meta = {**sim.config, "source": args.svmlight or args.qrels, "queries": len(sim.qids),
          "clicks": int(sim.log.click.sum())}
  meta.update({k: v.tolist() for k, v in sim.truth.items() if k in ("theta", "gamma")})
  pathlib.Path(f"{out}.meta.json").write_text(json.dumps(meta, indent=1) + "\n")
  print(json.dumps({k: meta[k] for k in ("sessions", "queries", "clicks", "model")}))
  return meta


if __name__ == "__main__":
  cli.one_line_errors(main)()
