"""Per-pair tables split by pair id over the devices of the mesh, for pair tables larger than one
device holds.

The streamed fit (`rankjax.click_models.stream`) keeps every per-pair parameter and sum whole on
every device: memory O(batch + pairs) per device. With `PairShards`, device d of the mesh's
"data" axis holds only pairs [d S, (d + 1) S), S = ceil(pairs / devices): O(batch + pairs /
devices) per device, and a batch's statistics travel to their owners instead of being summed on
every device:

  1. every device's pair ids are gathered (`all_gather`, O(batch));
  2. each device looks up the parameters of the pairs it owns at every position of the batch, 0
     elsewhere, and a `psum_scatter` hands each device the values at its own rows;
  3. the model's own statistics function runs on the device's rows with those values as a table
     of one entry per position (`doc` becomes the position), so no model needs a sharded form;
  4. the per-position sums are gathered again and each device adds those of its own pairs
     (`segment_sum`); sums that are not per pair (by rank, global) are summed over the devices.

That is per-device code (each device reads only its slice, by its index on the mesh), hence
`jax.shard_map`; a plain `jit` over sharded tables would let XLA gather a whole table on every
device for `alpha[doc]`. The M-step and PBM's pair-rank EM are elementwise in the pairs (plus sums
over them), which `jit` keeps sharded by itself.

Which leaves of a parameter or statistics tree are per pair is found by evaluating its shapes at
two pair counts: the leaves whose shapes change.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "data"


def per_pair_leaves(tree_of_size: Callable[[int], object]) -> tuple[bool, ...]:
  """For each leaf of `tree_of_size(n)` (arrays or shapes), whether its shape depends on the pair
  count n."""
  small, large = (jax.tree.leaves(tree_of_size(n)) for n in (2, 3))
  return tuple(jnp.shape(a) != jnp.shape(b) for a, b in zip(small, large))


@dataclasses.dataclass(frozen=True)
class PairShards:
  """`num_pairs` pairs split over the `mesh`'s "data" axis, `per_device` on each (the last
  device's slice padded)."""

  mesh: jax.sharding.Mesh
  num_pairs: int

  @property
  def per_device(self) -> int:
    return max(-(-self.num_pairs // self.mesh.size), 1)

  @property
  def padded(self) -> int:
    return self.per_device * self.mesh.size

  def sharding(self, per_pair: bool) -> NamedSharding:
    return NamedSharding(self.mesh, P(AXIS) if per_pair else P())

  def put(self, tree, per_pair: tuple[bool, ...]):
    """`tree` on the mesh: its per-pair leaves padded to `padded` and split, the rest
    replicated."""
    leaves, treedef = jax.tree.flatten(tree)
    placed = []
    for x, split in zip(leaves, per_pair):
      if split:
        x = jnp.pad(jnp.asarray(x), [(0, self.padded - x.shape[0])] + [(0, 0)] * (x.ndim - 1))
      placed.append(jax.device_put(x, self.sharding(split)))
    return treedef.unflatten(placed)

  def create(self, make: Callable[[int], object], per_pair: tuple[bool, ...]):
    """`make(padded)` (a tree of arrays) computed on the mesh already split: no device ever holds
    a whole per-pair table."""
    make = functools.partial(make, self.padded)
    treedef = jax.tree.structure(jax.eval_shape(make))
    return jax.jit(make, out_shardings=treedef.unflatten(list(map(self.sharding, per_pair))))()

  def unpad(self, tree, per_pair: tuple[bool, ...]):
    """`tree`'s per-pair leaves cut back to `num_pairs`."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef.unflatten(
      [x[: self.num_pairs] if split else x for x, split in zip(leaves, per_pair)]
    )

  def routed(
    self,
    stats_of: Callable[[int], Callable],
    args: tuple,
    args_per_pair: tuple[bool, ...],
    shapes,
    *,
    num_ranks: int = 0,
  ):
    """`stats(*args, doc, click, mask)` over a batch on the mesh, with `args`' per-pair leaves
    and the result's split by pair id (see the module docstring).

    Args:
      stats_of: n -> the statistics function for a table of n pairs (`count_sums` takes the
        count; an E-step reads it from its parameters).
      args: the arguments before the batch, placed by `put` (or their shapes).
      args_per_pair: which leaves of `args` are per pair.
      shapes: the global batch's (doc, click, mask) shapes.
      num_ranks: if > 0, also return the batch's per-(pair, rank) impressions and clicks,
        [padded, num_ranks, 2], split by pair id.

    Returns:
      (fn, per-pair leaves of fn's result): fn(*args, doc, click, mask) -> the sums.
    """
    leaves, treedef = jax.tree.flatten(args)
    leaves = tuple(jax.ShapeDtypeStruct(x.shape, x.dtype) for x in leaves)
    return _routed(self, stats_of, treedef, leaves, args_per_pair, tuple(shapes), num_ranks)


def _resized(leaves, per_pair, n):
  return [
    jax.ShapeDtypeStruct((n, *x.shape[1:]), x.dtype) if split else x
    for x, split in zip(leaves, per_pair)
  ]


@functools.cache
def _routed(shards: PairShards, stats_of, treedef, arg_leaves, args_per_pair, shapes, num_ranks):
  rows = shapes[0].shape[0] // shards.mesh.size
  local = [jax.ShapeDtypeStruct((rows, *s.shape[1:]), s.dtype) for s in shapes]
  positions = rows * shapes[0].shape[1]

  def local_stats(n):  # the shapes of the sums of a device's rows, n pairs
    args = treedef.unflatten(_resized(arg_leaves, args_per_pair, n))
    return jax.eval_shape(stats_of(n), *args, *local)

  out_per_pair = per_pair_leaves(local_stats)
  size = shards.per_device

  def on_device(*inputs):
    *args, doc, click, mask = inputs
    all_doc = jax.lax.all_gather(doc, AXIS, tiled=True)  # [B, K], every device's rows
    ids = all_doc - jax.lax.axis_index(AXIS) * size
    own = (ids >= 0) & (ids < size)
    ids = jnp.where(own, ids, 0)

    def gather(table):  # the owned pairs' values at every position, then this device's rows
      values = table[ids]
      values = jnp.where(own.reshape(own.shape + (1,) * (values.ndim - 2)), values, 0)
      mine = jax.lax.psum_scatter(values, AXIS, scatter_dimension=0, tiled=True)
      return mine.reshape((positions, *table.shape[1:]))

    leaves = [gather(x) if split else x for x, split in zip(jax.tree.leaves(args), args_per_pair)]
    by_position = jnp.arange(positions, dtype=doc.dtype).reshape(doc.shape)
    sums = stats_of(positions)(*treedef.unflatten(leaves), by_position, click, mask)
    owner = jnp.where(own, ids, size).ravel()  # size: a segment past the end, dropped

    def scatter(x):  # every device's per-position sums, added into the owned pairs
      x = jax.lax.all_gather(x, AXIS, tiled=True)
      return jax.ops.segment_sum(x, owner, num_segments=size + 1)[:size]

    out, odef = jax.tree.flatten(sums)
    out = [scatter(x) if split else jax.lax.psum(x, AXIS) for x, split in zip(out, out_per_pair)]
    sums = odef.unflatten(out)
    if not num_ranks:
      return sums
    return sums, _pair_rank(all_doc, own, ids, click, mask, size, num_ranks)

  arg_specs = treedef.unflatten([P(AXIS) if s else P() for s in args_per_pair])
  out_shapes = local_stats(positions)
  out_specs = jax.tree.unflatten(
    jax.tree.structure(out_shapes), [P(AXIS) if s else P() for s in out_per_pair]
  )
  if num_ranks:
    out_specs, out_per_pair = (out_specs, P(AXIS)), (*out_per_pair, True)
  fn = jax.shard_map(
    on_device,
    mesh=shards.mesh,
    in_specs=(*arg_specs, P(AXIS), P(AXIS), P(AXIS)),
    out_specs=out_specs,
    # The models' own code (scans with constant carries) is not written for varying-axis types.
    check_vma=False,
  )
  return fn, out_per_pair


def _pair_rank(all_doc, own, ids, click, mask, size: int, num_ranks: int):
  """The owned pairs' impressions and clicks by rank, [size, K, 2], from every device's rows."""
  all_click = jax.lax.all_gather(click, AXIS, tiled=True)
  all_mask = jax.lax.all_gather(mask, AXIS, tiled=True) & own
  w = all_mask.astype(jnp.float32)
  cell = jnp.where(all_mask, ids * num_ranks + jnp.arange(num_ranks), size * num_ranks)
  values = jnp.stack([w, all_click * w], axis=-1).reshape(-1, 2)
  table = jax.ops.segment_sum(values, cell.ravel(), num_segments=size * num_ranks + 1)
  return table[:-1].reshape(size, num_ranks, 2)
