"""Click models fitted from a stream of page batches, in memory O(batch + pairs).

Every fit here is a sum over pages followed by a ratio: an EM iteration sums `e_step` over the log
and applies `m_step`; the closed form sums `count_sums` once. So a pass reads a
`rankjax.click_models.source` in batches of one fixed shape (padded with hidden pages, one
compilation), places each batch on the mesh's "data" axis, and adds its sums to an accumulator
replicated on every device: under `jax.jit` the per-pair `segment_sum` of a sharded batch reduces
over the devices by itself. The same code runs on one CPU, a GPU, eight fake CPU devices or
several hosts (each feeding its own pages with `jax.make_array_from_process_local_data`); only
the pair tables, [pairs] per parameter, are held whole on every device, unless `shard_pairs`
splits them by pair id over the devices (`rankjax.click_models.pair_shards`) for tables larger
than one device holds.

The first pass can also collect every pair's impressions and clicks by rank (`PairRankCounts`):
what intervention harvesting and the identification check read, and the click aggregates a
trainer's labels come from. PBM's likelihood depends on the log only through them, so PBM's EM
iterates on them (`ClickModel.pair_rank_e_step`) after that one pass.

Why compensated sums: a float32 sum of 10^8 values drifts (the full-batch float32 PBM EM's
log-likelihood per result is 7.1e-6 from a float64 EM's after 4 iterations at 10^7 sessions, the
streamed one's 6.9e-9: `tools/benchmarks/click_fit_stream.py`), and jax's float64 is a
process-wide switch (`jax_enable_x64`) that would double every array of the program, so it is not
turned on.
Each batch's float32 sums (a few 10^5 terms) are added with Neumaier's compensated summation into
a (sum, compensation) pair on the device, which keeps the rounding error of every addition: the
accumulated sums are as exact as a float64 sum, and counts stay exact to about 2^48. Copying each
batch's sums to a float64 host accumulator instead would cost a device-to-host copy of the pair
tables per batch and stall the device at each. No library sums EM statistics over a sharded
stream in JAX, hence this module.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator

import jax
import jax.extend.core as jax_core
import jax.numpy as jnp
import numpy as np
import tqdm
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from rankjax.click_models.base import ClickModel, Params, log_probs
from rankjax.click_models.pair_shards import PairShards, per_pair_leaves
from rankjax.click_models.source import batches


def default_batch_sessions() -> int:
  """Sessions per global batch unless asked. On a CPU 2^16: the batch's [B, K] arrays stay in
  cache, and the per-batch cost of adding [pairs] tables stays small (the fastest of 2^14-2^17
  for PBM and DBN on 2 cores); on an accelerator 2^20, enough work per step to hide the host's
  feeding."""
  return 1 << 16 if jax.default_backend() == "cpu" else 1 << 20


@dataclasses.dataclass
class PairRankCounts:
  """Impressions and clicks of every (query, document) pair at every rank, float64 [P, K]."""

  impressions: np.ndarray
  clicks: np.ndarray


def default_mesh() -> jax.sharding.Mesh:
  """A 1-D mesh over every device of every host, axis "data"."""
  return jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))


class _Feed:
  """A source's batches placed on the mesh: the same number of batches on every host."""

  def __init__(
    self,
    source,
    batch_sessions: int | None,
    mesh: jax.sharding.Mesh | None,
    shard_pairs: bool = False,
  ):
    self.source = source
    batch_sessions = batch_sessions or default_batch_sessions()
    self.mesh = mesh or default_mesh()
    hosts = jax.process_count()
    most_sessions = _max_over_hosts(source.num_sessions)
    # A multiple of the device count (the batch splits evenly over "data"), no larger than the
    # biggest host's share needs.
    rows = min(batch_sessions, max(most_sessions, 1) * hosts)
    self.rows = -(-rows // self.mesh.size) * self.mesh.size
    self.local_rows = self.rows // hosts
    self.num_batches = -(-most_sessions // self.local_rows)
    self.data = NamedSharding(self.mesh, P("data"))
    self.replicated = NamedSharding(self.mesh, P())
    self.shards = PairShards(self.mesh, source.num_pairs) if shard_pairs else None

  def __iter__(self) -> Iterator[tuple[jax.Array, ...]]:
    count = 0
    for batch in batches(self.source.chunks(), self.local_rows):
      yield self._place(batch)
      count += 1
    # Hosts with fewer pages feed hidden ones: every host takes part in every batch's reduction.
    shape = (self.local_rows, self.source.num_ranks)
    for _ in range(self.num_batches - count):
      yield self._place((np.zeros(shape, np.int32), np.zeros(shape, bool), np.zeros(shape, bool)))

  def _place(self, batch) -> tuple[jax.Array, ...]:
    if jax.process_count() == 1:
      return jax.device_put(batch, self.data)
    return tuple(jax.make_array_from_process_local_data(self.data, a) for a in batch)

  def shapes(self) -> tuple[jax.ShapeDtypeStruct, ...]:
    """The shapes of a global batch (doc, click as float32, mask)."""
    shape = (self.rows, self.source.num_ranks)
    return tuple(jax.ShapeDtypeStruct(shape, t) for t in (jnp.int32, jnp.float32, jnp.bool_))

  def put(self, tree, per_pair: tuple[bool, ...] | None = None):
    """`tree` on every device of the mesh; with pair shards, the leaves marked in `per_pair`
    split by pair id."""
    if self.shards is None or per_pair is None:
      return jax.device_put(tree, self.replicated)
    return self.shards.put(tree, per_pair)

  def init(self, model: ClickModel, per_pair: tuple[bool, ...]) -> Params:
    """`model`'s starting parameters on the mesh (split by pair id with pair shards)."""
    ranks = self.source.num_ranks
    if self.shards is None:
      return self.put(_float32(model.init(self.source.num_pairs, ranks)))
    return self.shards.create(lambda n: _float32(model.init(n, ranks)), per_pair)

  def zeros(self, shapes, per_pair: tuple[bool, ...] | None):
    """An accumulator of zeros for sums shaped `shapes`, placed as `put` would."""
    if self.shards is None or per_pair is None:
      return self.put(_zeros(shapes))
    return self.shards.create(lambda _: _zeros(shapes), per_pair * 2)

  def unpad(self, tree, per_pair: tuple[bool, ...] | None):
    """`tree` with pair shards' padding cut from the leaves marked in `per_pair`."""
    return tree if self.shards is None or per_pair is None else self.shards.unpad(tree, per_pair)

  def stats(self, stats_of: Callable, args: tuple = (), args_per_pair=(), counts: bool = False):
    """(fn, per-pair leaves of its sums or None): fn(*args, doc, click, mask) -> a batch's sums
    from `stats_of(num_pairs)`, and with `counts` its pair-rank counts after them.

    With pair shards, fn runs on each device on its slice of the pair tables
    (`PairShards.routed`); without, on the whole tables under `jit`.
    """
    num_pairs = self.source.num_pairs
    if self.shards is None:
      stats = stats_of(num_pairs)
      return (_with_pair_rank(stats, num_pairs) if counts else stats), None
    ranks = self.source.num_ranks if counts else 0
    return self.shards.routed(stats_of, args, args_per_pair, self.shapes(), num_ranks=ranks)


def _float32(params: Params) -> Params:
  """Strongly typed float32 (`init`'s arrays are weakly typed, the M-step's are not: a pass
  compiled for one would compile again for the other)."""
  return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)


def _max_over_hosts(n: int) -> int:
  if jax.process_count() == 1:
    return n
  return int(np.max(multihost_utils.process_allgather(np.int64(n))))


# The accumulator: (sums, compensations), each shaped like the statistics.
def _zeros(shapes) -> tuple:
  def zeros():  # two distinct buffers: the accumulator is donated
    return jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.float32), shapes)

  return zeros(), zeros()


