"""Click logs: counts, and prepared datasets for training.

  rankjax data stats --format FMT FILES...
  rankjax data prepare --format FMT FILES... --output DIR --name NAME [--json]

`stats` streams the files and prints one JSON line: sessions, interactions, results, clicks,
unique_queries, skipped (with counts by reason and example locations), files and bytes.

`prepare` aggregates the log per (query, document) (`rankjax.data.aggregate`), attaches query
frequency and buckets, splits the queries into train / validation / test by a hash of the query id
(`--split-by topic`: of its topic, so that no topic is in two splits; `labelled`: queries with
human labels are the test and validation sets; `rankjax.data.splits`), and writes a prepared
dataset (`rankjax.data.store`) the training engine reads, keeping each bucket's frequency range in
its metadata. It warns when a bucket is empty or thin (`frequency.thin_bucket_warning`), and
prints a few aligned lines: the dataset path, lists per split, the read counts, each bucket's
queries and frequency range. The full summary (lists / impressions / clicks per frequency bucket,
clicks by position, the read summary) goes to `prepare_summary.json` in the dataset directory, and
with `--json` to stdout as one line instead of the table. Options join more to each list:
`--features` (svmlight rows,
`--num-features` wide), `--llm-labels` (an annotation store's labels as the "llm" source;
pairs without one are counted and left unlabelled), `--tokenizer` (a cross-encoder's token arrays,
`rankjax.data.text.PairTokenizer`).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import json
import sys
from collections.abc import Sequence

import numpy as np

from rankjax.cli import common, reader_flags
from rankjax.data import aggregate, frequency, readers, splits, svmlight, text
from rankjax.data import plan as data_plan

# The one --freq-by that is not a count of the log (`frequency.FREQ_BY`): the frequencies the
# dataset ships, the Sogou query file's session counts.
DATASET_FREQUENCY = "dataset"
# `prepare`'s full summary, written beside the dataset it describes.
SUMMARY_FILE = "prepare_summary.json"


def _stats(args) -> readers.ReadSummary:
  summary = readers.ReadSummary()
  for _ in reader_flags.sessions(args, summary):
    pass
  return summary


def read_features(path, num_features: int | None, encoding: str):
  """The sparse rows of an svmlight feature file and the summary of its read; read before the log,
  so that a file that cannot be used (an index past the feature count, another encoding) stops
  the command at once."""
  summary = readers.ReadSummary()
  rows = svmlight.read_rows(
    path,
    num_features=num_features,
    encoding=encoding,
    encoding_flag="--features-encoding",
    summary=summary,
  )
  return rows, summary


def _features(args):
  """(rows, read summary) of `--features`, or None."""
  if not args.features:
    return None
  return read_features(args.features, args.num_features, args.features_encoding)


def _tokenizer_factory(args):
  """A function returning `--tokenizer`'s `PairTokenizer`, or None."""
  if not args.tokenizer:
    return None
  return functools.partial(
    text.PairTokenizer.from_dir,
    args.tokenizer,
    max_query_tokens=args.max_query_tokens,
    max_tokens=args.max_tokens,
  )


def with_features(lists, rows, summary: readers.ReadSummary):
  """Attaches each document's feature row from svmlight `rows` (same qid and doc ids), made dense
  per list; a document without one is an error naming it (and the lines the read skipped)."""
  table = {key: k for k, key in enumerate(zip(rows.qids, rows.doc_ids))}
  for lst in lists:
    found = [table.get((lst.qid, d)) for d in lst.doc_ids]
    missing = [d for d, k in zip(lst.doc_ids, found) if k is None]
    if missing:
      raise missing_features(rows, summary, lst.qid, missing)
    yield dataclasses.replace(lst, features=rows.dense(found))


def missing_features(rows, summary: readers.ReadSummary, qid: str, missing: list[str]):
  """The error for a listed document without a feature row (and the lines the read skipped)."""
  from rankjax.data.readers import errors

  reasons = ", ".join(f"{n} {reason}" for reason, n in summary.reasons.most_common())
  skipped = f"; lines of it skipped: {reasons}" if summary.skipped else ""
  return errors.InputError(
    f"{rows.path}: no features for query {qid!r}, documents {missing[:5]}{skipped}"
  )


