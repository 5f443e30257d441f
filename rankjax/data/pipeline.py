"""Input pipeline: prepared ranking lists -> padded numpy batches (`schema.BATCH_KEYS`), via grain.

Lists are ragged; a batch is padded to the smallest of a few fixed list sizes that holds its
longest list, so jit compiles at most `len(list_sizes)` shapes. Training lists longer than the
largest size are subsampled to it (the count is reported by `count_long_lists`); an evaluation list
longer than that is an error, since cutting it would change the metric.

Token arrays [B, L, T] (cross-encoder datasets) are likewise cut to the smallest of a few widths
(`token_widths`) that holds the batch's longest pair, instead of the stored width T; no real token
is ever cut. The widths come from the training split's per-list longest pairs, so the encoder
compiles at most `len(token_widths) x len(list_sizes)` shapes.

Batches are global: `batch_size` lists over all hosts. Every host computes the same index stream and
the same list size and token width per batch from the stored per-list lengths (`Split.lengths`,
`Split.token_lengths`), then reads only its own `batch_size / process_count` lists, which
`jax.make_array_from_process_local_data` assembles into one array.

Training order: a grain `MapDataset` over list indices, shuffled with a fixed seed (a new order per
epoch), repeated, batched; or, `length_grouped`, each epoch's batches from
`text.length_grouped_batches` (lists of the same padded list size and similar token length
together, seeded by (seed, epoch)); or, given a data schedule's `phases`, `mixture.batches`:
each step's lists drawn from the (bucket, label source) cells its phase trains, each list with its
source in the batch's "source_id" int32 [B].
Every way a batch is a pure function of its step, so the iterator's `get_state()` / `set_state()`
resume it exactly.
"""

from __future__ import annotations

import functools
from typing import Iterator, Sequence

import grain
import numpy as np

from rankjax.data import mixture, schema, text


def list_size_for(n, list_sizes: Sequence[int]):
  """The smallest of `list_sizes` that holds n items, else the largest; elementwise for an array.

  >>> list_size_for(3, (8, 32)), list_size_for(9, (8, 32)), list_size_for(99, (8, 32))
  (8, 32, 32)
  >>> list_size_for(np.array([3, 9, 99]), (32, 8)).tolist()
  [8, 32, 32]
  """
  ordered = np.sort(np.asarray(list_sizes))
  sizes = ordered[np.minimum(np.searchsorted(ordered, n), len(ordered) - 1)]
  return int(sizes) if np.ndim(n) == 0 else sizes


def count_long_lists(lengths: np.ndarray, list_sizes: Sequence[int]) -> int:
  """How many lists are longer than the largest list size (subsampled in training)."""
  return int((np.asarray(lengths) > max(list_sizes)).sum())


def token_widths(split, num_buckets: int) -> tuple[int, ...] | None:
  """The token widths that batches are cut to, from `split`'s per-list longest pairs.

  `text.bucket_widths(split.token_lengths, num_buckets)` (none above the stored width T), plus T
  itself, which holds a list of another split longer than any of this one: at most
  `num_buckets + 1` widths. None (every batch at width T) without tokens, for `num_buckets` < 2,
  or when every width would be T.
  """
  t = split.layout["tokens"]
  if t is None or num_buckets < 2:
    return None
  widths = {min(w, t) for w in text.bucket_widths(split.token_lengths, num_buckets)} | {t}
  return tuple(sorted(widths)) if len(widths) > 1 else None


def _batch_shape(
  split, indices: np.ndarray, list_sizes: Sequence[int], widths: Sequence[int] | None
) -> dict[str, int | None]:
  """`make_batch`'s list size and token width for the global batch of records `indices`."""
  shape = {
    "list_size": list_size_for(int(split.lengths[indices].max()), list_sizes),
    "token_width": None,
  }
  if widths is not None:
    shape["token_width"] = text.width_for(int(split.token_lengths[indices].max()), widths)
  return shape


def describe(batch: dict) -> str:
  """A (padded) batch's shape in words, as the compile lines name what compiles for it.

  >>> describe({"mask": np.zeros((32, 64), bool), "tokens": np.zeros((32, 64, 128), np.int32)})
  '32 lists of 64 items x 128 tokens'
  """
  b, n = batch["mask"].shape
  tokens = f" x {batch['tokens'].shape[-1]} tokens" if "tokens" in batch else ""
  return f"{b} lists of {n} items{tokens}"


