"""Ranking losses: `fn(scores, labels, *, where=None, weights=None, reduce_fn=jnp.mean)`.

Every loss takes `[..., list_size]` scores and labels; leading axes are batch
axes. `where` (bool) marks valid items: masked items never change the value or
the gradient, and a fully masked list contributes 0 loss and 0 gradient.
`weights` are per item (the hook for inverse-propensity weighting).
`reduce_fn=None` returns the unreduced terms: per list for listwise losses,
per item for pointwise losses, and per pair (flattened to `[..., n * n]`) for
pairwise losses, exactly as rax 0.4.0. With `jnp.mean` the mean is taken over
those terms (valid lists, valid items, or valid pairs, as rax), and it is 0
when none is valid.

A config chooses a loss by name with its options beside it (`get_loss`): `config.loss =
{"name": "lambda", "lambdaweight": "ndcg2", "topn": 10}`. A new loss is a function of this
signature registered in `LOSSES` (`rankjax.registry.register`); its keyword-only parameters after
`reduce_fn` are its options.

Where rax 0.4.0 has the same loss, the same inputs give rax's value.

>>> scores = jnp.array([[2., 1., 3.], [1., 0.5, -9.]])
>>> labels = jnp.array([[1., 0., 0.], [0., 1., 1.]])
>>> where = jnp.array([[True, True, True], [True, True, False]])
>>> round(float(get_loss("softmax")(scores, labels, where=where)), 4)
1.1908
"""

import functools
import inspect
from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp

from rankjax import registry
from rankjax.ranking import lambdaweights
from rankjax.ranking import utils as ru
from rankjax.ranking.types import Array, LambdaweightFn, LossFn, ReduceFn


def _prepare(scores, labels, where, weights):
  """Valid mask, and inputs zeroed outside it so masked values cannot leak."""
  where = ru.valid_mask(scores, where)
  scores = jnp.where(where, scores, 0.0)
  labels = jnp.where(where, labels, 0.0)
  if weights is not None:
    weights = jnp.where(where, weights, 0.0)
  return scores, labels, where, weights


def softmax_loss(
  scores: Array,
  labels: Array,
  *,
  where: Optional[Array] = None,
  weights: Optional[Array] = None,
  reduce_fn: Optional[ReduceFn] = jnp.mean,
) -> Array:
  r"""Listwise softmax cross-entropy on graded labels (ListNet / rax `softmax_loss`).

  .. math::
      \ell(s, y) = -\sum_i w_i y_i \log \frac{e^{s_i}}{\sum_{j\ \mathrm{valid}} e^{s_j}}

  Labels are not normalized (as rax); the sum of the label mass sets the scale.

  Args:
    scores: `[..., list_size]` item scores.
    labels: `[..., list_size]` graded labels (>= 0).
    where: optional `[..., list_size]` bool mask of valid items.
    weights: optional `[..., list_size]` per-item weights.
    reduce_fn: reduction over lists with a valid item; None gives `[...]`.

  Returns:
    The reduced loss, or per-list losses of shape `[...]`.

  >>> softmax_loss(jnp.array([2., 1., 3.]), jnp.array([1., 0., 0.]))
  Array(1.4076059, dtype=float32)
  """
  scores, labels, where, weights = _prepare(scores, labels, where, weights)
  if weights is not None:
    labels = labels * weights
  loss = -jnp.sum(labels * ru.masked_log_softmax(scores, where), axis=-1)
  return ru.safe_reduce(loss, jnp.any(where, axis=-1), reduce_fn)


def listmle_loss(
  scores: Array,
  labels: Array,
  *,
  where: Optional[Array] = None,
  weights: Optional[Array] = None,
  reduce_fn: Optional[ReduceFn] = jnp.mean,
) -> Array:
  r"""ListMLE: negative Plackett-Luce log-likelihood of the label ordering.

  .. math::
      \ell(s, y) = -\sum_i w_{\pi_i} \Big(s_{\pi_i} - \log \sum_{k \ge i} e^{s_{\pi_k}}\Big)

  where :math:`\pi` sorts the valid items by label descending; equal labels
  keep their list order (deterministic, as rax without a `key`).

  Args:
    scores: `[..., list_size]` item scores.
    labels: `[..., list_size]` graded labels.
    where: optional `[..., list_size]` bool mask of valid items.
    weights: optional `[..., list_size]` per-item weights on the terms.
    reduce_fn: reduction over lists with a valid item; None gives `[...]`.

  Returns:
    The reduced loss, or per-list losses of shape `[...]`.

  >>> listmle_loss(jnp.array([2., 1., 3.]), jnp.array([1., 0., 2.]))
  Array(0.7208674, dtype=float32)
  """
  scores, labels, where, weights = _prepare(scores, labels, where, weights)
  if weights is None:
    weights = jnp.ones_like(scores)
  s, w, valid = ru.sort_by(labels, [scores, weights, where], where)
  n = scores.shape[-1]
  later = jnp.arange(n)[None, :] >= jnp.arange(n)[:, None]  # [i, k]: k >= i.
  lse = ru.masked_logsumexp(
    jnp.broadcast_to(s[..., None, :], s.shape + (n,)), later & valid[..., None, :]
  )
  loss = -jnp.sum(jnp.where(valid, w * (s - lse), 0.0), axis=-1)
  return ru.safe_reduce(loss, jnp.any(where, axis=-1), reduce_fn)


