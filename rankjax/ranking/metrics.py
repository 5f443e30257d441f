"""Ranking metrics and their aggregation by query-frequency bucket.

Every metric is `fn(scores, labels, *, where=None, weights=None, topn=None,
reduce_fn=jnp.mean, no_relevant="exclude", ...)` on `[..., list_size]`
arrays; leading axes are batch axes. `where` (bool) marks valid items.

Conventions, shared by all metrics:

* Ranking: items are ranked by score, descending; equal scores keep their list
  order (the earlier item ranks higher), as rax. trec_eval breaks ties by
  docno, descending: order items that way to reproduce it.
* Gains: `gain_fn` maps labels to gains, `exp2_gain` (`2^y - 1`, rax and
  LightGBM) by default or `linear_gain` (`y`, trec_eval). Negative grades
  (TREC's -2 for spam) have zero gain, as in trec_eval.
* Binary metrics (MRR, precision) count an item as relevant when
  `label >= relevance_level` (default 1, trec_eval's default level).
* Lists with no relevant document (no valid item with `label > 0`, see
  `has_relevant`) have no meaningful NDCG/MRR/... . `no_relevant` (a name in
  `NO_RELEVANT`) decides: `"exclude"` (default) leaves them out of `reduce_fn` (and gives 0 when
  `reduce_fn=None`; mask those with `has_relevant`), `"zero"` counts them
  as 0 (rax, trec_eval's per-query value), `"one"` counts them as 1 (LightGBM).
  Lists without any valid item are always left out. A mean over nothing is 0.
* `weights` scale each item's contribution (its gain, hit or pair).

With `gain_fn=linear_gain`, `ndcg_metric`, `precision_metric` and `mrr_metric`
equal trec_eval's `ndcg_cut.k`, `P.k` and `recip_rank` on lists that hold every
judged document (tests/ranking/test_trec_eval_parity.py).

>>> scores = jnp.array([[2., 1., 3.], [1., 0.5, 1.5]])
>>> labels = jnp.array([[2., 0., 1.], [0., 0., 0.]])
>>> float(ndcg_metric(scores, labels))  # The second list has no relevant item.
0.7967076301574707
>>> get_metric("mrr")(scores, labels, reduce_fn=None, no_relevant="zero")
Array([1., 0.], dtype=float32)
"""

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from rankjax import registry
from rankjax.ranking import utils as ru
from rankjax.ranking.types import Array, MetricFn, ReduceFn

exp2_gain = ru.exp2_gain
linear_gain = ru.linear_gain

GainFn = Callable[[Array], Array]
BUCKETS = ("high", "medium", "low", "all")


def has_relevant(labels: Array, where: Optional[Array] = None) -> Array:
  """Whether each list has a valid item with a positive label: `bool[...]`.

  >>> has_relevant(jnp.array([[0., 2.], [0., 0.], [0., 1.]]),
  ...              jnp.array([[True, True], [True, True], [True, False]]))
  Array([ True, False, False], dtype=bool)
  """
  return jnp.any(ru.valid_mask(labels, where) & (labels > 0), axis=-1)


def _prepare(scores, labels, where, weights):
  where = ru.valid_mask(scores, where)
  scores = jnp.where(where, scores, 0.0)
  labels = jnp.where(where, labels, 0.0)
  weights = jnp.ones_like(scores) if weights is None else jnp.where(where, weights, 0.0)
  return scores, labels, where, weights


def _retrieved(ranks, where, topn):
  return where if topn is None else where & (ranks <= topn)


# The conventions for lists without a relevant item, by `no_relevant` name (module docstring):
# (per-list values, whether each list has a relevant item, which lists count) -> (values, which
# lists count), each entered with `registry.register` where it is defined.
NO_RELEVANT: dict[str, Callable[[Array, Array, Array], tuple[Array, Array]]] = {}


@registry.register(NO_RELEVANT, "exclude")
def _exclude(values: Array, relevant: Array, list_valid: Array) -> tuple[Array, Array]:
  """Leaves the lists out of the reduction."""
  return values, list_valid & relevant


