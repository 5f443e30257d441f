"""`logged_order`: the ranking users were shown, as a score: how far a learned ranker is from it."""

from __future__ import annotations

import numpy as np

from rankjax import registry
from rankjax.study.baselines import base


def logged_order_scores(train_lists, eval_lists, seed) -> np.ndarray:
  """Higher for a higher shown rank (`position` 1 first); items shown at the same rank keep their
  stored order, and items of unknown position (0) come after every shown one, in stored order.

  >>> scores = logged_order_scores([], [{"position": np.array([2, 0, 1, 2])}], 0)
  >>> np.argsort(-scores[0]).tolist()  # shown at 1, the first shown at 2, the second, unknown
  [2, 0, 3, 1]
  """
  del train_lists, seed  # nothing to fit; the same for every seed
  rows = []
  for lst in eval_lists:
    position = lst["position"].astype(np.float64)
    shown = np.where(position > 0, position, 1e6)
    rows.append(-(shown + np.arange(len(position)) / (len(position) + 1)))  # ties: stored order
  return base.padded(rows)


registry.register(base.BASELINES, "logged_order")(
  base.Baseline(logged_order_scores, {"model": "the logged order (shown rank)"})
)