def _pairwise_loss(scores, labels, pair_loss_fn, where, weights, reduce_fn, lambdaweight_fn=None):
  """Sums `pair_loss_fn(s_i - s_j)` over valid pairs with `y_i > y_j`, like rax."""
  scores, labels, where, weights = _prepare(scores, labels, where, weights)
  valid = ru.pairs(labels, jnp.subtract) > 0
  valid &= ru.pairs(where, jnp.logical_and)
  loss = pair_loss_fn(ru.pairs(scores, jnp.subtract))
  if weights is not None:
    loss *= weights[..., :, None]
  if lambdaweight_fn is not None:
    loss *= jax.lax.stop_gradient(lambdaweight_fn(scores, labels, where=where, weights=weights))
  return ru.safe_reduce(ru.flatten_pairs(loss), ru.flatten_pairs(valid), reduce_fn)


def _logistic(d):
  return jax.nn.relu(-d) + jnp.log1p(jnp.exp(-jnp.abs(d)))


def _hinge(d):
  return jax.nn.relu(1.0 - d)


def pairwise_logistic_loss(
  scores: Array,
  labels: Array,
  *,
  where: Optional[Array] = None,
  weights: Optional[Array] = None,
  reduce_fn: Optional[ReduceFn] = jnp.mean,
) -> Array:
  r"""Pairwise logistic loss (RankNet).

  .. math::
      \ell(s, y) = \sum_{i,j} \mathbb{1}[y_i > y_j]\, w_i \log(1 + e^{-(s_i - s_j)})

  Args:
    scores: `[..., list_size]` item scores.
    labels: `[..., list_size]` graded labels.
    where: optional `[..., list_size]` bool mask of valid items.
    weights: optional `[..., list_size]` weights; pair `(i, j)` gets `w_i`.
    reduce_fn: reduction over valid pairs; None gives `[..., list_size ** 2]`.

  Returns:
    The reduced loss, or per-pair losses (0 for invalid pairs).

  >>> pairwise_logistic_loss(jnp.array([2., 1., 3.]), jnp.array([1., 0., 2.]))
  Array(0.25115046, dtype=float32)
  """
  return _pairwise_loss(scores, labels, _logistic, where, weights, reduce_fn)


def pairwise_hinge_loss(
  scores: Array,
  labels: Array,
  *,
  where: Optional[Array] = None,
  weights: Optional[Array] = None,
  reduce_fn: Optional[ReduceFn] = jnp.mean,
) -> Array:
  r"""Pairwise hinge loss.

  .. math::
      \ell(s, y) = \sum_{i,j} \mathbb{1}[y_i > y_j]\, w_i \max(0, 1 - (s_i - s_j))

  Args:
    scores: `[..., list_size]` item scores.
    labels: `[..., list_size]` graded labels.
    where: optional `[..., list_size]` bool mask of valid items.
    weights: optional `[..., list_size]` weights; pair `(i, j)` gets `w_i`.
    reduce_fn: reduction over valid pairs; None gives `[..., list_size ** 2]`.

  Returns:
    The reduced loss, or per-pair losses (0 for invalid pairs).

  >>> pairwise_hinge_loss(jnp.array([2., 1.5, 3.]), jnp.array([1., 0., 2.]))
  Array(0.16666667, dtype=float32)
  """
  return _pairwise_loss(scores, labels, _hinge, where, weights, reduce_fn)