def _add(acc, sums):
  """Neumaier's compensated addition of `sums` to `acc`, leaf by leaf: the compensation takes
  what rounding dropped from the larger of the two addends."""
  total, comp = acc
  new = jax.tree.map(jnp.add, total, sums)

  def lost(s, x, t):
    return jnp.where(jnp.abs(s) >= jnp.abs(x), (s - t) + x, (x - t) + s)

  return new, jax.tree.map(lambda c, s, x, t: c + lost(s, x, t), comp, total, sums, new)


def _resolve(acc):
  """The accumulated sums, float32."""
  total, comp = acc
  return jax.tree.map(jnp.add, total, comp)


def _to_host(acc):
  """The accumulated sums, float64 numpy (counts exact beyond float32's 2^24)."""
  total, comp = acc
  return jax.tree.map(
    lambda s, c: np.asarray(s, np.float64) + np.asarray(c, np.float64), total, comp
  )


@functools.partial(jax.jit, static_argnums=(0, 1), donate_argnums=(2,))
def _accumulate(stats: Callable, replicated, acc, args, doc, click, mask):
  sums = _add(acc, stats(*args, doc, click.astype(jnp.float32), mask))
  # Pair shards: `shard_map` has placed the sums already.
  return sums if replicated is None else jax.lax.with_sharding_constraint(sums, replicated)


