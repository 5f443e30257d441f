"""What `rankjax data prepare` decides per query, on either of its paths: frequency, bucket, split.

The in-process path decides on its `aggregate.ClickAggregator`, the Beam pipeline
(`rankjax.data.beam_prepare`) on an `aggregate.QueryTable` gathered from its combines; both offer
the same per-query view (`queries` in first-seen order, `freq`, `query_totals`,
`labelled_queries`), so one function, `decide`, makes the same decisions on both.

The ways to split queries (`--split-by`) are registered in `SPLITS`.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Mapping

from rankjax import registry
from rankjax.data import aggregate, frequency, splits
from rankjax.data.readers.errors import InputError

Table = aggregate.ClickAggregator | aggregate.QueryTable


@dataclasses.dataclass(frozen=True)
class Split:
  """A way to split the queries into train, validation and test (`--split-by`).

  Attributes:
    assign: (query table, test fraction, validation fraction) -> query id -> split name
      (`rankjax.data.splits`).
    description: what decides a query's split, for --help.
    by_fraction: whether --test-fraction sizes the test set (at 0 there is no test split).
  """

  assign: Callable[[Table, float, float], dict[str, str]]
  description: str
  by_fraction: bool = True


# --split-by name -> Split, each entered with `registry.register` below its function.
SPLITS: dict[str, Split] = {}


def _by_query(table: Table, test: float, validation: float):
  return splits.by_unit({q: q for q in table.queries}, test, validation)


def _by_topic(table: Table, test: float, validation: float):
  no_topic = [q for q, i in table.queries.items() if i.topic is None]
  if no_topic:
    raise InputError(
      f"--split-by topic: {len(no_topic)} queries have no topic, e.g. {no_topic[:3]}"
    )
  return splits.by_unit({q: i.topic for q, i in table.queries.items()}, test, validation)


def _labelled(table: Table, test: float, validation: float):
  del test
  labelled = table.labelled_queries()
  if not labelled:
    raise InputError("--split-by labelled: no query has human labels (--labels)")
  return splits.labelled(table.queries, labelled, validation)


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


@dataclasses.dataclass(frozen=True)
class Options:
  """What `decide` is asked (the `rankjax data prepare` flags of the same names).

  Attributes:
    freq_by: a count of the log (`frequency.FREQ_BY`), or None where `freq` is given.
    freq: query id -> frequency to use instead of a count (the Sogou query file's).
    buckets: a bucket method (`aggregate.BUCKET_METHODS`); bucket_kw its options.
    split_by: a name in `SPLITS`.
  """

  freq_by: str | None
  buckets: str
  bucket_kw: Mapping
  split_by: str
  test_fraction: float
  validation_fraction: float
  freq: Mapping[str, float] | None = None


@dataclasses.dataclass(frozen=True)
class Plan:
  """The decisions: per query its frequency, bucket and split; the bucket summary
  (`aggregate.bucket_summary`), lists per split and the warnings to print."""

  freq: dict[str, float]
  buckets: dict[str, int]
  bucket_rows: dict[str, dict]
  split_of: dict[str, str]
  sizes: collections.Counter
  warnings: list[str]


def _other_counts(table: Table, freq_by: str | None) -> list[str]:
  """The counts that could bucket this log better than the one asked: the topic's sessions
  where the log has topics."""
  if freq_by != "topic" and table.freq.topic_sessions:
    return ["--freq-by topic (the sessions of the query's topic)"]
  return []


def decide(table: Table, options: Options) -> Plan:
  """Frequencies, buckets and splits of the queries of `table` as `options` ask (module doc)."""
  if options.freq is not None:
    freq = dict(options.freq)
  else:
    try:
      freq = table.freq.frequency(options.freq_by)
    except ValueError as e:  # e.g. by topic, of a log without topics
      raise InputError(f"--freq-by {options.freq_by}: {e}") from None
  buckets = aggregate.buckets_for(table, freq, options.buckets, **options.bucket_kw)
  bucket_rows = aggregate.bucket_summary(table, buckets, freq)
  warnings = []
  thin = frequency.thin_bucket_warning(
    bucket_rows,
    {q: freq.get(q, 0.0) for q in table.queries},
    options.buckets,
    _other_counts(table, options.freq_by),
  )
  if thin:
    warnings.append(thin)
  split_of = SPLITS[options.split_by].assign(
    table, options.test_fraction, options.validation_fraction
  )
  sizes = collections.Counter(split_of.values())
  if options.validation_fraction > 0 and not sizes[splits.VALIDATION]:
    warnings.append(
      f"no validation split: {sizes[splits.TRAIN]} training and {sizes[splits.TEST]} test "
      "queries leave none to hold out; configs that evaluate on validation will not run on it"
    )
  return Plan(freq, buckets, bucket_rows, split_of, sizes, warnings)


def split_names(sizes: Mapping[str, int]) -> list[str]:
  """The splits a dataset writes: train first (its first list sets what the dataset stores),
  then the held-out splits that have lists."""
  return [splits.TRAIN] + [n for n in (splits.VALIDATION, splits.TEST) if sizes.get(n)]
