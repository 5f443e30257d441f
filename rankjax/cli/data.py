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
import json
import sys
from collections.abc import Callable, Sequence

import numpy as np

from rankjax import registry
from rankjax.cli import common, reader_flags
from rankjax.data import aggregate, frequency, readers, splits, svmlight, text

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


def with_features(lists, rows, summary: readers.ReadSummary):
  """Attaches each document's feature row from svmlight `rows` (same qid and doc ids), made dense
  per list; a document without one is an error naming it (and the lines the read skipped)."""
  from rankjax.data.readers import errors

  table = {key: k for k, key in enumerate(zip(rows.qids, rows.doc_ids))}
  for lst in lists:
    found = [table.get((lst.qid, d)) for d in lst.doc_ids]
    missing = [d for d, k in zip(lst.doc_ids, found) if k is None]
    if missing:
      reasons = ", ".join(f"{n} {reason}" for reason, n in summary.reasons.most_common())
      skipped = f"; lines of it skipped: {reasons}" if summary.skipped else ""
      raise errors.InputError(
        f"{rows.path}: no features for query {lst.qid!r}, documents {missing[:5]}{skipped}"
      )
    yield dataclasses.replace(lst, features=rows.dense(found))


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


@dataclasses.dataclass(frozen=True)
class Split:
  """A way to split the queries into train, validation and test (`--split-by`).

  Attributes:
    assign: (aggregator, test fraction, validation fraction) -> query id -> split name
      (`rankjax.data.splits`).
    description: what decides a query's split, for --help.
    by_fraction: whether --test-fraction sizes the test set (at 0 there is no test split).
  """

  assign: Callable[[aggregate.ClickAggregator, float, float], dict[str, str]]
  description: str
  by_fraction: bool = True


# --split-by name -> Split, each entered with `registry.register` below its function.
SPLITS: dict[str, Split] = {}


def _by_query(agg, test: float, validation: float):
  return splits.by_unit({q: q for q in agg.pairs}, test, validation)


def _by_topic(agg, test: float, validation: float):
  no_topic = [q for q, i in agg.queries.items() if i.topic is None]
  if no_topic:
    raise SystemExit(
      f"--split-by topic: {len(no_topic)} queries have no topic, e.g. {no_topic[:3]}"
    )
  return splits.by_unit({q: agg.queries[q].topic for q in agg.pairs}, test, validation)


def _labelled(agg, test: float, validation: float):
  del test
  labelled = [
    q for q, docs in agg.pairs.items() if any(not np.isnan(p.label) for p in docs.values())
  ]
  if not labelled:
    raise SystemExit("--split-by labelled: no query has human labels (--labels)")
  return splits.labelled(agg.pairs, labelled, validation)


registry.register(SPLITS, "query")(Split(_by_query, "a hash of the query id"))
registry.register(SPLITS, "topic")(
  Split(_by_topic, "a hash of the query's topic, so that no topic is in two splits")
)
registry.register(SPLITS, "labelled")(
  Split(
    _labelled,
    "the queries with human labels are the test set (TianGong-ST's 2,000 sessions), less "
    "--validation-fraction of them for validation",
    by_fraction=False,
  )
)