@registry.register(NO_RELEVANT, "zero")
def _zero(values: Array, relevant: Array, list_valid: Array) -> tuple[Array, Array]:
  """Counts the lists as 0 (rax, trec_eval)."""
  return jnp.where(relevant, values, 0.0), list_valid


@registry.register(NO_RELEVANT, "one")
def _one(values: Array, relevant: Array, list_valid: Array) -> tuple[Array, Array]:
  """Counts the lists as 1 (LightGBM)."""
  return jnp.where(relevant, values, 1.0), list_valid


def _finish(values, labels, where, no_relevant, reduce_fn):
  """Applies the no-relevant-document convention, then `reduce_fn` over lists."""
  convention = registry.lookup(NO_RELEVANT, no_relevant, "no_relevant convention")
  values, list_valid = convention(values, has_relevant(labels, where), jnp.any(where, axis=-1))
  return ru.safe_reduce(values, list_valid, reduce_fn)


def dcg_metric(
  scores: Array,
  labels: Array,
  *,
  where: Optional[Array] = None,
  weights: Optional[Array] = None,
  topn: Optional[int] = None,
  reduce_fn: Optional[ReduceFn] = jnp.mean,
  no_relevant: str = "exclude",
  gain_fn: GainFn = exp2_gain,
) -> Array:
  r"""Discounted cumulative gain.

  .. math::
      \mathrm{DCG@k}(s, y) = \sum_{i:\ r_i \le k} \frac{w_i\, g(y_i)}{\log_2(1 + r_i)}

  with :math:`r_i` the 1-based rank of item :math:`i` by score.

  Args:
    scores: `[..., list_size]` item scores.
    labels: `[..., list_size]` graded labels.
    where: optional `[..., list_size]` bool mask of valid items.
    weights: optional `[..., list_size]` per-item weights on the gains.
    topn: cutoff `k`; None ranks the whole list.
    reduce_fn: reduction over lists; None gives per-list values `[...]`.
    no_relevant: "exclude", "zero" or "one" (module docstring).
    gain_fn: maps labels to gains.

  Returns:
    The reduced metric, or per-list values.

  >>> dcg_metric(jnp.array([2., 1., 3.]), jnp.array([2., 0., 1.]))
  Array(2.8927894, dtype=float32)
  """
  scores, labels, where, weights = _prepare(scores, labels, where, weights)
  values = ru.dcg(scores, gain_fn(labels) * weights, where, topn)
  return _finish(values, labels, where, no_relevant, reduce_fn)


def ndcg_metric(
  scores: Array,
  labels: Array,
  *,
  where: Optional[Array] = None,
  weights: Optional[Array] = None,
  topn: Optional[int] = None,
  reduce_fn: Optional[ReduceFn] = jnp.mean,
  no_relevant: str = "exclude",
  gain_fn: GainFn = exp2_gain,
) -> Array:
  r"""Normalized discounted cumulative gain.

  .. math::
      \mathrm{NDCG@k}(s, y) = \mathrm{DCG@k}(s, y) / \mathrm{DCG@k}(y, y)

  The ideal DCG ranks the valid items by weighted gain; a list whose ideal DCG
  is 0 has NDCG 0 before the `no_relevant` convention applies.

  Args:
    scores: `[..., list_size]` item scores.
    labels: `[..., list_size]` graded labels.
    where: optional `[..., list_size]` bool mask of valid items.
    weights: optional `[..., list_size]` per-item weights on the gains.
    topn: cutoff `k`; None ranks the whole list.
    reduce_fn: reduction over lists; None gives per-list values `[...]`.
    no_relevant: "exclude", "zero" or "one" (module docstring).
    gain_fn: maps labels to gains.

  Returns:
    The reduced metric, or per-list values.

  >>> ndcg_metric(jnp.array([2., 1., 3.]), jnp.array([2., 0., 1.]))
  Array(0.79670763, dtype=float32)
  >>> ndcg_metric(jnp.array([2., 1., 3.]), jnp.array([2., 0., 1.]), topn=1, gain_fn=linear_gain)
  Array(0.5, dtype=float32)
  """
  scores, labels, where, weights = _prepare(scores, labels, where, weights)
  gains = gain_fn(labels) * weights
  dcg = ru.dcg(scores, gains, where, topn)
  ideal = ru.dcg(gains, gains, where, topn)
  values = dcg / jnp.where(ideal == 0.0, 1.0, ideal)
  return _finish(values, labels, where, no_relevant, reduce_fn)