def pointwise_sigmoid_loss(
  scores: Array,
  labels: Array,
  *,
  where: Optional[Array] = None,
  weights: Optional[Array] = None,
  reduce_fn: Optional[ReduceFn] = jnp.mean,
) -> Array:
  r"""Pointwise sigmoid cross-entropy with soft labels (clipped to [0, 1]).

  .. math::
      \ell(s, y) = \sum_i w_i \big(-y_i \log \sigma(s_i) - (1 - y_i) \log(1 - \sigma(s_i))\big)

  Args:
    scores: `[..., list_size]` logits.
    labels: `[..., list_size]` click or relevance probabilities in [0, 1].
    where: optional `[..., list_size]` bool mask of valid items.
    weights: optional `[..., list_size]` per-item weights.
    reduce_fn: reduction over valid items; None gives `[..., list_size]`.

  Returns:
    The reduced loss, or per-item losses (0 for invalid items).

  >>> pointwise_sigmoid_loss(jnp.array([0., 2.]), jnp.array([0.5, 1.]))
  Array(0.41003758, dtype=float32)
  """
  scores, labels, where, weights = _prepare(scores, labels, where, weights)
  labels = jnp.clip(labels, 0.0, 1.0)
  loss = jax.nn.relu(scores) - scores * labels + jnp.log1p(jnp.exp(-jnp.abs(scores)))
  if weights is not None:
    loss *= weights
  return ru.safe_reduce(loss, where, reduce_fn)


def pointwise_mse_loss(
  scores: Array,
  labels: Array,
  *,
  where: Optional[Array] = None,
  weights: Optional[Array] = None,
  reduce_fn: Optional[ReduceFn] = jnp.mean,
) -> Array:
  r"""Pointwise squared error :math:`\sum_i w_i (s_i - y_i)^2`.

  Args:
    scores: `[..., list_size]` predictions.
    labels: `[..., list_size]` targets.
    where: optional `[..., list_size]` bool mask of valid items.
    weights: optional `[..., list_size]` per-item weights.
    reduce_fn: reduction over valid items; None gives `[..., list_size]`.

  Returns:
    The reduced loss, or per-item losses (0 for invalid items).

  >>> pointwise_mse_loss(jnp.array([1., 2.]), jnp.array([0., 4.]))
  Array(2.5, dtype=float32)
  """
  scores, labels, where, weights = _prepare(scores, labels, where, weights)
  loss = jnp.square(scores - labels)
  if weights is not None:
    loss *= weights
  return ru.safe_reduce(loss, where, reduce_fn)


def approx_ndcg_loss(
  scores: Array,
  labels: Array,
  *,
  where: Optional[Array] = None,
  weights: Optional[Array] = None,
  reduce_fn: Optional[ReduceFn] = jnp.mean,
  temperature: float = 1.0,
  gain_fn: Callable[[Array], Array] = ru.exp2_gain,
) -> Array:
  r"""ApproxNDCG (Qin et al. 2010): minus NDCG with smooth ranks.

  .. math::
      \hat r_i = 1 + \sum_{j \ne i} \sigma\Big(\frac{s_j - s_i}{T}\Big), \qquad
      \ell(s, y) = -\frac{1}{\mathrm{IDCG}(y)} \sum_i \frac{w_i\, g(y_i)}{\log_2(1 + \hat r_i)}

  The ideal DCG uses exact ranks; a list without gain has IDCG 1 (loss 0), as
  rax's `approx_t12n(ndcg_metric)`.

  Args:
    scores: `[..., list_size]` item scores.
    labels: `[..., list_size]` graded labels.
    where: optional `[..., list_size]` bool mask of valid items.
    weights: optional `[..., list_size]` per-item weights on the gains.
    reduce_fn: reduction over lists with a valid item; None gives `[...]`.
    temperature: `T`, the sigmoid's width; smaller is closer to exact ranks.
    gain_fn: maps labels to gains.

  Returns:
    The reduced loss, or per-list losses of shape `[...]`.

  >>> approx_ndcg_loss(jnp.array([-1., 1., 0.]), jnp.array([0., 0., 1.]))
  Array(-0.63092977, dtype=float32)
  """
  scores, labels, where, weights = _prepare(scores, labels, where, weights)
  gains = gain_fn(labels)
  if weights is not None:
    gains *= weights
  n = scores.shape[-1]
  others = ru.pairs(where, jnp.logical_and) & ~jnp.eye(n, dtype=bool)
  steps = jax.nn.sigmoid(ru.pairs(scores, lambda si, sj: (sj - si) / temperature))
  approx_ranks = 1.0 + jnp.sum(jnp.where(others, steps, 0.0), axis=-1)
  approx_dcg = jnp.sum(jnp.where(where, gains * ru.log2_discount(approx_ranks), 0.0), axis=-1)
  ideal = ru.dcg(gains, gains, where, None)
  loss = -approx_dcg / jnp.where(ideal == 0.0, 1.0, ideal)
  return ru.safe_reduce(loss, jnp.any(where, axis=-1), reduce_fn)


