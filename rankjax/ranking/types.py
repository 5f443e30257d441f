"""Typing protocols shared by ranking losses and metrics.

Every loss and metric maps `[..., list_size]` arrays to a scalar (or, with
`reduce_fn=None`, to unreduced terms); lambda weights map them to per-pair weights. Code that
picks them by name (`rankjax.ranking.losses.get_loss`, `rankjax.ranking.metrics.get_metric`,
`rankjax.ranking.lambdaweights.LAMBDAWEIGHTS`) types against these.
"""

from typing import Callable, Optional, Protocol

import jax

Array = jax.Array
ReduceFn = Callable[..., Array]


class LossFn(Protocol):
  """`fn(scores, labels, *, where=None, weights=None, reduce_fn=jnp.mean)`."""

  def __call__(
    self,
    scores: Array,
    labels: Array,
    *,
    where: Optional[Array] = None,
    weights: Optional[Array] = None,
    reduce_fn: Optional[ReduceFn] = ...,
  ) -> Array: ...


class LambdaweightFn(Protocol):
  """`fn(scores, labels, *, where=None, weights=None, topn=None, gain_fn=...) -> [..., n, n]`."""

  def __call__(
    self,
    scores: Array,
    labels: Array,
    *,
    where: Optional[Array] = None,
    weights: Optional[Array] = None,
    topn: Optional[int] = None,
    gain_fn: Callable[[Array], Array] = ...,
  ) -> Array: ...


class MetricFn(Protocol):
  """`fn(scores, labels, *, where=None, weights=None, topn=None, reduce_fn=jnp.mean)`."""

  def __call__(
    self,
    scores: Array,
    labels: Array,
    *,
    where: Optional[Array] = None,
    weights: Optional[Array] = None,
    topn: Optional[int] = None,
    reduce_fn: Optional[ReduceFn] = ...,
  ) -> Array: ...