def err_metric(
  scores: Array,
  labels: Array,
  *,
  where: Optional[Array] = None,
  weights: Optional[Array] = None,
  topn: Optional[int] = None,
  reduce_fn: Optional[ReduceFn] = jnp.mean,
  no_relevant: str = "exclude",
  gain_fn: GainFn = exp2_gain,
  max_label: float = 4.0,
) -> Array:
  r"""Expected reciprocal rank (Chapelle et al. 2009).

  .. math::
      \mathrm{ERR@k} = \sum_{r=1}^{k} \frac{w_{(r)} R_{(r)}}{r} \prod_{q < r} (1 - R_{(q)}),
      \qquad R = \frac{g(y)}{1 + g(y_{\max})}

  where :math:`(r)` is the item at rank :math:`r`. With `exp2_gain` this is
  Chapelle's :math:`R = (2^y - 1) / 2^{y_{\max}}`.

  Args:
    scores: `[..., list_size]` item scores.
    labels: `[..., list_size]` graded labels in `[0, max_label]`.
    where: optional `[..., list_size]` bool mask of valid items.
    weights: optional `[..., list_size]` per-item weights on the rewards.
    topn: cutoff `k`; None ranks the whole list.
    reduce_fn: reduction over lists; None gives per-list values `[...]`.
    no_relevant: "exclude", "zero" or "one" (module docstring).
    gain_fn: maps labels to gains.
    max_label: the highest grade of the label scale.

  Returns:
    The reduced metric, or per-list values.

  >>> err_metric(jnp.array([2., 1., 3.]), jnp.array([4., 0., 1.]))
  Array(0.5019531, dtype=float32)
  """
  scores, labels, where, weights = _prepare(scores, labels, where, weights)
  stop = jnp.clip(gain_fn(labels) / (1.0 + gain_fn(jnp.float32(max_label))), 0.0, 1.0)
  ranks = ru.ranks(scores, where)
  reach = ru.product_ahead(scores, 1.0 - stop, where)
  terms = weights * stop * reach / ranks
  values = jnp.sum(jnp.where(_retrieved(ranks, where, topn), terms, 0.0), axis=-1)
  return _finish(values, labels, where, no_relevant, reduce_fn)


def mrr_metric(
  scores: Array,
  labels: Array,
  *,
  where: Optional[Array] = None,
  weights: Optional[Array] = None,
  topn: Optional[int] = None,
  reduce_fn: Optional[ReduceFn] = jnp.mean,
  no_relevant: str = "exclude",
  relevance_level: float = 1.0,
) -> Array:
  r"""Mean reciprocal rank of the first relevant item.

  .. math::
      \mathrm{RR@k}(s, y) = \frac{w_{i^*}}{r_{i^*}}, \qquad
      i^* = \arg\min_{i:\ y_i \ge \ell,\ r_i \le k} r_i

  and 0 when no relevant item is in the top `k`.

  Args:
    scores: `[..., list_size]` item scores.
    labels: `[..., list_size]` graded labels.
    where: optional `[..., list_size]` bool mask of valid items.
    weights: optional `[..., list_size]` per-item weights.
    topn: cutoff `k`; None ranks the whole list.
    reduce_fn: reduction over lists; None gives per-list values `[...]`.
    no_relevant: "exclude", "zero" or "one" (module docstring).
    relevance_level: `\ell`, the lowest label counted as relevant.

  Returns:
    The reduced metric, or per-list values.

  >>> mrr_metric(jnp.array([2., 1., 3.]), jnp.array([2., 0., 0.]))
  Array(0.5, dtype=float32)
  """
  scores, labels, where, weights = _prepare(scores, labels, where, weights)
  ranks = ru.ranks(scores, where)
  hits = _retrieved(ranks, where, topn) & (labels >= relevance_level)
  first = jnp.min(jnp.where(hits, ranks, scores.shape[-1] + 1), axis=-1, keepdims=True)
  values = jnp.sum(jnp.where(hits & (ranks == first), weights / ranks, 0.0), axis=-1)
  return _finish(values, labels, where, no_relevant, reduce_fn)


