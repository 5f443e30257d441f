"""Which split, train, validation or test, each query of a dataset goes to.

Splits are drawn over units, each unit wholly in one split: the query itself, or what the query
belongs to (its topic, so that no topic is in two splits). A unit's place comes from a hash of its
name, so it is the same across runs, machines and log orders:

- test: the units whose hash falls under `test_fraction` (`in_test_split`);
- validation: of the others, those whose hash falls in the next `validation_fraction`, and at
  least one when `validation_fraction` > 0 and two units or more are left for training (a small
  log still gets the validation split every shipped config evaluates and selects on);
- train: the rest.

`by_unit` assigns them; `labelled` instead takes the test and validation sets from the queries
with human labels. `rankjax data prepare --split-by` chooses among these, and
`rankjax.engine.data_source` splits a LETOR file's queries by `by_unit`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping

TRAIN, VALIDATION, TEST = "train", "validation", "test"


def unit_hash(unit: str) -> float:
  """A unit's place in [0, 1), from a hash of its name."""
  h = int.from_bytes(hashlib.blake2b(unit.encode(), digest_size=8).digest(), "little")
  return h / 2**64


def in_test_split(unit: str, fraction: float) -> bool:
  """Whether a unit is in the test split at `fraction`: stable across runs, machines and log
  orders."""
  return unit_hash(unit) < fraction


def validation_units(units: Collection[str], start: float, fraction: float) -> set[str]:
  """The units whose hash falls in [start, start + fraction), or else the one with the smallest
  hash at or above `start` (when fraction > 0 and at least two units are given, never all)."""
  if fraction <= 0 or len(units) < 2:
    return set()
  chosen = {u for u in units if unit_hash(u) < start + fraction}
  if not chosen:
    chosen = {min(units, key=unit_hash)}
  if len(chosen) == len(units):  # leave training one unit at least
    chosen.discard(max(chosen, key=unit_hash))
  return chosen


def by_unit(
  unit_of: Mapping[str, str], test_fraction: float, validation_fraction: float
) -> dict[str, str]:
  """Query -> split name, each query in the split of its unit (module docstring).

  >>> split = by_unit({f"q{i}": f"q{i}" for i in range(20)}, 0.2, 0.1)
  >>> sorted(set(split.values()))
  ['test', 'train', 'validation']
  >>> split == by_unit(dict(reversed({f"q{i}": f"q{i}" for i in range(20)}.items())), 0.2, 0.1)
  True
  """
  units = set(unit_of.values())
  rest = {u for u in units if not in_test_split(u, test_fraction)}
  validation = validation_units(rest, test_fraction, validation_fraction)
  place = {u: TEST if u not in rest else VALIDATION if u in validation else TRAIN for u in units}
  return {q: place[u] for q, u in unit_of.items()}


def labelled(
  queries: Collection[str], labelled_queries: Collection[str], validation_fraction: float
) -> dict[str, str]:
  """Query -> split name: the labelled queries are the test set, less the validation queries
  drawn from them (the only ones with human labels to select on); the others train."""
  held = set(labelled_queries)
  validation = validation_units(held, 0.0, validation_fraction)
  return {q: VALIDATION if q in validation else TEST if q in held else TRAIN for q in queries}
