"""The training order of a data schedule: batches mixed from (bucket, label source) cells, the
mixture changing by step.

A `Phase` is (start step, weights f32[len(BUCKETS) + 1, len(SOURCES)]): rows the buckets high,
medium, low and, last, lists without a bucket (so `weights[bucket]` is a list's row, -1 included);
columns the label sources. A row holds the shares of that bucket's lists trained on each source;
a row of zeros leaves the bucket out.

A cell (bucket, source) of positive weight is the lists of that bucket that have a label from that
source, in a new random order each epoch, repeated, each paired with the source. grain's
`MapDataset.mix` interleaves a phase's cells in proportion to

  (lists in the cell) x (the source's share of the bucket's row),

the share of the batch slots that a per-list draw of the source would train on them, so the
buckets keep their weight in the data and every slot of a batch holds a list that trains on its
source. A `DatasetSelectionMap` sends step t to the phase it falls in (t - start into that
phase's batches), so the batch at a step is a pure function of the step: the iterator's grain
state (the next step) resumes exactly, and the mixture changes at the phase starts without
changing any shape, so nothing recompiles.

  batches(split.buckets, split.label_sources, phases, batch_size=32, seed=0)[step]
    -> int64 [32, 2]: (list index, source index into `schema.SOURCES`) per slot
"""

from __future__ import annotations

import bisect
import functools
import sys
from typing import NamedTuple, Sequence

import grain
import numpy as np

from rankjax.data import schema
from rankjax.data.phases import ROWS, Phase


class Cell(NamedTuple):
  """The lists of one bucket with a label from one source, and their weight in a phase's mix."""

  row: int
  source: int
  members: np.ndarray  # indices into the split
  weight: float


def cells(buckets: np.ndarray, sources: np.ndarray, weights: np.ndarray) -> list[Cell]:
  """A phase's non-empty cells of positive weight (module doc), rows then sources in order.

  Args:
    buckets: int [N] each list's bucket (`Split.buckets`).
    sources: int [N] each list's label sources as bits (`Split.label_sources`).
    weights: f32[ROWS, len(SOURCES)], a `Phase`'s weights.

  >>> w = np.zeros((ROWS, 3)); w[0] = [1, 1, 0]; w[2] = [0, 1, 0]
  >>> [(c.row, c.source, c.members.tolist(), c.weight)
  ...  for c in cells(np.array([0, 0, 1, 2, 0]), np.array([3, 3, 3, 1, 1]), w)]
  [(0, 0, [0, 1, 4], 1.5), (0, 1, [0, 1], 1.0)]
  """
  weights = np.asarray(weights, np.float64)
  if weights.shape != (ROWS, len(schema.SOURCES)):
    raise ValueError(f"phase weights of shape {weights.shape}, not {(ROWS, len(schema.SOURCES))}")
  rows = np.where(np.asarray(buckets) < 0, ROWS - 1, buckets)
  out = []
  for r in range(ROWS):
    total = weights[r].sum()
    for k in range(len(schema.SOURCES)):
      if weights[r, k] > 0:
        members = np.flatnonzero((rows == r) & ((np.asarray(sources) >> k) & 1).astype(bool))
        if members.size:
          out.append(Cell(r, k, members, float(members.size * weights[r, k] / total)))
  return out


def _cell_stream(cell: Cell, seed: Sequence[int]) -> grain.MapDataset:
  """Endless (list index, source) pairs of one cell: each epoch a permutation seeded by
  (seed, epoch).

  Own permutations, not grain's `shuffle`: its `index_shuffle` cycle-walks a domain far larger than
  a small cell (2.4 ms per element on a cell of 60 lists, 0.2 ms on 590, 0.02 ms on 100,000,
  measured on the 2-core machine), which made the schedule's stream 3x slower than the plain one;
  a numpy permutation per epoch, cached, costs microseconds.
  """
  n = cell.members.size

  @functools.lru_cache(maxsize=2)  # the epoch being read, and the next one prefetch reaches
  def epoch(e: int) -> np.ndarray:
    return cell.members[np.random.default_rng([*seed, e]).permutation(n)]

  return grain.MapDataset.range(sys.maxsize).map(
    lambda j: np.array([epoch(j // n)[j % n], cell.source], np.int64)
  )


def _phase_batches(
  phase_cells: Sequence[Cell], batch_size: int, seed: int, phase: int
) -> grain.MapDataset:
  """Endless batches [B, 2] of one phase's mix; each cell shuffled by (seed, phase, cell)."""
  parts = [_cell_stream(c, (seed, phase, c.row, c.source)) for c in phase_cells]
  return grain.MapDataset.mix(parts, [c.weight for c in phase_cells]).batch(batch_size)


class _PhaseOfStep(grain.transforms.DatasetSelectionMap):
  """Step -> (its phase, its index among the phase's batches)."""

  def __init__(self, starts: Sequence[int]):
    self._starts = tuple(starts)

  def __len__(self) -> int:
    return sys.maxsize

  def __getitem__(self, step: int) -> tuple[int, int]:
    k = bisect.bisect_right(self._starts, step) - 1
    return k, step - self._starts[k]


def batches(
  buckets: np.ndarray,
  sources: np.ndarray,
  phases: Sequence[Phase],
  *,
  batch_size: int,
  seed: int,
) -> grain.MapDataset:
  """Endless global batches by step: int64 [batch_size, 2], (list index, source index) per slot.

  Args:
    buckets: int [N] each list's bucket (`Split.buckets`).
    sources: int [N] each list's label sources as bits (`Split.label_sources`).
    phases: the mixtures, the first starting at step 0, starts increasing.
    batch_size: B, global.
    seed: the shuffles' seed; the same seed gives the same batches on every run and host.

  Raises:
    ValueError: a phase has no list to serve (`cells` empty: its buckets have no list with a
      label from its sources), or the starts are not 0, then increasing.
  """
  starts = [int(p.start) for p in phases]
  if not starts or starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:])):
    raise ValueError(f"phase starts {starts}: the first 0, then increasing")
  per_phase = []
  for i, phase in enumerate(phases):
    phase_cells = cells(buckets, sources, phase.weights)
    if not phase_cells:
      raise ValueError(
        f"the mixture from step {phase.start} trains no list: none of its buckets has a list "
        "with a label from its sources"
      )
    per_phase.append(_phase_batches(phase_cells, batch_size, seed, i))
  return grain.MapDataset.select_from_datasets(per_phase, _PhaseOfStep(starts))
