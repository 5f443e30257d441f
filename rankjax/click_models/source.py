"""Where a streamed fit reads its sessions (result pages, as in `ClickLog`): this host's part of a
click log, in chunks.

A source is read again on every pass (an EM iteration is one), knows its size, and yields
`ClickLog`-shaped numpy chunks of any length:

  num_sessions, num_ranks   this host's sessions and their ranks
  num_pairs                 the pair vocabulary's size, the same on every host
  chunks()                  -> Iterator[(doc int32 [n, K], click [n, K], mask bool [n, K])]

`LogSource` slices an in-memory `ClickLog`. `write_shards` turns a stream of sessions into .npy
shards in one pass (`ShardWriter`), holding one shard and the pair vocabulary in memory, and
`ShardSource` reads them back one shard at a time (host h of H reads shards h, h + H, ...), so a
fit from shards needs memory for a shard (2^18 sessions of 10 results: 16 MB), a batch and the
per-pair tables, whatever the log's size.
`batches` cuts any chunks into batches of one fixed shape, so a fit compiles once.

  train, test, pairs = write_shards(sessions, "/tmp/shards", max_rank=10, test_fraction=0.2)
  rankjax.click_models.fit(model, train, batch_sessions=65536)
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Iterable, Iterator

import jax
import numpy as np

from rankjax.click_models.log import ClickLog, pages
from rankjax.data.readers.common import Session

Chunk = tuple[np.ndarray, np.ndarray, np.ndarray]
_ARRAYS = ("doc", "click", "mask")
_DTYPES = (np.int32, bool, bool)  # clicks as bool on disk: 1 byte, not a float32's 4


@dataclasses.dataclass
class LogSource:
  """An in-memory `ClickLog` as a source (one chunk: views, no copy)."""

  log: ClickLog

  @property
  def num_sessions(self) -> int:
    return self.log.num_sessions

  @property
  def num_ranks(self) -> int:
    return self.log.num_ranks

  @property
  def num_pairs(self) -> int:
    return self.log.num_pairs

  def chunks(self) -> Iterator[Chunk]:
    yield self.log.doc, self.log.click, self.log.mask


@dataclasses.dataclass
class ShardSource:
  """The shards `write_shards` wrote to `directory`; this host's share of them.

  Attributes:
    directory: holds `meta.json` (ranks, pairs, pages per shard) and `NNNNN-{doc,click,mask}.npy`.
  """

  directory: pathlib.Path

  def __post_init__(self):
    self.directory = pathlib.Path(self.directory)
    meta = json.loads((self.directory / "meta.json").read_text())
    self.num_ranks, self.num_pairs = meta["num_ranks"], meta["num_pairs"]
    shards = list(enumerate(meta["shard_sessions"]))
    self.shards = shards[jax.process_index() :: jax.process_count()]

  @property
  def num_sessions(self) -> int:
    return sum(n for _, n in self.shards)

  def chunks(self) -> Iterator[Chunk]:
    for i, _ in self.shards:
      yield tuple(np.load(self.directory / f"{i:05d}-{a}.npy") for a in _ARRAYS)


class ShardWriter:
  """Sessions appended in chunks of any size, written `shard_sessions` at a time as the .npy
  shards `ShardSource` reads; `close` writes what is left and the metadata."""

  def __init__(self, directory, num_ranks: int, shard_sessions: int = 1 << 18):
    self.directory, self.num_ranks = pathlib.Path(directory), num_ranks
    self.directory.mkdir(parents=True, exist_ok=True)
    self.buffers = [np.zeros((shard_sessions, num_ranks), t) for t in _DTYPES]
    self.filled, self.shard_sizes = 0, []

  def add(self, doc: np.ndarray, click: np.ndarray, mask: np.ndarray) -> None:
    """Appends sessions: [n, K] arrays as in `ClickLog` (clicks stored as bool)."""
    start, n = 0, len(doc)
    while start < n:
      take = min(len(self.buffers[0]) - self.filled, n - start)
      for buffer, values in zip(self.buffers, (doc, click, mask)):
        buffer[self.filled : self.filled + take] = values[start : start + take]
      self.filled, start = self.filled + take, start + take
      if self.filled == len(self.buffers[0]):
        self._flush()

  def _flush(self) -> None:
    i = len(self.shard_sizes)
    for name, buffer in zip(_ARRAYS, self.buffers):
      np.save(self.directory / f"{i:05d}-{name}.npy", buffer[: self.filled])
    self.shard_sizes.append(self.filled)
    self.filled = 0

  def close(self, num_pairs: int) -> ShardSource:
    """Writes the last shard and `meta.json`; the shards as a source."""
    if self.filled:
      self._flush()
    meta = {
      "num_ranks": self.num_ranks,
      "num_pairs": num_pairs,
      "shard_sessions": self.shard_sizes,
    }
    (self.directory / "meta.json").write_text(json.dumps(meta) + "\n")
    return ShardSource(self.directory)


def write_shards(
  sessions: Iterable[Session],
  directory,
  *,
  max_rank: int = 10,
  test_fraction: float = 0.0,
  seed: int = 0,
  shard_sessions: int = 1 << 18,
) -> tuple[ShardSource, ShardSource, list[tuple[str, str]]]:
  """Every interaction of the sessions as a page (`ClickLog.from_sessions`), written as shards.

  Each page goes to the test shards (`directory/test`) with probability `test_fraction` (the draw
  of `ClickLog.split` with the same seed), else to the training shards (`directory/train`); both
  index one pair vocabulary, also written as `directory/pairs.jsonl` ([query id, doc id] per line,
  in index order).

  Returns:
    (train source, test source, the pairs).
  """
  directory = pathlib.Path(directory)
  rng = np.random.default_rng(seed)
  writers = [ShardWriter(directory / part, max_rank, shard_sessions) for part in ("train", "test")]
  index: dict[tuple[str, str], int] = {}
  for row in pages(sessions, max_rank, index):
    writers[int(rng.random() < test_fraction)].add(*(a[None] for a in row))
  with open(directory / "pairs.jsonl", "w", encoding="utf-8") as f:
    f.writelines(json.dumps(pair) + "\n" for pair in index)
  train, test = (w.close(len(index)) for w in writers)
  return train, test, list(index)


def batches(chunks: Iterable[Chunk], rows: int) -> Iterator[Chunk]:
  """The chunks' pages as batches of exactly `rows` pages; the last is padded with hidden pages
  (mask False), which add nothing to any sum. A batch inside one chunk is a view of it."""
  pending: list[Chunk] = []
  filled = 0
  for chunk in chunks:
    start, n = 0, len(chunk[0])
    while start < n:
      take = min(rows - filled, n - start)
      pending.append(tuple(a[start : start + take] for a in chunk))
      filled, start = filled + take, start + take
      if filled == rows:
        yield pending[0] if len(pending) == 1 else _join(pending, rows)
        pending, filled = [], 0
  if pending:
    yield _join(pending, rows)


def _join(parts: list[Chunk], rows: int) -> Chunk:
  """The parts stacked into arrays of `rows` pages (zero pages below them)."""
  out = []
  for arrays in zip(*parts):
    full = np.zeros((rows, *arrays[0].shape[1:]), arrays[0].dtype)
    np.concatenate(arrays, out=full[: sum(len(a) for a in arrays)])
    out.append(full)
  return tuple(out)