def precision_metric(
  scores: Array,
  labels: Array,
  *,
  where: Optional[Array] = None,
  weights: Optional[Array] = None,
  topn: Optional[int] = None,
  reduce_fn: Optional[ReduceFn] = jnp.mean,
  no_relevant: str = "exclude",
  relevance_level: float = 1.0,
) -> Array:
  r"""Precision: the (weighted) share of relevant items among the retrieved.

  .. math::
      \mathrm{P@k}(s, y) = \frac{\sum_{i:\ r_i \le k} w_i \mathbb{1}[y_i \ge \ell]}
                                {|\{i:\ r_i \le k\}|}

  The denominator is the number of valid items retrieved, `min(k, n_valid)`
  (rax); trec_eval divides by `k` even when the list is shorter.

  Args:
    scores: `[..., list_size]` item scores.
    labels: `[..., list_size]` graded labels.
    where: optional `[..., list_size]` bool mask of valid items.
    weights: optional `[..., list_size]` per-item weights.
    topn: cutoff `k`; None ranks the whole list.
    reduce_fn: reduction over lists; None gives per-list values `[...]`.
    no_relevant: "exclude", "zero" or "one" (module docstring).
    relevance_level: `\ell`, the lowest label counted as relevant.

  Returns:
    The reduced metric, or per-list values.

  >>> precision_metric(jnp.array([2., 1., 3.]), jnp.array([2., 0., 1.]), topn=2)
  Array(1., dtype=float32)
  """
  scores, labels, where, weights = _prepare(scores, labels, where, weights)
  retrieved = _retrieved(ru.ranks(scores, where), where, topn)
  hits = jnp.sum(jnp.where(retrieved & (labels >= relevance_level), weights, 0.0), axis=-1)
  values = hits / jnp.maximum(jnp.sum(retrieved, axis=-1), 1).astype(hits.dtype)
  return _finish(values, labels, where, no_relevant, reduce_fn)


def pnr_metric(
  scores: Array,
  labels: Array,
  *,
  where: Optional[Array] = None,
  weights: Optional[Array] = None,
  topn: Optional[int] = None,
  reduce_fn: Optional[ReduceFn] = jnp.mean,
  no_relevant: str = "exclude",
) -> Array:
  r"""Positive-negative ratio: concordant over discordant pairs.

  Over the pairs :math:`y_i > y_j` of retrieved items (ranks within `k`),

  .. math::
      \mathrm{PNR}(s, y) = \frac{\sum w_i \mathbb{1}[s_i > s_j]}
                                {\max(\sum w_i \mathbb{1}[s_i < s_j], 1)}

  Pairs with equal scores count as neither. A list with no discordant pair
  gets its concordant count (the denominator is at least 1).

  Args:
    scores: `[..., list_size]` item scores.
    labels: `[..., list_size]` graded labels.
    where: optional `[..., list_size]` bool mask of valid items.
    weights: optional `[..., list_size]` weights; pair `(i, j)` gets `w_i`.
    topn: only pairs of items ranked within `topn`; None: all pairs.
    reduce_fn: reduction over lists; None gives per-list values `[...]`.
    no_relevant: "exclude", "zero" or "one" (module docstring).

  Returns:
    The reduced metric, or per-list values.

  >>> pnr_metric(jnp.array([2., 1., 3., 0.]), jnp.array([2., 0., 1., 1.]))
  Array(1.5, dtype=float32)
  """
  scores, labels, where, weights = _prepare(scores, labels, where, weights)
  retrieved = _retrieved(ru.ranks(scores, where), where, topn)
  ordered = (ru.pairs(labels, jnp.subtract) > 0) & ru.pairs(retrieved, jnp.logical_and)
  score_diffs = ru.pairs(scores, jnp.subtract)
  pair_weights = jnp.broadcast_to(weights[..., :, None], score_diffs.shape)
  concordant = jnp.sum(jnp.where(ordered & (score_diffs > 0), pair_weights, 0.0), axis=(-2, -1))
  discordant = jnp.sum(jnp.where(ordered & (score_diffs < 0), pair_weights, 0.0), axis=(-2, -1))
  values = concordant / jnp.maximum(discordant, 1.0)
  return _finish(values, labels, where, no_relevant, reduce_fn)