def _pass(stats: Callable, args, feed: _Feed, bar, per_pair=None) -> tuple:
  """`stats(*args, doc, click, mask)` summed over one pass of the feed (an accumulator); with
  pair shards, `per_pair` marks the sums split by pair id."""
  acc = feed.zeros(jax.eval_shape(stats, *args, *feed.shapes()), per_pair)
  replicated = None if feed.shards else feed.replicated
  for doc, click, mask in feed:
    acc = _accumulate(stats, replicated, acc, args, doc, click, mask)
    bar.update()
  return acc


def _pair_rank(num_pairs: int, doc, click, mask):
  """Per (pair, rank): [P, K, 2] impressions and clicks of one batch (one scatter of both)."""
  k = doc.shape[-1]
  cell = doc * k + jnp.arange(k)
  w = mask.astype(jnp.float32)
  values = jnp.stack([w, click * w], axis=-1).reshape(-1, 2)
  return jax.ops.segment_sum(values, cell.ravel(), num_segments=num_pairs * k).reshape(
    num_pairs, k, 2
  )


@functools.cache
def _with_pair_rank(stats: Callable, num_pairs: int) -> Callable:
  """`stats` and the batch's pair-rank counts, in one pass."""

  def both(*args):
    *head, doc, click, mask = args
    return stats(*head, doc, click, mask), _pair_rank(num_pairs, doc, click, mask)

  return both


def _counts(table: np.ndarray, num_pairs: int) -> PairRankCounts:
  table = table[:num_pairs]  # pair shards' padding
  return PairRankCounts(table[..., 0], table[..., 1])


def _bar(total: int, desc: str, progress: bool):
  return tqdm.tqdm(total=total, desc=desc, unit="batch", disable=not progress, leave=False)


@functools.partial(jax.jit, static_argnums=0)
def _m_step(model: ClickModel, params, acc, smoothing):
  return model.m_step(params, _resolve(acc), smoothing)


@functools.partial(jax.jit, static_argnums=0)
def _pair_rank_em(model: ClickModel, iterations, params, impressions, clicks, smoothing):
  def step(_, p):
    return model.m_step(p, model.pair_rank_e_step(p, impressions, clicks), smoothing)

  return jax.lax.fori_loop(0, iterations, step, params)


# `stats_of` functions (n pairs -> a statistics function), one object per model and kind: the
# jitted pass is cached on it.
@functools.cache
def _constant(stats: Callable) -> Callable:
  """For statistics that read the pair count from their parameters."""
  return lambda num_pairs: stats