def store_labels(
  path, model: str, mode: str | None = None, prompt_version: str | None = None
) -> dict[tuple[str, str], float]:
  """(query id, doc id) -> label of an annotation store's `ok` rows for one model.

  A store holding several (prompt version, mode) runs of the model needs them named.
  """
  from rankjax.annotate import store as store_lib

  where = {
    "model": model,
    "status": "ok",
    **({"mode": mode} if mode else {}),
    **({"prompt_version": prompt_version} if prompt_version else {}),
  }
  with store_lib.Store(path) as st:
    rows = st.rows(**where)
  runs = sorted({(r["prompt_version"], r["mode"]) for r in rows})
  if not runs:
    raise SystemExit(f"{path}: no ok annotations for {where}")
  if len(runs) > 1:
    raise SystemExit(
      f"{path}: model {model!r} has several runs (prompt version, mode) {runs}; "
      "pick one with --llm-mode / --llm-prompt-version"
    )
  return {(r["qid"], r["doc_id"]): r["label"] for r in rows}


def with_llm_labels(lists, labels: dict[tuple[str, str], float], counts):
  """Attaches labels["llm"] from `store_labels`; NaN (no label) where the store has none, counted
  in `counts` ("llm_pairs", "llm_missing")."""
  for lst in lists:
    llm = np.array([labels.get((lst.qid, d), np.nan) for d in lst.doc_ids], np.float32)
    counts["llm_pairs"] += len(llm)
    counts["llm_missing"] += int(np.isnan(llm).sum())
    yield dataclasses.replace(lst, labels={**lst.labels, "llm": llm})


def _check_freq_by(args) -> None:
  if args.freq_by == DATASET_FREQUENCY and (args.format != "sogou" or not args.queries):
    raise SystemExit(
      "--freq-by dataset needs --format sogou and its --queries file (sessions per query)"
    )


def _prepare(args) -> dict:
  from rankjax.data import store

  _check_freq_by(args)
  options = reader_flags.options(args)
  features = _features(args)
  summary = readers.ReadSummary()
  agg = aggregate.ClickAggregator()
  for s in reader_flags.sessions(args, summary):
    agg.add(s)
  reader_flags.check_format(summary, args)
  if not agg.pairs:
    raise SystemExit(f"no session read from {args.files}: {summary}")
  plan = data_plan.decide(agg, plan_options(args, options))
  for warning in plan.warnings:
    print(f"warning: {warning}", file=sys.stderr)
  kw = bucket_kw(args)
  llm = (
    store_labels(args.llm_labels, args.llm_model, args.llm_mode, args.llm_prompt_version)
    if args.llm_labels
    else None
  )
  make_tokenizer = _tokenizer_factory(args)
  tokenizer = make_tokenizer() if make_tokenizer else None
  counts = collections.Counter()

  def lists(name):
    out = aggregate.to_ranking_lists(
      agg, freq=plan.freq, bucket_method=args.buckets, keep=lambda q: plan.split_of[q] == name, **kw
    )
    if features:
      out = with_features(out, *features)
    if llm is not None:
      out = with_llm_labels(out, llm, counts)
    return map(tokenizer, out) if tokenizer else out

  path = store.write_dataset(
    args.output,
    name=args.name,
    splits={n: lists(n) for n in data_plan.split_names(plan.sizes)},
    description=description(args),
    metadata={"bucket_ranges": frequency.bucket_ranges(plan.bucket_rows)},
    progress=not args.quiet,
  )
  if tokenizer:
    tokenizer.save_rules(path, args.tokenizer)
    counts.update({f"tokens_{k}": v for k, v in tokenizer.counts.items()})
  return write_summary(
    path,
    args,
    plan,
    counts=counts,
    features=_features_read(*features) if features else None,
    position_totals=agg.position_totals(),
    conflicts=agg.conflicts,
    read=summary.as_dict(),
  )


