"""A data schedule's mixtures by step, apart from the grain stream that draws them
(`rankjax.data.mixture`), so the objectives that declare them import without the data stack.

A `Phase` is (start step, weights f32[ROWS, len(SOURCES)]): rows the buckets high, medium, low
and, last, lists without a bucket; columns the label sources (`rankjax.data.schema`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rankjax.data import schema

ROWS = len(schema.BUCKETS) + 1  # the buckets, then lists without one (bucket -1: the last row)


class Phase(NamedTuple):
  """The mixture from step `start` until the next phase's start (the last: for ever)."""

  start: int
  weights: np.ndarray  # f32[ROWS, len(schema.SOURCES)]