@functools.cache
def _count_sums_of(model: ClickModel, num_ranks: int) -> Callable:
  @functools.cache
  def of(num_pairs: int):
    return lambda doc, click, mask: model.count_sums(doc, click, mask, num_pairs, num_ranks)

  return of


def _nothing(doc, click, mask) -> dict:
  del doc, click, mask
  return {}


def _params_per_pair(model: ClickModel, num_ranks: int) -> tuple[bool, ...]:
  return per_pair_leaves(lambda n: model.init(n, num_ranks))


def _pair_rank_table(feed: _Feed, progress: bool) -> tuple:
  """The pair-rank counts' accumulator, [pairs, K, 2], from one pass."""
  stats, per_pair = feed.stats(_constant(_nothing), counts=True)
  with _bar(feed.num_batches, "pair-rank counts", progress) as bar:
    return _split(_pass(stats, (), feed, bar, per_pair))[1]


def pair_rank_counts(
  source,
  *,
  batch_sessions: int | None = None,
  mesh=None,
  shard_pairs: bool = False,
  progress: bool = False,
) -> PairRankCounts:
  """Every pair's impressions and clicks by rank, in one pass over `source`."""
  feed = _Feed(source, batch_sessions, mesh, shard_pairs)
  return _counts(_to_host(_pair_rank_table(feed, progress)), source.num_pairs)


def run_em(
  model: ClickModel,
  source,
  *,
  params: Params | None,
  iterations: int,
  smoothing: float,
  batch_sessions: int | None = None,
  mesh=None,
  shard_pairs: bool = False,
  collect_counts: bool = False,
  progress: bool = False,
) -> tuple[Params, int, PairRankCounts | None]:
  """`iterations` EM iterations over `source`, each one pass (PBM: one pass in all).

  Returns:
    (params, iterations, the pair-rank counts if `collect_counts` or PBM's EM needed them;
    with `shard_pairs` only if `collect_counts`: they are copied whole to the host).
  """
  feed = _Feed(source, batch_sessions, mesh, shard_pairs)
  per_pair = _params_per_pair(model, source.num_ranks)
  if params is None:
    params = feed.init(model, per_pair)
  else:
    params = feed.put(_float32(params), per_pair)
  smoothing = jnp.float32(smoothing)
  counts = None
  if model.pair_rank_e_step is not None:
    table = _pair_rank_table(feed, progress)
    if collect_counts or not shard_pairs:
      counts = _counts(_to_host(table), source.num_pairs)
    # float32 on the device: exact to 2^24 impressions per (pair, rank).
    table = _resolve(table)
    params = _pair_rank_em(model, iterations, params, table[..., 0], table[..., 1], smoothing)
    return feed.unpad(params, per_pair), iterations, counts
  with _bar(feed.num_batches * iterations, f"{model.name} EM", progress) as bar:
    for i in range(iterations):
      if i == 0:
        stats, sums_per_pair = feed.stats(
          _constant(model.e_step), (params,), per_pair, counts=collect_counts
        )
        acc = _pass(stats, (params,), feed, bar, sums_per_pair)
        if collect_counts:
          acc, table = _split(acc)
          counts = _counts(_to_host(table), source.num_pairs)
        first, depends = acc, _depends_on_params(model.e_step, (params,), feed.shapes())
      else:
        later, later_per_pair = feed.stats(
          _constant(_only(model.e_step, depends)), (params,), per_pair
        )
        acc = _merge(first, _pass(later, (params,), feed, bar, later_per_pair), depends)
      params = _m_step(model, params, acc, smoothing)
  return feed.unpad(params, per_pair), iterations, counts


