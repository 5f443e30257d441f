r"""Lambda weights of pairwise losses: `fn(scores, labels, *, where=None, weights=None, topn=None,
gain_fn=exp2_gain) -> [..., list_size, list_size]`, as rax's `lambdaweights` with `normalize=True`.

Entry `[..., i, j]` scales the loss of the pair (i, j) by how much NDCG would change if i and j
swapped places in the current ranking. With gains :math:`G = w\,g(y) / \mathrm{IDCG@topn}(y)`,
discount :math:`D(r) = 1 / \log_2(1 + r)`, current ranks :math:`r` (by `scores`, no gradient) and
:math:`n` the (padded) list size:

  "lambdarank" (Burges 2006)       n |G_i - G_j| |D(r_i) - D(r_j)|, D(r) = 0 beyond `topn`
  "ndcg2" (LambdaLoss NDCG-Loss2,  n |G_i - G_j| |D(|r_i - r_j|) - D(|r_i - r_j| + 1)|, pairs
  Wang et al. 2018)                reaching beyond `topn` scaled by 1 / (1 - D(max(r_i, r_j)))
                                   (Jagerman et al.)

The factor n keeps the magnitude of a mean over pairs (as rax). Pairs with an invalid item get 0.
`rankjax.ranking.losses.lambda_loss` chooses one by name in `LAMBDAWEIGHTS`; a new one is a
function of this signature registered there with `rankjax.registry.register`.

>>> scores, labels = jnp.array([2., 1., 3.]), jnp.array([1., 0., 2.])
>>> np.asarray(LAMBDAWEIGHTS["lambdarank"](scores, labels), np.float64).round(2).tolist()
[[0.0, 0.11, 0.61], [0.11, 0.0, 1.24], [0.61, 1.24, 0.0]]
>>> np.asarray(LAMBDAWEIGHTS["ndcg2"](scores, labels), np.float64).round(2).tolist()
[[0.0, 0.3, 0.61], [0.3, 0.0, 0.32], [0.61, 0.32, 0.0]]
"""

from typing import Callable, Optional

import jax.numpy as jnp

from rankjax import registry
from rankjax.ranking import utils as ru
from rankjax.ranking.types import Array, LambdaweightFn

LAMBDAWEIGHTS: dict[str, LambdaweightFn] = {}


def _prepare(scores, labels, where, weights):
  """The valid mask, and labels and weights zeroed outside it so masked values cannot leak."""
  where = ru.valid_mask(scores, where)
  return (
    where,
    jnp.where(where, labels, 0.0),
    (None if weights is None else jnp.where(where, weights, 0.0)),
  )


def _gain_diffs(labels, where, weights, topn, gain_fn):
  """|G_i - G_j|: the gains' pairwise differences, normalized by the ideal DCG@topn."""
  gains = gain_fn(labels)
  if weights is not None:
    gains *= weights
  ideal = ru.dcg(gains, gains, where, topn)
  gains /= jnp.where(ideal == 0.0, 1.0, ideal)[..., None]
  return jnp.abs(ru.pairs(gains, jnp.subtract))


def _scale(pair_discounts, gain_diffs, where):
  pair_discounts = jnp.where(ru.pairs(where, jnp.logical_and), pair_discounts, 0.0)
  # rax scales by the (padded) list size so that mean reduction keeps the magnitude.
  return pair_discounts * gain_diffs * where.shape[-1]


@registry.register(LAMBDAWEIGHTS, "lambdarank")
def dcg_lambdaweight(
  scores: Array,
  labels: Array,
  *,
  where: Optional[Array] = None,
  weights: Optional[Array] = None,
  topn: Optional[int] = None,
  gain_fn: Callable[[Array], Array] = ru.exp2_gain,
) -> Array:
  r"""LambdaRank: :math:`n\,|G_i - G_j|\,|D(r_i) - D(r_j)|` (rax's `dcg_lambdaweight`).

  Args:
    scores: `[..., list_size]` item scores (they set the current ranks).
    labels: `[..., list_size]` graded labels.
    where: optional `[..., list_size]` bool mask of valid items.
    weights: optional `[..., list_size]` per-item weights on the gains.
    topn: optional NDCG cutoff: items ranked below it have discount 0.
    gain_fn: maps labels to gains.

  Returns:
    `[..., list_size, list_size]` weights, 0 on pairs with an invalid item.

  >>> weights = dcg_lambdaweight(jnp.array([1., 2.]), jnp.array([1., 0.]))
  >>> np.asarray(weights, np.float64).round(4).tolist()
  [[0.0, 0.7381], [0.7381, 0.0]]
  """
  where, labels, weights = _prepare(scores, labels, where, weights)
  r = ru.ranks(scores, where).astype(scores.dtype)
  gain_diffs = _gain_diffs(labels, where, weights, topn, gain_fn)
  discounts = ru.log2_discount(r)
  if topn is not None:
    discounts = jnp.where(r <= topn, discounts, 0.0)
  return _scale(jnp.abs(ru.pairs(discounts, jnp.subtract)), gain_diffs, where)


@registry.register(LAMBDAWEIGHTS, "ndcg2")
def dcg2_lambdaweight(
  scores: Array,
  labels: Array,
  *,
  where: Optional[Array] = None,
  weights: Optional[Array] = None,
  topn: Optional[int] = None,
  gain_fn: Callable[[Array], Array] = ru.exp2_gain,
) -> Array:
  r"""LambdaLoss NDCG-Loss2: :math:`n\,|G_i - G_j|\,|D(|r_i - r_j|) - D(|r_i - r_j| + 1)|`.

  With `topn`, a pair reaching beyond it is scaled by :math:`1 / (1 - D(\max(r_i, r_j)))`
  (Jagerman et al.), as rax's `dcg2_lambdaweight`.

  Args:
    scores: `[..., list_size]` item scores (they set the current ranks).
    labels: `[..., list_size]` graded labels.
    where: optional `[..., list_size]` bool mask of valid items.
    weights: optional `[..., list_size]` per-item weights on the gains.
    topn: optional NDCG cutoff of the correction.
    gain_fn: maps labels to gains.

  Returns:
    `[..., list_size, list_size]` weights, 0 on pairs with an invalid item.

  >>> weights = dcg2_lambdaweight(jnp.array([1., 2.]), jnp.array([1., 0.]))
  >>> np.asarray(weights, np.float64).round(4).tolist()
  [[0.0, 0.7381], [0.7381, 0.0]]
  """
  where, labels, weights = _prepare(scores, labels, where, weights)
  r = ru.ranks(scores, where).astype(scores.dtype)
  gain_diffs = _gain_diffs(labels, where, weights, topn, gain_fn)
  delta = jnp.abs(ru.pairs(r, jnp.subtract))
  safe_delta = jnp.maximum(delta, 1.0)
  pair_discounts = jnp.where(
    delta > 0, ru.log2_discount(safe_delta) - ru.log2_discount(safe_delta + 1.0), 0.0
  )
  if topn is not None:
    r_max = ru.pairs(r, jnp.maximum)
    correction = 1.0 / (1.0 - ru.log2_discount(jnp.maximum(r_max, 2.0)))
    pair_discounts *= jnp.where(r_max > topn, correction, 1.0)
  return _scale(pair_discounts, gain_diffs, where)