def _beam_options(args):
  """The Beam pipeline options of --runner and --beam-option, and those set, by name."""
  try:
    from rankjax.data import beam_prepare
  except ImportError as e:
    raise SystemExit(
      f"--beam needs Apache Beam ({e}): pip install 'rankjax[beam]' (apache-beam)"
    ) from None
  options = beam_prepare.pipeline_options(args.runner, args.beam_option)
  return options, beam_prepare.dry_run(options)


def _prepare_beam(args) -> dict:
  """`_prepare` as an Apache Beam pipeline (`rankjax.data.beam_prepare`): the same dataset."""
  from rankjax.data import beam_prepare

  _check_freq_by(args)
  beam_options, _ = _beam_options(args)
  options = reader_flags.options(args)
  features = _features(args)
  llm = (
    functools.partial(
      store_labels, args.llm_labels, args.llm_model, args.llm_mode, args.llm_prompt_version
    )
    if args.llm_labels
    else None
  )

  def check_read(summary: readers.ReadSummary) -> None:
    reader_flags.check_format(summary, args)
    if not summary.sessions:
      raise SystemExit(f"no session read from {args.files}: {summary}")

  make_tokenizer = _tokenizer_factory(args)
  # Loaded here too: a directory that is not a usable tokenizer is refused before the pipeline.
  tokenizer = make_tokenizer() if make_tokenizer else None

  try:
    result = beam_prepare.prepare(
      args.format,
      args.files,
      options,
      plan_options(args, options),
      directory=args.output,
      name=args.name,
      description=description(args),
      beam_options=beam_options,
      llm_labels=llm,
      tokenizer=make_tokenizer,
      features=(features[0].width, beam_prepare.feature_rows(features[0])) if features else None,
      check_read=check_read,
    )
  except beam_prepare.MissingFeatures as e:
    raise missing_features(*features, e.qid, e.docs) from None
  for warning in result.decided.plan.warnings:
    print(f"warning: {warning}", file=sys.stderr)
  if tokenizer:
    tokenizer.save_rules(result.path, args.tokenizer)
  joined = {k: v for k, v in result.counters.items() if k.startswith(("llm_", "tokens_"))}
  return write_summary(
    result.path,
    args,
    result.decided.plan,
    counts=joined,
    features=_features_read(*features) if features else None,
    position_totals=result.decided.position_totals,
    conflicts=result.decided.conflicts,
    read=result.read.as_dict(),
  )


def bucket_kw(args) -> dict:
  return {
    option: getattr(args, option) for option in aggregate.BUCKET_METHODS[args.buckets].options
  }


def plan_options(args, reader_options: dict) -> data_plan.Options:
  """`data_plan.Options` from the flags; --freq-by dataset reads the Sogou query file's counts."""
  freq = None
  if args.freq_by == DATASET_FREQUENCY:
    from rankjax.data.readers import sogou

    freq = sogou.load_sogou_queries(args.queries, reader_options.get("encoding", sogou.ENCODING))[1]
  return data_plan.Options(
    freq_by=None if freq is not None else args.freq_by,
    buckets=args.buckets,
    bucket_kw=bucket_kw(args),
    split_by=args.split_by,
    test_fraction=args.test_fraction,
    validation_fraction=args.validation_fraction,
    freq=freq,
  )


def description(args) -> str:
  return f"click log {args.files} ({args.format}), aggregated per (query, doc)"