def make_batch(
  records: Sequence[dict],
  *,
  batch_size: int,
  list_size: int,
  layout: dict,
  rng: np.random.Generator | None = None,
  token_width: int | None = None,
) -> dict[str, np.ndarray]:
  """Pads records (store layout) into one batch of `batch_size` lists of `list_size` items.

  Args:
    records: up to `batch_size` records from `store.open_split`.
    batch_size: B; missing lists are padding (`list_valid` False, `mask` all False).
    list_size: L; a longer record is subsampled to L items with `rng` (an error without one).
    layout: the dataset's layout (`Split.layout`).
    rng: random generator for subsampling long lists (training only).
    token_width: T of `tokens` / `token_types`; None: the stored width. A record with a real token
      past it is an error.

  Returns:
    The batch dict, keys as in `schema.BATCH_KEYS`, labels 0 and masks False where missing.
  """
  b, l = batch_size, list_size
  if len(records) > b:
    raise ValueError(f"{len(records)} records for a batch of {b}")
  batch = {
    "mask": np.zeros((b, l), bool),
    "position": np.zeros((b, l), np.int32),
    "query_freq": np.zeros((b,), np.float32),
    "bucket": np.full((b,), schema.UNKNOWN_BUCKET, np.int32),
    "list_valid": np.zeros((b,), bool),
  }
  if layout["features"] is not None:
    batch["features"] = np.zeros((b, l, layout["features"]), np.float32)
  t = token_width or layout["tokens"]
  if layout["tokens"] is not None:
    batch["tokens"] = np.zeros((b, l, t), np.int32)
    batch["token_types"] = np.zeros((b, l, t), np.int32)
  for s in layout["sources"]:
    batch[f"label_{s}"] = np.zeros((b, l), np.float32)
    batch[f"mask_{s}"] = np.zeros((b, l), bool)
  for e in layout["extras"]:
    batch[e] = np.zeros((b, l), np.float32)

  for i, rec in enumerate(records):
    n = len(rec["doc_ids"])
    take = slice(None)
    if n > l:
      if rng is None:
        raise ValueError(f"list {rec['qid']!r} has {n} items, more than the largest list size {l}")
      take = np.sort(rng.choice(n, l, replace=False))
      n = l
    batch["mask"][i, :n] = True
    batch["list_valid"][i] = True
    batch["position"][i, :n] = rec["position"][take]
    batch["query_freq"][i] = rec["query_freq"]
    batch["bucket"][i] = rec["bucket"]
    if "features" in batch:
      batch["features"][i, :n] = rec["features"][take]
    if "tokens" in batch:
      if rec["tokens"][:, t:].any():
        raise ValueError(
          f"list {rec['qid']!r} has a pair longer than the token width {t} chosen "
          "from its stored token length; a stale token_lengths-<split>.npy? "
          "Delete it to recompute"
        )
      batch["tokens"][i, :n] = rec["tokens"][take, :t]
      batch["token_types"][i, :n] = rec["token_types"][take, :t]
    for s in layout["sources"]:
      labels = rec[f"label_{s}"][take]
      has = ~np.isnan(labels)
      batch[f"label_{s}"][i, :n] = np.where(has, labels, 0)
      batch[f"mask_{s}"][i, :n] = has
    for e in layout["extras"]:
      batch[e][i, :n] = rec[f"extra_{e}"][take]
  return batch


def _local_part(global_indices: np.ndarray, process_index: int, process_count: int):
  if len(global_indices) % process_count:
    raise ValueError(f"batch size {len(global_indices)} not divisible by {process_count} hosts")
  per_host = len(global_indices) // process_count
  return global_indices[process_index * per_host : (process_index + 1) * per_host]


