"""Whether a click log identifies position propensities: (query, document) pairs seen at several
ranks.

Under PBM the click probability of a pair d at rank k is theta_k * r_d. A pair always shown at one
rank gives only that product, so any theta fits as well as any other once r_d absorbs it. The ratio
theta_k / theta_k' is fixed by the log only through pairs shown at both k and k' (the
interventions that `rankjax.click_models.intervention` harvests), directly or along a chain of
such rank pairs. With a fixed logging ranker every pair is seen at one rank and no propensity is
identified: a fit then returns its start and smoothing, not the log's position bias.

  ident = identify(log)
  ident.shared[0, 1]       # pairs shown at both rank 1 and rank 2
  ident.unidentified       # 1-based ranks not linked to rank 1
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from rankjax.click_models.log import ClickLog


@dataclasses.dataclass
class Identification:
  """The rank overlap of a log's (query, document) pairs.

  Attributes:
    shared: int64 [K, K], pairs shown at both ranks (the diagonal: pairs shown at that rank).
    pairs: (query, document) pairs in the log.
    several_ranks: pairs shown at more than one rank.
    unidentified: 1-based ranks that no chain of shared pairs links to rank 1 (ranks never shown
      are left out: they have nothing to estimate).
  """

  shared: np.ndarray
  pairs: int
  several_ranks: int
  unidentified: list[int]

  @property
  def identified(self) -> bool:
    return not self.unidentified

  def as_dict(self) -> dict:
    """The counts a fit reports: pairs shared with rank 1 and between adjacent ranks, by rank."""
    k = self.shared.shape[0]
    return {
      "identified": self.identified,
      "unidentified_ranks": self.unidentified,
      "pairs": self.pairs,
      "pairs_at_several_ranks": self.several_ranks,
      "pairs_shared_with_rank_1": {f"1-{j + 1}": int(self.shared[0, j]) for j in range(1, k)},
      "pairs_shared_adjacent": {f"{j}-{j + 1}": int(self.shared[j - 1, j]) for j in range(1, k)},
    }

  def warning(self, model: str) -> str | None:
    """Why the fit's propensities mean nothing at the unidentified ranks; None if all are
    identified."""
    if self.identified:
      return None
    return (
      f"the {model} propensities of ranks {_spans(self.unidentified)} are not identified by this "
      f"log: {self.several_ranks:,} of its {self.pairs:,} (query, document) pairs are seen at more "
      "than one rank, and none links those ranks to rank 1 (directly or through other ranks), so "
      "position and relevance cannot be told apart there and the fitted values come from the "
      "fit's start and smoothing, not from the log. Log with a ranker that varies the order "
      "(e.g. `rankjax clicks simulate --logger noisy-label`, randomized swaps, interleaving), or "
      "take propensities from such a log."
    )


def identify(log: ClickLog) -> Identification:
  """The rank overlap of the log's pairs, and the ranks it leaves unidentified.

  >>> fixed = ClickLog([[0, 1], [0, 1]], [[1, 0], [0, 0]], [[True, True]] * 2,
  ...                  [("q", "a"), ("q", "b")])
  >>> identify(fixed).unidentified, identify(fixed).several_ranks
  ([2], 0)
  >>> swapped = ClickLog([[0, 1], [1, 0]], [[1, 0], [0, 0]], [[True, True]] * 2,
  ...                    [("q", "a"), ("q", "b")])
  >>> identify(swapped).identified, identify(swapped).shared.tolist()
  (True, [[2, 2], [2, 2]])
  """
  shown = np.zeros((log.num_pairs, log.num_ranks), np.int64)
  ranks = np.broadcast_to(np.arange(log.num_ranks), log.doc.shape)[log.mask]
  shown[log.doc[log.mask], ranks] = 1
  return from_impressions(shown)


def from_impressions(impressions: np.ndarray) -> Identification:
  """`identify` from the impressions of each pair at each rank, [P, K] (a streamed fit's
  `PairRankCounts`), without the log."""
  shown = (np.asarray(impressions) > 0).astype(np.int64)
  shared = shown.T @ shown
  linked = shared > 0
  np.fill_diagonal(linked, False)
  never_shown = {r + 1 for r in range(shown.shape[1]) if not shared[r, r]}
  return Identification(
    shared=shared,
    pairs=shown.shape[0],
    several_ranks=int((shown.sum(1) > 1).sum()),
    unidentified=[r for r in unreached_ranks(linked) if r not in never_shown],
  )


def unreached_ranks(linked: np.ndarray) -> list[int]:
  """1-based ranks not connected to rank 1 in the graph of linked rank pairs ([K, K] bool)."""
  seen, todo = {0}, collections.deque([0])
  while todo:
    r = todo.popleft()
    for s in np.flatnonzero(linked[r]):
      if s not in seen:
        seen.add(int(s))
        todo.append(int(s))
  return [r + 1 for r in range(linked.shape[0]) if r not in seen]


def _spans(ranks: list[int]) -> str:
  """1-based ranks as runs: [2, 3, 4, 7] -> "2-4, 7"."""
  runs: list[list[int]] = []
  for r in ranks:
    if runs and r == runs[-1][-1] + 1:
      runs[-1].append(r)
    else:
      runs.append([r])
  return ", ".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs)
