"""Click models fitted from a stream of page batches, in memory O(batch + pairs).

Every fit here is a sum over pages followed by a ratio: an EM iteration sums `e_step` over the log
and applies `m_step`; the closed form sums `count_sums` once. So a pass reads a
`rankjax.click_models.source` in batches of one fixed shape (padded with hidden pages, one
compilation), places each batch on the mesh's "data" axis, and adds its sums to an accumulator
replicated on every device: under `jax.jit` the per-pair `segment_sum` of a sharded batch reduces
over the devices by itself. The same code runs on one CPU, a GPU, eight fake CPU devices or
several hosts (each feeding its own pages with `jax.make_array_from_process_local_data`); only
the pair tables, [pairs] per parameter, are held whole on every device.

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

  def __init__(self, source, batch_sessions: int | None, mesh: jax.sharding.Mesh | None):
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

  def put(self, tree):
    """`tree` replicated on every device of the mesh."""
    return jax.device_put(tree, self.replicated)


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
  sums = stats(*args, doc, click.astype(jnp.float32), mask)
  return jax.lax.with_sharding_constraint(_add(acc, sums), replicated)


def _pass(stats: Callable, args, feed: _Feed, bar) -> tuple:
  """`stats(*args, doc, click, mask)` summed over one pass of the feed (an accumulator)."""
  acc = feed.put(_zeros(jax.eval_shape(stats, *args, *feed.shapes())))
  for doc, click, mask in feed:
    acc = _accumulate(stats, feed.replicated, acc, args, doc, click, mask)
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


def _counts(table: np.ndarray) -> PairRankCounts:
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


@functools.cache
def _count_sums_of(model: ClickModel, num_pairs: int, num_ranks: int) -> Callable:
  # One function object per (model, size): the jitted pass is cached on it.
  return lambda doc, click, mask: model.count_sums(doc, click, mask, num_pairs, num_ranks)


@functools.cache
def _pair_rank_of(num_pairs: int) -> Callable:
  return functools.partial(_pair_rank, num_pairs)


def pair_rank_counts(
  source, *, batch_sessions: int | None = None, mesh=None, progress: bool = False
) -> PairRankCounts:
  """Every pair's impressions and clicks by rank, in one pass over `source`."""
  feed = _Feed(source, batch_sessions, mesh)
  with _bar(feed.num_batches, "pair-rank counts", progress) as bar:
    acc = _pass(_pair_rank_of(source.num_pairs), (), feed, bar)
  return _counts(_to_host(acc))


def run_em(
  model: ClickModel,
  source,
  *,
  params: Params | None,
  iterations: int,
  smoothing: float,
  batch_sessions: int | None = None,
  mesh=None,
  collect_counts: bool = False,
  progress: bool = False,
) -> tuple[Params, int, PairRankCounts | None]:
  """`iterations` EM iterations over `source`, each one pass (PBM: one pass in all).

  Returns:
    (params, iterations, the pair-rank counts if `collect_counts` or PBM's EM needed them).
  """
  feed = _Feed(source, batch_sessions, mesh)
  params = model.init(source.num_pairs, source.num_ranks) if params is None else params
  params = feed.put(_float32(params))
  smoothing = jnp.float32(smoothing)
  if model.pair_rank_e_step is not None:
    counts = pair_rank_counts(
      source, batch_sessions=batch_sessions, mesh=feed.mesh, progress=progress
    )
    # float32 on the device: exact to 2^24 impressions per (pair, rank).
    table = feed.put((counts.impressions.astype(np.float32), counts.clicks.astype(np.float32)))
    params = _pair_rank_em(model, iterations, params, *table, smoothing)
    return params, iterations, counts
  counts = None
  with _bar(feed.num_batches * iterations, f"{model.name} EM", progress) as bar:
    for i in range(iterations):
      if i == 0:
        stats = _with_pair_rank(model.e_step, source.num_pairs) if collect_counts else model.e_step
        acc = _pass(stats, (params,), feed, bar)
        if collect_counts:
          acc, table = _split(acc)
          counts = _counts(_to_host(table))
        first, depends = acc, _depends_on_params(model.e_step, (params,), feed.shapes())
      else:
        acc = _merge(first, _pass(_only(model.e_step, depends), (params,), feed, bar), depends)
      params = _m_step(model, params, acc, smoothing)
  return params, iterations, counts


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
  collect_counts: bool = False,
  progress: bool = False,
) -> tuple[Params, PairRankCounts | None]:
  """The closed form from one pass over `source` (`count_sums`, then `m_step`)."""
  feed = _Feed(source, batch_sessions, mesh)
  stats = _count_sums_of(model, source.num_pairs, source.num_ranks)
  if collect_counts:
    stats = _with_pair_rank(stats, source.num_pairs)
  with _bar(feed.num_batches, f"{model.name} counts", progress) as bar:
    acc = _pass(stats, (), feed, bar)
  counts = None
  if collect_counts:
    acc, table = _split(acc)
    counts = _counts(_to_host(table))
  init = feed.put(model.init(source.num_pairs, source.num_ranks))
  return _m_step(model, init, acc, jnp.float32(smoothing)), counts


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
  progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
  """(sum of log P(C_k = c_k | C_<k), shown results), float64 [K], by rank, over `source`."""
  feed = _Feed(source, batch_sessions, mesh)
  params = feed.put(_float32(params))
  with _bar(feed.num_batches, f"{model.name} likelihood", progress) as bar:
    acc = _pass(_log_probs_of(model), (params,), feed, bar)
  return _to_host(acc)


def perplexity(log_likelihood: np.ndarray, shown: np.ndarray) -> np.ndarray:
  """Perplexity by rank, 2 ** (-mean log2 P), from `log_likelihood_by_rank`; NaN where nothing
  was shown."""
  with np.errstate(divide="ignore", invalid="ignore"):
    return np.where(shown > 0, 2.0 ** (-(log_likelihood / math.log(2)) / shown), np.nan)