def write_summary(
  path, args, plan: data_plan.Plan, *, counts, features, position_totals, conflicts, read
) -> dict:
  """`prepare`'s summary (both paths), written to `SUMMARY_FILE` in the dataset; returned."""
  out = {
    "path": str(path),
    "lists": {n: plan.sizes[n] for n in (splits.TRAIN, splits.VALIDATION, splits.TEST)},
    "split_by": args.split_by,
    **({"joined": dict(counts)} if counts else {}),
    **({"features": features} if features else {}),
    "freq_by": args.freq_by,
    "bucket_method": args.buckets,
    "buckets": plan.bucket_rows,
    "warnings": plan.warnings,
    "position_totals": {str(k): v for k, v in position_totals.items()},
    "conflicts": dict(conflicts),
    "read": read,
  }
  out["summary_file"] = str(path / SUMMARY_FILE)
  (path / SUMMARY_FILE).write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
  return out


def summary_lines(out: dict) -> list[str]:
  """`prepare`'s result as a few aligned lines for the terminal (the JSON has everything)."""
  read = out["read"]
  lists = out["lists"]
  rows = [
    ("dataset", out["path"]),
    (
      "lists",
      ", ".join(f"{n} {lists[n]:,}" for n in lists if lists[n]) + f" (split by {out['split_by']})",
    ),
    (
      "read",
      f"{read['sessions']:,} sessions, {read['interactions']:,} result pages, "
      f"{read['clicks']:,} clicks, {read['skipped']:,} records skipped",
    ),
    ("buckets", f"{out['bucket_method']} of query frequency by {out['freq_by']}:"),
  ]
  for name, row in out["buckets"].items():
    span = (
      f"frequency {row['min_frequency']:g}..{row['max_frequency']:g}" if row["queries"] else "-"
    )
    rows.append((f"  {name}", f"{row['queries']:>6,} queries  {span}"))
  if "joined" in out:
    rows.append(("joined", ", ".join(f"{k} {v:,}" for k, v in out["joined"].items())))
  if out["warnings"]:
    rows.append(("warnings", f"{len(out['warnings'])}, printed above"))
  rows.append(("summary", f"{out['summary_file']} (all counts; --json prints it)"))
  width = max(len(k) for k, _ in rows)
  return [f"{k:<{width}}  {v}" for k, v in rows]


def _features_read(rows, summary: readers.ReadSummary) -> dict:
  read = summary.as_dict()
  return {
    "rows": len(rows),
    "num_features": rows.width,
    **{k: read[k] for k in ("skipped", "skipped_by_reason", "repaired", "skip_examples")},
  }


def _log_parser(prog: str, doc: str) -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog=prog, description=doc)
  reader_flags.add(p)
  return p


def stats(argv: Sequence[str], prog: str = "rankjax data stats") -> dict:
  """Reads click logs and prints one JSON line of counts."""
  args = _log_parser(prog, stats.__doc__).parse_args(argv)
  summary = _stats(args)
  out = summary.as_dict()
  print(json.dumps(out, ensure_ascii=False))
  reader_flags.check_format(summary, args)
  return out


