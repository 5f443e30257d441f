"""LightGBM's LambdaMART on the features of a feature dataset, as study baselines.

`lgbm_human`, `lgbm_llm`: lambdarank on the human or LLM labels; `lgbm_click`: on the clicks;
`lgbm_click_unbiased`: LightGBM's position-debiased lambdarank (the shown `position` of each item
in its Dataset, LightGBM >= 4.1, which learns a bias factor per position) on the same clicks.
Items without a label from the source are left out of training (lists keep their labelled items;
a list with fewer than two is left out). LightGBM ranks integer grades, so a stored label that is
not a whole number is an error naming the list, except clicks: a click label is a click-through
rate in [0, 1] (`rankjax.data.aggregate`), trained as the grade ceil(4 * CTR) (0 never clicked,
1-4 by quarter of CTR), written in the report's variant list.
"""

from __future__ import annotations

import numpy as np

from rankjax import registry
from rankjax.study.baselines import base

CLICK_GRADES = 4
# LightGBM's defaults (lambdarank_position_bias_regularization 0 included) but for the seed.
PARAMS = {"objective": "lambdarank", "verbose": -1}
ROUNDS = 100


def _grades(labels: np.ndarray, source: str, qid: str) -> np.ndarray:
  if source == "click":
    if np.any((labels < 0) | (labels > 1)):
      raise ValueError(
        f"list {qid!r}: click labels outside [0, 1]: {labels[(labels < 0) | (labels > 1)]}"
      )
    return np.ceil(labels * CLICK_GRADES).astype(np.int32)
  if np.any(labels != np.round(labels)) or np.any(labels < 0):
    raise ValueError(
      f"list {qid!r}: {source} labels {labels.tolist()} are not whole grades >= 0, which "
      "LightGBM's lambdarank needs"
    )
  return labels.astype(np.int32)


def training_set(lists: list[dict], source: str, with_position: bool):
  """(features, grades, group sizes, positions) of the items labelled by `source`."""
  x, y, groups, positions = [], [], [], []
  for lst in lists:
    labels = lst[f"label_{source}"]
    keep = ~np.isnan(labels)
    if keep.sum() < 2:
      continue
    x.append(lst["features"][keep])
    y.append(_grades(labels[keep], source, lst["qid"]))
    groups.append(int(keep.sum()))
    positions.append(lst["position"][keep])
  if not groups:
    raise ValueError(f"no training list has two items labelled by {source!r}")
  return (
    np.concatenate(x),
    np.concatenate(y),
    groups,
    np.concatenate(positions) if with_position else None,
  )


def lambdamart(source: str, unbiased: bool = False):
  """The baseline's `score`: LambdaMART trained on `source` labels of the training lists."""

  def score(train_lists, eval_lists, seed) -> np.ndarray:
    import lightgbm  # pylint: disable=g-import-not-at-top

    if "features" not in eval_lists[0]:
      raise ValueError(
        f"LightGBM baselines need features; the dataset stores {sorted(eval_lists[0])}"
      )
    x, y, groups, positions = training_set(train_lists, source, unbiased)
    params = {**PARAMS, "seed": seed}
    data = lightgbm.Dataset(x, y, group=groups, position=positions)
    booster = lightgbm.train(params, data, num_boost_round=ROUNDS)
    return base.padded([booster.predict(lst["features"]) for lst in eval_lists])

  return score


for _name, _source, _unbiased in (
  ("lgbm_human", "human", False),
  ("lgbm_llm", "llm", False),
  ("lgbm_click", "click", False),
  ("lgbm_click_unbiased", "click", True),
):
  registry.register(base.BASELINES, _name)(
    base.Baseline(
      lambdamart(_source, _unbiased),
      {
        "model": "LightGBM lambdarank" + (" (position-debiased)" if _unbiased else ""),
        "source": _source,
        **({"labels": f"ceil({CLICK_GRADES} * CTR)"} if _source == "click" else {}),
      },
      needs="lightgbm",
      install="pip install 'rankjax[baselines]'",
    )
  )
