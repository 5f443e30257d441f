"""A click log as padded arrays, the input every click model reads.

Sessions here are single result pages (one interaction each): N pages of at most K ranks.

  doc   int32   [N, K]  index of the (query, document) pair shown at rank k+1 (0 where masked)
  click float32 [N, K]  1 where that result was clicked
  mask  bool    [N, K]  a result was shown at rank k+1
  pairs list of P (query id, doc id), the pair each index stands for
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

import numpy as np

from rankjax.data.readers.common import Session


@dataclasses.dataclass
class ClickLog:
  """Padded click arrays (see the module docstring) and the pair vocabulary."""

  doc: np.ndarray
  click: np.ndarray
  mask: np.ndarray
  pairs: list[tuple[str, str]]

  def __post_init__(self):
    self.doc = np.asarray(self.doc, np.int32)
    self.click = np.asarray(self.click, np.float32)
    self.mask = np.asarray(self.mask, bool)
    if not self.doc.shape == self.click.shape == self.mask.shape or self.doc.ndim != 2:
      raise ValueError(
        f"doc {self.doc.shape}, click {self.click.shape}, mask {self.mask.shape}: want equal [N, K]"
      )
    if self.doc.size and (self.doc.min() < 0 or self.doc.max() >= max(len(self.pairs), 1)):
      raise ValueError(f"doc indices outside [0, {len(self.pairs)})")
    if (self.click[~self.mask] != 0).any():
      raise ValueError("clicks on masked (never shown) ranks")

  @property
  def num_sessions(self) -> int:
    return self.doc.shape[0]

  @property
  def num_ranks(self) -> int:
    return self.doc.shape[1]

  @property
  def num_pairs(self) -> int:
    return len(self.pairs)

  def take(self, index: np.ndarray) -> ClickLog:
    """The log restricted to the sessions at `index` (same pair vocabulary)."""
    return ClickLog(self.doc[index], self.click[index], self.mask[index], self.pairs)

  def split(self, test_fraction: float, seed: int = 0) -> tuple[ClickLog, ClickLog]:
    """A random (train, test) split of the sessions: each is a test session with probability
    `test_fraction`, drawn in order from `seed` as `write_shards` draws them, so the in-memory and
    the streamed fit hold out the same sessions."""
    test = np.random.default_rng(seed).random(self.num_sessions) < test_fraction
    return self.take(np.flatnonzero(~test)), self.take(np.flatnonzero(test))

  @classmethod
  def from_sessions(cls, sessions: Iterable[Session], max_rank: int = 10) -> ClickLog:
    """Every interaction of the sessions as one page (`pages`).

    >>> from rankjax.data.readers.common import Interaction, Session
    >>> session = Session("s", [Interaction("q", ["a", "b"], [1, 3], [0, 1])])
    >>> log = ClickLog.from_sessions([session], max_rank=3)
    >>> log.doc.tolist(), log.click.tolist(), log.mask.tolist(), log.pairs
    ([[0, 0, 1]], [[0.0, 0.0, 1.0]], [[True, False, True]], [('q', 'a'), ('q', 'b')])
    """
    index: dict[tuple[str, str], int] = {}
    rows = list(pages(sessions, max_rank, index))
    if not rows:
      shape = (0, max_rank)
      return cls(np.zeros(shape, np.int32), np.zeros(shape, np.float32), np.zeros(shape, bool), [])
    doc, click, mask = (np.stack(x) for x in zip(*rows))
    return cls(doc, click, mask, list(index))


def pages(
  sessions: Iterable[Session], max_rank: int, index: dict[tuple[str, str], int]
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """(doc, click, mask) [max_rank] per interaction of the sessions, one at a time: a page as a row
  of `ClickLog`; `index` maps (query id, doc id) to the pair's index and grows with new pairs.

  Ranks above `max_rank` are dropped; interactions whose ranks are not shown ranks (annotation
  files) are an error.
  """
  for s in sessions:
    for it in s.interactions:
      if not it.shown:
        raise ValueError(
          f"session {s.session_id} ({s.source}): ranks are not shown ranks; no clicks to model"
        )
      d = np.zeros(max_rank, np.int32)
      c = np.zeros(max_rank, np.float32)
      m = np.zeros(max_rank, bool)
      for doc, rank, n in zip(it.doc_ids, it.ranks, it.clicks):
        if 1 <= rank <= max_rank:
          d[rank - 1] = index.setdefault((it.query_id, doc), len(index))
          c[rank - 1] = float(n > 0)
          m[rank - 1] = True
      yield d, c, m