def _shape_keys(split, list_sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
  """Each list's padded list size and longest pair (zeros without tokens)."""
  sizes = list_size_for(split.lengths, list_sizes)
  token_lengths = (
    split.token_lengths if split.layout["tokens"] is not None else np.zeros(len(split), np.int32)
  )
  return sizes, token_lengths


def _grouped_batches(
  split, batch_size: int, list_sizes: Sequence[int], seed: int
) -> grain.MapDataset:
  """Endless global batches of list indices, each epoch `text.length_grouped_batches` by padded
  list size, then (with tokens) longest pair."""
  per_epoch = len(split) // batch_size
  if not per_epoch:
    raise ValueError(f"{len(split)} lists make no batch of {batch_size}")
  sizes, token_lengths = _shape_keys(split, list_sizes)

  @functools.lru_cache(maxsize=2)  # the epoch being read, and the next one prefetch reaches
  def epoch(e: int) -> list[np.ndarray]:
    batches = text.length_grouped_batches(token_lengths, batch_size, seed=(seed, e), groups=sizes)
    return [b for b in batches if len(b) == batch_size]  # drops the one short batch

  return (
    grain.MapDataset.range(per_epoch)
    .repeat()
    .map_with_index(lambda step, _: epoch(step // per_epoch)[step % per_epoch])
  )


def train_dataset(
  split,
  *,
  batch_size: int,
  list_sizes: Sequence[int],
  seed: int,
  token_widths: Sequence[int] | None = None,
  length_grouped: bool = False,
  phases: Sequence[mixture.Phase] | None = None,
  process_index: int = 0,
  process_count: int = 1,
  num_threads: int = 2,
  prefetch: int = 4,
) -> grain.IterDataset:
  """An endless, deterministic stream of this host's part of each global training batch.

  Args:
    split: a `store.Split` (records with `lengths`).
    batch_size: global batch size B (lists), divisible by `process_count`.
    list_sizes: the padded list sizes.
    seed: shuffle seed; the same seed gives the same batches on every run and host.
    token_widths: widths token arrays are cut to (`token_widths`); None: the stored width.
    length_grouped: batches of lists of the same padded list size and, with tokens, similar
      longest pairs, so that batches pad few documents and `token_widths` cut more; the batch
      order stays random.
    phases: a data schedule's mixtures by step (`mixture.Phase`): each batch holds only lists of
      the cells its phase trains, each with its label source in "source_id" int32 [B]. None: every
      list, shuffled. Not with `length_grouped`.
    process_index: this host.
    process_count: number of hosts.
    num_threads: grain reader threads.
    prefetch: batches grain reads ahead.

  Returns:
    A grain `IterDataset`; `iter()` of it has `get_state()` / `set_state()`.
  """
  if phases is not None:
    if length_grouped:
      raise ValueError("length-grouped batches and a data schedule's phases do not combine")
    batches = mixture.batches(
      split.buckets, split.label_sources, phases, batch_size=batch_size, seed=seed
    )
  elif length_grouped:
    batches = _grouped_batches(split, batch_size, list_sizes, seed)
  else:
    batches = (
      grain.MapDataset.range(len(split))
      .shuffle(seed=seed)
      .repeat()
      .batch(batch_size, drop_remainder=True)
    )

  def load(step: int, indices: np.ndarray) -> dict[str, np.ndarray]:
    sources = None
    if phases is not None:  # (list index, source index) pairs
      indices, sources = indices[:, 0], indices[:, 1]
    shape = _batch_shape(split, indices, list_sizes, token_widths)
    local = _local_part(indices, process_index, process_count)
    rng = np.random.default_rng([seed, step, process_index])
    batch = make_batch(
      [split[int(i)] for i in local], batch_size=len(local), layout=split.layout, rng=rng, **shape
    )
    if sources is not None:
      batch["source_id"] = _local_part(sources, process_index, process_count).astype(np.int32)
    return batch

  return batches.map_with_index(load).to_iter_dataset(
    grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
  )


def eval_batches(
  split,
  *,
  batch_size: int,
  list_sizes: Sequence[int],
  token_widths: Sequence[int] | None = None,
  process_index: int = 0,
  process_count: int = 1,
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
  """This host's part of every global evaluation batch, each list once.

  Lists go sorted by padded list size, then longest pair (stable, so otherwise in stored order):
  a batch pads few documents and tokens, and metrics, being per list, do not depend on the order.
  `token_widths` as in `train_dataset` (None: the stored width).

  Yields:
    (batch, indices): the padded batch and the record index of each of its lists (-1: padding).
  """
  n = len(split)
  too_long = np.flatnonzero(split.lengths > max(list_sizes))
  if too_long.size:
    rec = split[int(too_long[0])]
    raise ValueError(
      f"{split}: list {rec['qid']!r} has {split.lengths[too_long[0]]} items, more "
      f"than the largest list size {max(list_sizes)}; add a larger size "
      f"({too_long.size} lists are too long)"
    )
  sizes, token_lengths = _shape_keys(split, list_sizes)
  order = np.lexsort((token_lengths, sizes))
  for start in range(0, n, batch_size):
    chunk = order[start : start + batch_size]
    shape = _batch_shape(split, chunk, list_sizes, token_widths)
    local = _local_part(
      np.pad(chunk, (0, batch_size - len(chunk)), constant_values=-1), process_index, process_count
    )
    batch = make_batch(
      [split[int(i)] for i in local if i >= 0], batch_size=len(local), layout=split.layout, **shape
    )
    yield batch, local