def lambda_loss(
  scores: Array,
  labels: Array,
  *,
  where: Optional[Array] = None,
  weights: Optional[Array] = None,
  reduce_fn: Optional[ReduceFn] = jnp.mean,
  lambdaweight: str | LambdaweightFn = "lambdarank",
  topn: Optional[int] = None,
  gain_fn: Callable[[Array], Array] = ru.exp2_gain,
) -> Array:
  r"""Pairwise logistic loss weighted by NDCG lambda weights.

  .. math::
      \ell(s, y) = \sum_{i,j} \mathbb{1}[y_i > y_j]\, w_i\, \lambda_{ij} \log(1 + e^{-(s_i - s_j)})

  :math:`\lambda_{ij}` are the lambda weights named by `lambdaweight` in
  `rankjax.ranking.lambdaweights.LAMBDAWEIGHTS` (no gradient): "lambdarank" (Burges 2006),
  :math:`n\,|\Delta \mathrm{NDCG}_{ij}|`, or "ndcg2" (LambdaLoss NDCG-Loss2, Wang et al.
  2018). Equals rax's `pairwise_logistic_loss` with `dcg_lambdaweight` / `dcg2_lambdaweight`
  and `normalize=True`.

  Args:
    scores: `[..., list_size]` item scores.
    labels: `[..., list_size]` graded labels.
    where: optional `[..., list_size]` bool mask of valid items.
    weights: optional `[..., list_size]` per-item weights.
    reduce_fn: reduction over valid pairs; None gives `[..., list_size ** 2]`.
    lambdaweight: a name in `LAMBDAWEIGHTS` ("lambdarank", "ndcg2"), or a function of their
      signature.
    topn: optional NDCG cutoff of the lambda weights.
    gain_fn: maps labels to gains.

  Returns:
    The reduced loss, or per-pair losses (0 for invalid pairs).

  >>> lambda_loss(jnp.array([2., 1., 3.]), jnp.array([1., 0., 2.]))
  Array(0.12741596, dtype=float32)
  """
  if isinstance(lambdaweight, str):
    lambdaweight = registry.lookup(lambdaweights.LAMBDAWEIGHTS, lambdaweight, "lambdaweight")
  lambdaweight_fn = functools.partial(lambdaweight, topn=topn, gain_fn=gain_fn)
  return _pairwise_loss(scores, labels, _logistic, where, weights, reduce_fn, lambdaweight_fn)


LOSSES: dict[str, LossFn] = {
  "softmax": softmax_loss,
  "listmle": listmle_loss,
  "pairwise_logistic": pairwise_logistic_loss,
  "pairwise_hinge": pairwise_hinge_loss,
  "sigmoid": pointwise_sigmoid_loss,
  "mse": pointwise_mse_loss,
  "approx_ndcg": approx_ndcg_loss,
  "lambda": lambda_loss,
}


# Keyword arguments every caller passes per call: not options a config binds.
_CALL_ARGUMENTS = ("where", "weights", "reduce_fn")


def loss_options(loss: LossFn) -> dict[str, inspect.Parameter]:
  """A loss's options: its keyword-only parameters other than where, weights and reduce_fn.

  >>> list(loss_options(lambda_loss)), list(loss_options(softmax_loss))
  (['lambdaweight', 'topn', 'gain_fn'], [])
  """
  return {
    name: p
    for name, p in inspect.signature(loss).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in _CALL_ARGUMENTS
  }


def get_loss(spec: str | Mapping[str, Any]) -> LossFn:
  """The loss `spec` names in `LOSSES`, with its options bound.

  `spec` is a name, or a mapping (a dict, a ConfigDict such as `config.loss`) of "name" and
  options of that loss (`loss_options`), e.g. `{"name": "lambda", "lambdaweight": "ndcg2",
  "topn": 10}`. An unknown name raises `rankjax.registry.UnknownName`; an option the loss does
  not take is a ValueError naming the loss's options.

  >>> get_loss("softmax") is softmax_loss
  True
  >>> get_loss({"name": "approx_ndcg", "temperature": 0.1}).keywords
  {'temperature': 0.1}
  >>> get_loss({"name": "softmax", "topn": 10})
  Traceback (most recent call last):
  ValueError: loss 'softmax' has no option(s) ['topn']; its options: none
  """
  if isinstance(spec, str):
    name, options = spec, {}
  elif hasattr(spec, "keys"):
    options = {key: spec[key] for key in spec.keys()}
    if "name" not in options:
      raise ValueError(
        f"a loss spec needs a 'name' (one of {', '.join(sorted(LOSSES))}) "
        f"beside its options; got {options}"
      )
    name = options.pop("name")
  else:
    raise TypeError(f"a loss spec is a name or a mapping with a 'name'; got {spec!r}")
  loss = registry.lookup(LOSSES, name, "loss")
  known = loss_options(loss)
  unknown = sorted(set(options) - set(known))
  if unknown:
    raise ValueError(
      f"loss {name!r} has no option(s) {unknown}; its options: {', '.join(known) or 'none'}"
    )
  return functools.partial(loss, **options) if options else loss