def prepare(argv: Sequence[str], prog: str = "rankjax data prepare") -> dict:
  """Aggregates click logs into a prepared dataset; prints a summary (--json: one JSON line)."""
  p = _log_parser(prog, prepare.__doc__)
  p.add_argument(
    "--output", required=True, help="data directory; the dataset lands in OUTPUT/NAME/1.0.0"
  )
  p.add_argument("--name", required=True, help="dataset name (lower-case identifier)")
  p.add_argument(
    "--freq-by",
    choices=(*frequency.FREQ_BY, DATASET_FREQUENCY),
    default="sessions",
    help="a count of the log (rankjax.data.frequency.FREQ_BY): sessions or "
    "interactions issuing the query, topic: sessions of the query's topic (TREC "
    f"Session); {DATASET_FREQUENCY}: the Sogou query file's counts",
  )
  p.add_argument("--buckets", choices=list(aggregate.BUCKET_METHODS), default="quantile")
  p.add_argument("--high", type=float, help="threshold buckets: high if frequency >= HIGH")
  p.add_argument("--medium", type=float, help="threshold buckets: medium if frequency >= MEDIUM")
  p.add_argument(
    "--dataset",
    choices=list(frequency.DATASET_BUCKETS),
    default="baidu-ultr",
    help="dataset buckets: whose bucket map",
  )
  p.add_argument(
    "--test-fraction", type=float, default=0.2, help="queries (topics) held out for testing"
  )
  p.add_argument(
    "--validation-fraction",
    type=float,
    default=0.1,
    help="queries (topics; --split-by labelled: labelled queries) held out for validation, "
    "at least one where two are left to train on; 0: no validation split",
  )
  p.add_argument(
    "--json", action="store_true", help="print the full summary as one JSON line, not the table"
  )
  p.add_argument(
    "--split-by",
    choices=list(data_plan.SPLITS),
    default="query",
    help="; ".join(f"{name}: {split.description}" for name, split in data_plan.SPLITS.items()),
  )
  p.add_argument(
    "--llm-labels",
    help="annotation store (rankjax annotate run) whose labels become the llm source",
  )
  p.add_argument("--llm-model", help="with --llm-labels: the model name in the store")
  p.add_argument("--llm-mode", help="with --llm-labels: annotation mode, if the store has several")
  p.add_argument(
    "--llm-prompt-version", help="with --llm-labels: prompt version, if the store has several"
  )
  p.add_argument(
    "--tokenizer", help="local Hugging Face directory: store cross-encoder token arrays"
  )
  p.add_argument(
    "--max-tokens",
    type=int,
    default=128,
    help="with --tokenizer: pair length, special tokens included",
  )
  p.add_argument(
    "--max-query-tokens", type=int, default=32, help="with --tokenizer: query word pieces kept"
  )
  p.add_argument(
    "--features",
    help="svmlight file with a feature row per (qid, doc id), e.g. the one a log was "
    "simulated from",
  )
  p.add_argument(
    "--num-features",
    type=int,
    help="with --features: the feature count; an index past it is an error (default: the "
    f"largest index in the file, at most {svmlight.MAX_FEATURES})",
  )
  p.add_argument(
    "--features-encoding", default="utf-8", help="with --features: the file's text encoding"
  )
  beam = p.add_argument_group(
    "Apache Beam (pip install 'rankjax[beam]')",
    "the same dataset, prepared by a Beam pipeline: in-process on every core by default "
    "(DirectRunner, multi-process), or on Dataflow, Flink or Spark (README: Logs at scale)",
  )
  beam.add_argument("--beam", action="store_true", help="prepare with the Beam pipeline")
  beam.add_argument(
    "--runner",
    default="DirectRunner",
    help="with --beam: the Beam runner (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner)",
  )
  beam.add_argument(
    "--beam-option",
    action="append",
    default=[],
    metavar="KEY=VALUE",
    help="with --beam: a Beam pipeline option, Beam's flag name without dashes (repeatable), "
    "e.g. project=P region=R temp_location=gs://B/tmp for Dataflow, flink_master=H:8081",
  )
  beam.add_argument(
    "--dry-run",
    action="store_true",
    help="with --beam: print the pipeline options a run would use (one JSON line); run nothing",
  )
  args = p.parse_args(argv)
  missing = [
    f"--{o}" for o in aggregate.BUCKET_METHODS[args.buckets].options if getattr(args, o) is None
  ]
  if missing:
    p.error(f"--buckets {args.buckets} needs {' and '.join(missing)}")
  if bool(args.llm_labels) != bool(args.llm_model):
    p.error("--llm-labels and --llm-model go together")
  if not args.beam and (args.dry_run or args.beam_option or args.runner != "DirectRunner"):
    p.error("--runner, --beam-option and --dry-run go with --beam")
  if args.dry_run:
    out = _beam_options(args)[1]
    print(json.dumps(out))
    return out
  out = (_prepare_beam if args.beam else _prepare)(args)
  print(json.dumps(out, ensure_ascii=False) if args.json else "\n".join(summary_lines(out)))
  return out


SUBCOMMANDS = {"stats": stats, "prepare": prepare}


def main(argv: Sequence[str], prog: str = "rankjax data"):
  return common.dispatch_to(SUBCOMMANDS, argv, prog=prog, doc=__doc__)