METRICS: dict[str, MetricFn] = {
  "ndcg": ndcg_metric,
  "dcg": dcg_metric,
  "err": err_metric,
  "mrr": mrr_metric,
  "precision": precision_metric,
  "pnr": pnr_metric,
}


def get_metric(name: str) -> MetricFn:
  """The metric registered as `name` in `METRICS`.

  >>> get_metric("ndcg") is ndcg_metric
  True
  """
  return registry.lookup(METRICS, name, "metric")


def parse_spec(spec: str) -> tuple[str, int | None]:
  """A metric spec, `<metric>@<k>` or `<metric>` (the whole list), as (name in `METRICS`, k).

  An unknown name is `registry.UnknownName`; a cutoff that is not a positive integer a ValueError
  saying what a spec is.

  >>> parse_spec("ndcg@10"), parse_spec("pnr")
  (('ndcg', 10), ('pnr', None))
  >>> parse_spec("ndcg@x")  # doctest: +ELLIPSIS
  Traceback (most recent call last):
  ValueError: the cutoff after '@' must be a positive integer (a spec is <metric> or <metric>@<k>...
  """
  name, at, k = str(spec).partition("@")
  get_metric(name)
  if not at:
    return name, None
  if not (k.isascii() and k.isdigit() and int(k) > 0):
    raise ValueError(
      "the cutoff after '@' must be a positive integer (a spec is <metric> or <metric>@<k>, "
      f"<metric> one of {', '.join(sorted(METRICS))})"
    )
  return name, int(k)


def bucket_stats(values: Array, buckets: Array, where: Optional[Array] = None) -> dict[str, Array]:
  """Per-bucket sums and counts of per-list metric values, for use inside jit.

  Stats of several batches or devices add up with `jax.tree.map(jnp.add, a, b)`;
  `finalize_bucket_stats` turns the total into means on the host.

  Args:
    values: `f32[B]` per-list metric values (e.g. `reduce_fn=None` output).
    buckets: `int32[B]` query-frequency bucket: 0 high, 1 medium, 2 low,
      -1 unknown (counted only in "all").
    where: optional `bool[B]`, the lists to count (e.g. `has_relevant(...)`).

  Returns:
    `{"sum": f32[4], "count": f32[4]}` indexed by `BUCKETS` (high, medium,
    low, all).

  >>> stats = bucket_stats(jnp.array([1., .5, 0., .25]), jnp.array([0, 0, 2, -1]),
  ...                      jnp.array([True, True, True, False]))
  >>> stats["sum"], stats["count"]
  (Array([1.5, 0. , 0. , 1.5], dtype=float32), Array([2., 0., 1., 3.], dtype=float32))
  """
  values = jnp.ravel(values).astype(jnp.float32)
  buckets = jnp.ravel(buckets)
  where = jnp.ones(values.shape, bool) if where is None else jnp.ravel(where).astype(bool)
  member = (buckets[:, None] == jnp.arange(3)) & where[:, None]  # [B, 3]
  member = jnp.concatenate([member, where[:, None]], axis=-1).astype(jnp.float32)
  return {
    "sum": jnp.sum(member * jnp.where(where, values, 0.0)[:, None], axis=0),
    "count": jnp.sum(member, axis=0),
  }


def finalize_bucket_stats(stats: dict[str, Array]) -> dict[str, float]:
  """Means per bucket from summed `bucket_stats`, plus their list counts.

  Buckets without lists are omitted.

  >>> finalize_bucket_stats({"sum": np.array([1.5, 0., 0., 1.5]),
  ...                        "count": np.array([2., 0., 1., 3.])})
  {'high': 0.75, 'count/high': 2.0, 'low': 0.0, 'count/low': 1.0, 'all': 0.5, 'count/all': 3.0}
  """
  sums, counts = (np.asarray(jax.device_get(stats[key])) for key in ("sum", "count"))
  out = {}
  for name, total, count in zip(BUCKETS, sums, counts):
    if count > 0:
      out[name] = float(total / count)
      out[f"count/{name}"] = float(count)
  return out
