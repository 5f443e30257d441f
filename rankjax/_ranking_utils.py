"""Masking, sorting, ranks, gains and discounts shared by losses and metrics.

All functions act on the last axis of `[..., list_size]` arrays; leading axes
are batch axes. `where` is a boolean mask of valid items (None: all valid).
Masked computations are kept finite (no -inf sentinels), so gradients through
them are exactly 0 rather than NaN.
"""

from typing import Optional

import jax
import jax.numpy as jnp

from rankjax.types import Array, ReduceFn


def valid_mask(x: Array, where: Optional[Array]) -> Array:
  """`where` broadcast to `x.shape` as bool, or all True when None."""
  if where is None:
    return jnp.ones(x.shape, dtype=bool)
  return jnp.broadcast_to(jnp.asarray(where, dtype=bool), x.shape)


def safe_reduce(values: Array, where: Optional[Array], reduce_fn: Optional[ReduceFn]) -> Array:
  """Reduces `values` over the entries where `where` holds.

  `reduce_fn=None` returns `values` with invalid entries set to 0. `jnp.mean`
  is computed as `sum / max(count, 1)`, so it is 0 (value and gradient) when
  nothing is valid, like rax. Any other `reduce_fn` is called as
  `reduce_fn(values, where=where)` on values zeroed outside `where`.

  >>> safe_reduce(jnp.array([1., 3., 8.]), jnp.array([True, True, False]), jnp.mean)
  Array(2., dtype=float32)
  >>> safe_reduce(jnp.array([1., 3.]), jnp.array([False, False]), jnp.mean)
  Array(0., dtype=float32)
  """
  where = valid_mask(values, where)
  values = jnp.where(where, values, jnp.zeros_like(values))
  if reduce_fn is None:
    return values
  if reduce_fn is jnp.mean:
    return jnp.sum(values) / jnp.maximum(jnp.sum(where), 1).astype(values.dtype)
  return reduce_fn(values, where=where)


def pairs(a: Array, op) -> Array:
  """`op(a[..., i], a[..., j])` for all pairs: `[..., n] -> [..., n, n]`."""
  return op(a[..., :, None], a[..., None, :])


def flatten_pairs(a: Array) -> Array:
  """`[..., n, n] -> [..., n * n]`, the layout of rax's unreduced pairwise terms."""
  return a.reshape(a.shape[:-2] + (a.shape[-2] * a.shape[-1],))


def masked_logsumexp(x: Array, where: Array, axis: int = -1) -> Array:
  """`log(sum(exp(x), where=where))` along `axis`; 0 where nothing is valid.

  Finite for any finite `x` (scores of +-1e4 included), with zero gradient for
  invalid entries.
  """
  any_valid = jnp.any(where, axis=axis, keepdims=True)
  x_max = jnp.max(jnp.where(where, x, -jnp.inf), axis=axis, keepdims=True)
  x_max = jax.lax.stop_gradient(jnp.where(any_valid, x_max, 0.0))
  shifted = jnp.where(where, x - x_max, 0.0)
  total = jnp.sum(jnp.where(where, jnp.exp(shifted), 0.0), axis=axis, keepdims=True)
  total = jnp.where(any_valid, total, 1.0)
  return jnp.squeeze(jnp.log(total) + x_max, axis=axis)


def masked_log_softmax(x: Array, where: Array) -> Array:
  """Log-softmax over the valid items of the last axis; 0 for invalid items."""
  lse = masked_logsumexp(x, where)[..., None]
  return jnp.where(where, x - lse, 0.0)


def sort_by(keys: Array, arrays: list[Array], where: Array) -> list[Array]:
  """Sorts `arrays` along the last axis by `keys` descending.

  Valid items come first; ties keep their original (index) order, so the
  result is deterministic.
  """
  index = jnp.broadcast_to(jnp.arange(keys.shape[-1]), keys.shape)
  # Masked keys are replaced so that their value cannot reorder valid items.
  keys = jnp.where(where, keys, 0.0)
  out = jax.lax.sort((~where, -keys, index, *arrays), dimension=keys.ndim - 1, num_keys=3)
  return list(out[3:])


def ranks(scores: Array, where: Optional[Array] = None) -> Array:
  """1-based ranks by `scores` descending; invalid items last; ties by index.

  The tie rule (stable by list position) is rax's. Ranks carry no gradient.

  >>> ranks(jnp.array([0.5, 2., 0.5, 1.]))
  Array([3, 1, 4, 2], dtype=int32)
  >>> ranks(jnp.array([0.5, 2., 9., 1.]), jnp.array([True, True, False, True]))
  Array([3, 1, 4, 2], dtype=int32)
  """
  scores = jax.lax.stop_gradient(scores)
  where = valid_mask(scores, where)
  n = scores.shape[-1]
  index = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), scores.shape)
  (sorted_index,) = sort_by(scores, [index], where)
  # Inverting the permutation: position k holds item sorted_index[k].
  _, inverse = jax.lax.sort((sorted_index, index), dimension=scores.ndim - 1, num_keys=1)
  return inverse + 1


def exp2_gain(labels: Array) -> Array:
  r"""Exponential gain :math:`2^{\max(y, 0)} - 1` (rax, LightGBM, Burges' NDCG).

  Negative grades (TREC's -2 for spam) get zero gain, as in trec_eval.

  >>> exp2_gain(jnp.array([-2., 0., 1., 3.]))
  Array([0., 0., 1., 7.], dtype=float32)
  """
  return jnp.exp2(jnp.maximum(labels, 0.0)) - 1.0


def linear_gain(labels: Array) -> Array:
  r"""Linear gain :math:`\max(y, 0)`, trec_eval's NDCG gain.

  >>> linear_gain(jnp.array([-2., 0., 1., 3.]))
  Array([0., 0., 1., 3.], dtype=float32)
  """
  return jnp.maximum(labels, 0.0)


def log2_discount(ranks_: Array) -> Array:
  r"""Position discount :math:`1 / \log_2(r + 1)` for 1-based rank :math:`r`."""
  return 1.0 / jnp.log2(ranks_ + 1.0)


def dcg(gains: Array, ranks_: Array, where: Array, topn: Optional[int]) -> Array:
  """Per-list DCG of `gains` placed at `ranks_`, cut off after `topn`."""
  keep = where if topn is None else where & (ranks_ <= topn)
  return jnp.sum(jnp.where(keep, gains * log2_discount(ranks_), 0.0), axis=-1)


def ideal_dcg(gains: Array, where: Array, topn: Optional[int]) -> Array:
  """Per-list DCG of the ideal ordering (by `gains` descending)."""
  return dcg(gains, ranks(gains, where), where, topn)