def _prepare(args) -> dict:
  from rankjax.data import store

  if args.freq_by == DATASET_FREQUENCY and (args.format != "sogou" or not args.queries):
    raise SystemExit(
      "--freq-by dataset needs --format sogou and its --queries file (sessions per query)"
    )
  options = reader_flags.options(args)
  features = (
    read_features(args.features, args.num_features, args.features_encoding)
    if args.features
    else None
  )
  summary = readers.ReadSummary()
  agg = aggregate.ClickAggregator()
  for s in reader_flags.sessions(args, summary):
    agg.add(s)
  reader_flags.check_format(summary, args)
  if not agg.pairs:
    raise SystemExit(f"no session read from {args.files}: {summary}")
  kw = {option: getattr(args, option) for option in aggregate.BUCKET_METHODS[args.buckets].options}
  if args.freq_by == DATASET_FREQUENCY:
    from rankjax.data.readers import sogou

    freq = sogou.load_sogou_queries(args.queries, options.get("encoding", sogou.ENCODING))[1]
  else:
    try:
      freq = agg.freq.frequency(args.freq_by)
    except ValueError as e:  # e.g. by topic, of a log without topics
      raise SystemExit(f"--freq-by {args.freq_by} ({args.format}): {e}") from None
  buckets = aggregate.buckets_for(agg, freq, args.buckets, **kw)
  bucket_rows = aggregate.bucket_summary(agg, buckets, freq)
  warnings = []
  thin = frequency.thin_bucket_warning(
    bucket_rows, {q: freq.get(q, 0.0) for q in agg.pairs}, args.buckets, _other_counts(agg, args)
  )
  if thin:
    warnings.append(thin)
    print(f"warning: {thin}", file=sys.stderr)
  split_of = SPLITS[args.split_by].assign(agg, args.test_fraction, args.validation_fraction)
  sizes = collections.Counter(split_of.values())
  if args.validation_fraction > 0 and not sizes[splits.VALIDATION]:
    warnings.append(
      f"no validation split: {sizes[splits.TRAIN]} training and {sizes[splits.TEST]} test "
      "queries leave none to hold out; configs that evaluate on validation will not run on it"
    )
    print(f"warning: {warnings[-1]}", file=sys.stderr)
  llm = (
    store_labels(args.llm_labels, args.llm_model, args.llm_mode, args.llm_prompt_version)
    if args.llm_labels
    else None
  )
  tokenizer = (
    text.PairTokenizer.from_dir(
      args.tokenizer, max_query_tokens=args.max_query_tokens, max_tokens=args.max_tokens
    )
    if args.tokenizer
    else None
  )
  counts = collections.Counter()

  def lists(name):
    out = aggregate.to_ranking_lists(
      agg, freq=freq, bucket_method=args.buckets, keep=lambda q: split_of[q] == name, **kw
    )
    if features:
      out = with_features(out, *features)
    if llm is not None:
      out = with_llm_labels(out, llm, counts)
    return map(tokenizer, out) if tokenizer else out

  # train first (its first list sets what the dataset stores), then the held-out splits there are.
  names = [splits.TRAIN] + [n for n in (splits.VALIDATION, splits.TEST) if sizes[n]]
  path = store.write_dataset(
    args.output,
    name=args.name,
    splits={n: lists(n) for n in names},
    description=f"click log {args.files} ({args.format}), aggregated per (query, doc)",
    metadata={"bucket_ranges": frequency.bucket_ranges(bucket_rows)},
    progress=not args.quiet,
  )
  if tokenizer:
    tokenizer.save_rules(path, args.tokenizer)
    counts.update({f"tokens_{k}": v for k, v in tokenizer.counts.items()})
  out = {
    "path": str(path),
    "lists": {n: sizes[n] for n in (splits.TRAIN, splits.VALIDATION, splits.TEST)},
    "split_by": args.split_by,
    **({"joined": dict(counts)} if counts else {}),
    **({"features": _features_read(*features)} if features else {}),
    "freq_by": args.freq_by,
    "bucket_method": args.buckets,
    "buckets": bucket_rows,
    "warnings": warnings,
    "position_totals": {str(k): v for k, v in agg.position_totals().items()},
    "conflicts": dict(agg.conflicts),
    "read": summary.as_dict(),
  }
  out["summary_file"] = str(path / SUMMARY_FILE)
  (path / SUMMARY_FILE).write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
  return out


def _other_counts(agg: aggregate.ClickAggregator, args) -> list[str]:
  """The --freq-by choices that could bucket this log better than the one asked: the topic's
  sessions where the log has topics."""
  if args.freq_by != "topic" and agg.freq.topic_sessions:
    return ["--freq-by topic (the sessions of the query's topic)"]
  return []


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
    choices=list(SPLITS),
    default="query",
    help="; ".join(f"{name}: {split.description}" for name, split in SPLITS.items()),
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
  args = p.parse_args(argv)
  missing = [
    f"--{o}" for o in aggregate.BUCKET_METHODS[args.buckets].options if getattr(args, o) is None
  ]
  if missing:
    p.error(f"--buckets {args.buckets} needs {' and '.join(missing)}")
  if bool(args.llm_labels) != bool(args.llm_model):
    p.error("--llm-labels and --llm-model go together")
  out = _prepare(args)
  print(json.dumps(out, ensure_ascii=False) if args.json else "\n".join(summary_lines(out)))
  return out


SUBCOMMANDS = {"stats": stats, "prepare": prepare}


def main(argv: Sequence[str], prog: str = "rankjax data"):
  return common.dispatch_to(SUBCOMMANDS, argv, prog=prog, doc=__doc__)
