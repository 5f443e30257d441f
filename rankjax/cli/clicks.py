"""Click models on click logs: fit one, harvest propensities, simulate a log.

  rankjax clicks fit --model pbm --format FMT FILES...
  rankjax clicks harvest --format FMT FILES... [--clip 0.01]
  rankjax clicks simulate --svmlight FILE | --qrels FILE --output LOG [--model pbm ...]

`fit` reads the log with `rankjax.data.readers`, holds out a random fraction of the result pages,
fits, and prints one JSON line: the model, method, held-out and training log-likelihood and
perplexity, whether the log identifies position propensities (pairs seen at several ranks, per
rank pair: `rankjax.click_models.identification`), and for position models the propensities by
rank (relative to rank 1), ready for `config.supervision.propensities` of the `ips_pbm` weights
hook. Where the log leaves ranks unidentified (a fixed logging ranker shows every pair at one
rank), a warning on stderr says so. `harvest` estimates the same propensities by intervention
harvesting (`rankjax.click_models.intervention`). With `--batch-sessions N` both stream: one pass
over the log writes it as .npy shards (`--shards DIR`, default a temporary directory; each page
held out with probability `--test-fraction`), and the fit reads them back N pages at a time on
every device (`rankjax.click_models.stream`), in memory O(N + pairs) whatever the log's size
(`--shard-pairs`: the pair tables split over the devices, O(N + pairs / devices) each); the
identification check comes from the fit's first pass, `harvest`'s counts from one pass over the
shards. `simulate` writes a simulated log (a simulation, not real users) from a labelled data set
(`rankjax.sim.clicks`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import sys
import tempfile
from collections.abc import Sequence

from rankjax import progress as progress_lib
from rankjax.cli import common, reader_flags
from rankjax.data import readers, svmlight


def _log_parser(prog: str, doc: str) -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog=prog, description=doc)
  reader_flags.add(p)
  p.add_argument("--max-rank", type=int, default=10)
  p.add_argument(
    "--batch-sessions",
    type=common.positive_int,
    help="stream: sessions per batch (over all devices); memory O(batch + pairs), not O(log)",
  )
  p.add_argument(
    "--shards", help="--batch-sessions: write the log's shards here (default: a temporary dir)"
  )
  p.add_argument(
    "--shard-pairs",
    action="store_true",
    help="--batch-sessions: split the per-pair tables by pair id over the devices instead of "
    "holding them whole on each, for more pairs than one device holds",
  )
  return p


def _parse(p: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
  args = common.parse_args(p, argv)
  if args.shard_pairs and args.batch_sessions is None:
    p.error("--shard-pairs streams the fit: give --batch-sessions too")
  return args


def _click_log(args):
  """The `ClickLog` of the files (top `--max-rank` ranks), and the read summary."""
  from rankjax import click_models as cm  # pylint: disable=g-import-not-at-top

  summary = readers.ReadSummary()
  log = cm.ClickLog.from_sessions(reader_flags.sessions(args, summary), args.max_rank)
  reader_flags.check_format(summary, args)
  if log.num_sessions == 0:
    raise SystemExit(f"no result page read from {args.files}: {summary}")
  return log, summary


def _shards(args, directory, test_fraction: float = 0.0):
  """The files written as (train, test) shards in `directory` in one pass, and the read
  summary."""
  from rankjax import click_models as cm  # pylint: disable=g-import-not-at-top

  summary = readers.ReadSummary()
  train, test, _ = cm.write_shards(
    reader_flags.sessions(args, summary),
    directory,
    max_rank=args.max_rank,
    test_fraction=test_fraction,
    seed=getattr(args, "seed", 0),
  )
  reader_flags.check_format(summary, args)
  if train.num_sessions + test.num_sessions == 0:
    raise SystemExit(f"no result page read from {args.files}: {summary}")
  return train, test, summary


def _shard_dir(args, stack: contextlib.ExitStack) -> str:
  return args.shards or stack.enter_context(tempfile.TemporaryDirectory(prefix="rankjax-clicks-"))


# The click models and fitting methods by name, for --model and --method (`common.Names`: the
# registries import jax, so they are read after the rest of the command line is checked; a
# metavar, as argparse would list them in every usage line).
MODELS = common.Names("rankjax.click_models", "MODELS")
FIT_METHODS = common.Names("rankjax.click_models", "FIT_METHODS")
MODEL_HELP = "%(choices)s (default: %(default)s)"


def fit(argv: Sequence[str], prog: str = "rankjax clicks fit") -> dict:
  """Fits a click model to a log; prints held-out fit and propensities as one JSON line."""
  p = _log_parser(prog, fit.__doc__)
  p.add_argument("--model", choices=MODELS, default="pbm", metavar="MODEL", help=MODEL_HELP)
  p.add_argument(
    "--method",
    choices=FIT_METHODS,
    metavar="METHOD",
    help="%(choices)s; default: the model's first (ClickModel.methods)",
  )
  p.add_argument("--iterations", type=int, default=50)
  p.add_argument("--smoothing", type=float, default=1.0)
  p.add_argument("--test-fraction", type=float, default=0.2)
  p.add_argument("--seed", type=int, default=0)
  args = _parse(p, argv)
  import numpy as np  # pylint: disable=g-import-not-at-top

  from rankjax import click_models as cm  # pylint: disable=g-import-not-at-top
  from rankjax.click_models import identification  # pylint: disable=g-import-not-at-top

  model = cm.get(args.model)
  if args.method is not None and args.method not in model.methods:
    fitted_by = ", ".join(model.methods)
    raise SystemExit(f"--method {args.method}: {model.name} is fitted by {fitted_by}")
  options = {"method": args.method, "iterations": args.iterations, "smoothing": args.smoothing}
  progress = not args.quiet

  def warn(ident):
    warning = ident.warning(model.name.upper()) if model.propensity is not None else None
    if warning:
      print(f"warning: {warning}", file=sys.stderr)

  with contextlib.ExitStack() as stack:
    if args.batch_sessions is None:
      log, summary = _click_log(args)
      train, test = log.split(args.test_fraction, args.seed)
      ident = identification.identify(train)
      warn(ident)
      r = cm.fit(model, train, progress=progress, **options)
      streaming = {}
    else:
      train, test, summary = _shards(args, _shard_dir(args, stack), args.test_fraction)
      streaming = {
        "batch_sessions": args.batch_sessions,
        "shard_pairs": args.shard_pairs,
        "progress": progress,
      }
      r = cm.fit(model, train, collect_counts=True, **options, **streaming)
      ident = identification.from_impressions(r.counts.impressions)
      warn(ident)
    out = {
      "model": model.name,
      "method": r.method,
      "pages": train.num_sessions + test.num_sessions,
      "pairs": train.num_pairs,
      "seconds": round(r.seconds, 3),
      "train": r.train,
      "test": cm.evaluate(model, r.params, test, **streaming) if test.num_sessions else None,
      "skipped": summary.skipped,
      "identification": ident.as_dict(),
    }
  if model.propensity is not None:
    theta = np.asarray(model.propensity(r.params), np.float64)
    out["propensities"] = (theta / theta[0]).round(6).tolist()
  print(json.dumps(out))
  return out


def harvest(argv: Sequence[str], prog: str = "rankjax clicks harvest") -> dict:
  """Harvests position propensities from a log's interventions; prints them as one JSON line."""
  p = _log_parser(prog, harvest.__doc__)
  p.add_argument("--min-pairs", type=int, default=1)
  p.add_argument("--clip", type=float, default=0.0)
  args = _parse(p, argv)
  from rankjax.click_models import intervention, stream  # pylint: disable=g-import-not-at-top

  with contextlib.ExitStack() as stack:
    if args.batch_sessions is None:
      log, summary = _click_log(args)
      counts = intervention.counts_from_log(log)
    else:
      log, _, summary = _shards(args, _shard_dir(args, stack))
      c = stream.pair_rank_counts(
        log,
        batch_sessions=args.batch_sessions,
        shard_pairs=args.shard_pairs,
        progress=not args.quiet,
      )
      counts = c.impressions, c.clicks
  try:
    h = intervention.estimate(*counts, min_pairs=args.min_pairs, clip=args.clip)
  except ValueError as e:
    raise SystemExit(f"{', '.join(args.files)}: {e}") from None
  out = {
    "method": "intervention_harvesting",
    "pages": log.num_sessions,
    "pairs": log.num_pairs,
    "rank_pairs_used": int(h.used.sum() // 2),
    "skipped": summary.skipped,
    "propensities": h.theta.round(6).tolist(),
  }
  print(json.dumps(out))
  return out


def qrels_lists(path, summary=None, encoding="utf-8"):
  """One `RankingList` per topic of a TREC qrels file, graded labels as "human"; skipped rows are
  counted in `summary` (`load_trec_qrels`)."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  from rankjax.data import schema  # pylint: disable=g-import-not-at-top
  from rankjax.data.readers.trec import load_trec_qrels  # pylint: disable=g-import-not-at-top

  return [
    schema.RankingList(
      qid=t, doc_ids=list(g), labels={"human": np.array(list(g.values()), np.float32)}
    )
    for t, g in load_trec_qrels(
      path, summary, encoding=encoding, encoding_flag="--encoding"
    ).items()
  ]


def simulate(argv: Sequence[str], prog: str = "rankjax clicks simulate") -> dict:
  """Simulates a click log from a labelled data set (a simulation, not real users)."""
  p = argparse.ArgumentParser(prog=prog, description=simulate.__doc__)
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument("--svmlight", help="svmlight / LETOR file with qid:")
  src.add_argument("--qrels", help="TREC qrels: topic iteration doc grade")
  p.add_argument(
    "--encoding", default="utf-8", help="text encoding of the --svmlight / --qrels file"
  )
  p.add_argument(
    "--num-features",
    type=int,
    help="--svmlight: the feature count (default: the largest index, at most "
    f"{svmlight.MAX_FEATURES})",
  )
  p.add_argument("--output", required=True, help=".jsonl (or .jsonl.gz) or .parquet")
  p.add_argument("--sessions", type=int, default=100_000)
  p.add_argument("--model", choices=MODELS, default="pbm", metavar="MODEL", help=MODEL_HELP)
  p.add_argument("--list-size", type=int, default=10)
  p.add_argument("--zipf", type=float, default=1.1, help="query popularity exponent")
  p.add_argument("--eta", type=float, default=1.0, help="position bias: examination k ** -eta")
  p.add_argument(
    "--noise", type=float, default=0.1, help="click probability of a non-relevant document"
  )
  p.add_argument("--gamma", type=float, default=0.9, help="DBN continuation probability")
  p.add_argument(
    "--doc-quality", type=float, default=0.0, help="std of a per-document logit effect"
  )
  p.add_argument(
    "--logger",
    default="noisy-label",
    help="the logging ranker: a name in rankjax.sim.clicks.LOGGERS, NAME:ARG for one that takes "
    "an argument (feature:J); an unknown name lists them",
  )
  p.add_argument("--logger-noise", type=float, default=1.0)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--quiet", action="store_true", help="no progress bars on stderr")
  args = common.parse_args(p, argv)
  from rankjax.sim import clicks as sim_lib  # pylint: disable=g-import-not-at-top

  sim_lib.logging_ranker(args.logger)  # an unknown one stops the command before the input is read
  summary = readers.ReadSummary()
  if args.svmlight:
    lists = svmlight.read_svmlight(
      args.svmlight, num_features=args.num_features, encoding=args.encoding, summary=summary
    )
  else:
    lists = qrels_lists(args.qrels, summary, args.encoding)
  sim = sim_lib.simulate(
    lists,
    sessions=args.sessions,
    model=args.model,
    list_size=args.list_size,
    zipf=args.zipf,
    eta=args.eta,
    noise=args.noise,
    gamma=args.gamma,
    doc_quality=args.doc_quality,
    logger=args.logger,
    logger_noise=args.logger_noise,
    seed=args.seed,
    progress=not args.quiet,
  )
  out = pathlib.Path(args.output)
  records = progress_lib.bar(
    iterable=sim.records(),
    total=args.sessions,
    desc=f"writing {out.name}",
    unit=" sessions",
    disable=args.quiet,
  )
  if out.suffix == ".parquet":
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top

    rows = list(records)
    pq.write_table(pa.table({k: [r[k] for r in rows] for k in rows[0]}), out)
  else:
    import gzip  # pylint: disable=g-import-not-at-top

    from rankjax.data.readers.generic import write_jsonl  # pylint: disable=g-import-not-at-top

    opener = gzip.open if out.suffix == ".gz" else open
    with opener(out, "wt", encoding="utf-8") as f:
      write_jsonl(records, f)
  meta = {
    **sim.config,
    "source": args.svmlight or args.qrels,
    "queries": len(sim.qids),
    "clicks": int(sim.log.click.sum()),
    "skipped": summary.skipped,
    "skipped_by_reason": dict(sorted(summary.reasons.items())),
    "skip_examples": dict(sorted(summary.examples.items())),
  }
  meta.update({k: v.tolist() for k, v in sim.truth.items() if k in ("theta", "gamma")})
  pathlib.Path(f"{out}.meta.json").write_text(json.dumps(meta, indent=1) + "\n")
  shown = ("sessions", "queries", "clicks", "model", "skipped")
  print(json.dumps({k: meta[k] for k in shown}))
  return meta


SUBCOMMANDS = {"fit": fit, "harvest": harvest, "simulate": simulate}


def main(argv: Sequence[str], prog: str = "rankjax clicks"):
  return common.dispatch_to(SUBCOMMANDS, argv, prog=prog, doc=__doc__)