def _depends_on_params(stats: Callable, args, shapes) -> tuple[bool, ...]:
  """For each output leaf of `stats(*args, *shapes)`, whether it depends on `args`.

  The E-step's sums that do not (counts of shown results, of clicks, ...) are the same on every
  pass: the first pass sums them, later passes leave them out and XLA drops their work, as the
  full batch's compiled loop hoists it. An equation that reads anything derived from `args`
  counts as dependent in all its outputs, so nothing dependent is ever reused.
  """
  closed = jax.make_jaxpr(stats)(*args, *shapes)
  live = set(closed.jaxpr.invars[: len(jax.tree.leaves(args))])
  for eqn in closed.jaxpr.eqns:
    if any(isinstance(v, jax_core.Var) and v in live for v in eqn.invars):
      live.update(eqn.outvars)
  return tuple(isinstance(v, jax_core.Var) and v in live for v in closed.jaxpr.outvars)


@functools.cache
def _only(stats: Callable, keep: tuple[bool, ...]) -> Callable:
  """`stats` returning only the leaves marked in `keep` (a list)."""

  def kept(*args):
    return [x for x, k in zip(jax.tree.leaves(stats(*args)), keep) if k]

  return kept


def _merge(first, later, depends: tuple[bool, ...]):
  """The first pass's accumulator with its parameter-dependent leaves taken from `later`."""
  out = []
  for full, part in zip(first, later):  # sums, then compensations
    leaves, treedef = jax.tree.flatten(full)
    part = iter(part)
    out.append(treedef.unflatten([next(part) if d else x for x, d in zip(leaves, depends)]))
  return tuple(out)


def _split(acc):
  """An accumulator of (stats, pair-rank) pairs as two accumulators."""
  (stats, table), (stats_c, table_c) = acc
  return (stats, stats_c), (table, table_c)


def run_counts(
  model: ClickModel,
  source,
  *,
  smoothing: float,
  batch_sessions: int | None = None,
  mesh=None,
  shard_pairs: bool = False,
  collect_counts: bool = False,
  progress: bool = False,
) -> tuple[Params, PairRankCounts | None]:
  """The closed form from one pass over `source` (`count_sums`, then `m_step`)."""
  feed = _Feed(source, batch_sessions, mesh, shard_pairs)
  stats, sums_per_pair = feed.stats(_count_sums_of(model, source.num_ranks), counts=collect_counts)
  with _bar(feed.num_batches, f"{model.name} counts", progress) as bar:
    acc = _pass(stats, (), feed, bar, sums_per_pair)
  counts = None
  if collect_counts:
    acc, table = _split(acc)
    counts = _counts(_to_host(table), source.num_pairs)
  per_pair = _params_per_pair(model, source.num_ranks)
  init = feed.init(model, per_pair)
  return feed.unpad(_m_step(model, init, acc, jnp.float32(smoothing)), per_pair), counts


def _log_probs_by_rank(model: ClickModel, params, doc, click, mask):
  lp = log_probs(model, params, doc, click, mask)
  return lp.sum(0), mask.sum(0).astype(jnp.float32)


@functools.cache
def _log_probs_of(model: ClickModel) -> Callable:
  return functools.partial(_log_probs_by_rank, model)


def log_likelihood_by_rank(
  model: ClickModel,
  params: Params,
  source,
  *,
  batch_sessions: int | None = None,
  mesh=None,
  shard_pairs: bool = False,
  progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
  """(sum of log P(C_k = c_k | C_<k), shown results), float64 [K], by rank, over `source`."""
  feed = _Feed(source, batch_sessions, mesh, shard_pairs)
  per_pair = _params_per_pair(model, source.num_ranks)
  params = feed.put(_float32(params), per_pair)
  stats, _ = feed.stats(_constant(_log_probs_of(model)), (params,), per_pair)
  with _bar(feed.num_batches, f"{model.name} likelihood", progress) as bar:
    acc = _pass(stats, (params,), feed, bar)
  return _to_host(acc)


def perplexity(log_likelihood: np.ndarray, shown: np.ndarray) -> np.ndarray:
  """Perplexity by rank, 2 ** (-mean log2 P), from `log_likelihood_by_rank`; NaN where nothing
  was shown."""
  with np.errstate(divide="ignore", invalid="ignore"):
    return np.where(shown > 0, 2.0 ** (-(log_likelihood / math.log(2)) / shown), np.nan)
