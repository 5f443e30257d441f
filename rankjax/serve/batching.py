"""Bucketed shapes for scoring: lists of any length and any number of lists padded to a few shapes.

A batch of lists is padded to a list size from `list_buckets` (the run's `config.data.list_sizes`,
then the largest doubled as often as a longer list needs), a batch size that is a power of two up
to the largest batch, and for token arrays a width from the run's token widths. So jit compiles at
most len(batch sizes) x len(list sizes) [x len(token widths)] programs for any input, plus one
list size per doubling for lists longer than any the run was trained on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from rankjax.data import pipeline, schema, text


def list_bucket(n: int, list_sizes: Sequence[int]) -> int:
  """The padded list size of a list of `n` items.

  >>> list_bucket(3, (8, 32)), list_bucket(33, (8, 32)), list_bucket(65, (8, 32))
  (8, 64, 128)
  """
  largest = max(list_sizes)
  if n <= largest:
    return pipeline.list_size_for(n, list_sizes)
  return largest * 2 ** int(np.ceil(np.log2(n / largest)))


def batch_bucket(n: int, max_batch: int) -> int:
  """The padded batch size of `n` lists: the smallest power of two >= n, at most `max_batch`.

  >>> batch_bucket(1, 16), batch_bucket(5, 16), batch_bucket(16, 16), batch_bucket(3, 6)
  (1, 8, 16, 4)
  """
  return min(1 << max(n - 1, 0).bit_length(), max_batch)


def batches(
  lists: Sequence[schema.RankingList],
  *,
  max_batch: int,
  list_sizes: Sequence[int],
  token_widths: Sequence[int] | None = None,
  label_source: str | None = None,
  extras: Sequence[str] = (),
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
  """Padded batches of `lists`, lists of similar length together.

  Yields:
    (batch, indices): the batch ("mask", "features" or "tokens"/"token_types", and with
    `label_source` "labels", "where" and "bucket"; each of `extras`, from the lists' extras) and
    the index in `lists` of each of its rows
    (-1: a padding row).
  """
  lengths = np.array([len(x) for x in lists])
  order = np.argsort(lengths, kind="stable")
  for start in range(0, len(lists), max_batch):
    chunk = order[start : start + max_batch]
    b = batch_bucket(len(chunk), max_batch)
    l = list_bucket(int(lengths[chunk].max()), list_sizes)
    batch = {"mask": np.zeros((b, l), bool)}
    first = lists[chunk[0]]
    if first.features is not None:
      batch["features"] = np.zeros((b, l, first.features.shape[1]), np.float32)
    if first.tokens is not None:
      longest = max(int(text.pair_lengths(lists[i].tokens).max()) for i in chunk)
      t = text.width_for(longest, token_widths or (first.tokens.shape[1],))
      batch["tokens"] = np.zeros((b, l, t), np.int32)
      batch["token_types"] = np.zeros((b, l, t), np.int32)
    if label_source is not None:
      batch["labels"] = np.zeros((b, l), np.float32)
      batch["where"] = np.zeros((b, l), bool)
      batch["bucket"] = np.full((b,), schema.UNKNOWN_BUCKET, np.int32)
    for e in extras:
      batch[e] = np.zeros((b, l), np.float32)
    for row, i in enumerate(chunk):
      lst = lists[i]
      n = len(lst)
      batch["mask"][row, :n] = True
      if "features" in batch:
        batch["features"][row, :n] = lst.features
      if "tokens" in batch:
        batch["tokens"][row, :n] = lst.tokens[:, :t]
        batch["token_types"][row, :n] = lst.token_types[:, :t]
      if label_source is not None:
        labels = lst.labels.get(label_source, np.full(n, np.nan, np.float32))
        batch["labels"][row, :n] = np.nan_to_num(labels)
        batch["where"][row, :n] = ~np.isnan(labels)
        batch["bucket"][row] = lst.bucket
      for e in extras:
        batch[e][row, :n] = lst.extras[e]
    yield batch, np.pad(chunk, (0, b - len(chunk)), constant_values=-1)
