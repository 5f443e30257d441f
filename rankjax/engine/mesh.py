"""The device mesh: one "data" axis over every device of every host; params replicated.

The same code runs on one CPU, one or eight GPUs, a TPU slice and several hosts: `jax.jit` over
a `Mesh` with `NamedSharding`, batches split on the batch axis, XLA inserting the gradient
all-reduce. Several hosts join through `jax.distributed.initialize()` (JAX's own runtime), after
which each host feeds its own lists with `jax.make_array_from_process_local_data`.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

# Any of these means a multi-process launch: a coordinator address given explicitly (with
# RANKJAX_NUM_PROCESSES and RANKJAX_PROCESS_ID where no cluster manager tells JAX), SLURM with
# several tasks, or an explicit request, as on a multi-host TPU slice, where JAX finds its peers
# from the TPU metadata.
_MULTIHOST_ENV = ("JAX_COORDINATOR_ADDRESS", "RANKJAX_DISTRIBUTED")


def maybe_initialize_distributed() -> bool:
  """Calls `jax.distributed.initialize()` on a multi-host launch; True if it did."""
  multi = (
    any(os.environ.get(k) for k in _MULTIHOST_ENV) or int(os.environ.get("SLURM_NTASKS", "1")) > 1
  )
  if multi:
    explicit = {}
    if "RANKJAX_NUM_PROCESSES" in os.environ:
      explicit = {
        "num_processes": int(os.environ["RANKJAX_NUM_PROCESSES"]),
        "process_id": int(os.environ["RANKJAX_PROCESS_ID"]),
      }
    jax.distributed.initialize(**explicit)
  return multi


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh with axis "data" over `devices` (default: all devices of all hosts)."""
  devices = jax.devices() if devices is None else devices
  return jax.make_mesh(
    (len(devices),), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=devices
  )


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Sharding of parameters and optimizer state: a full copy on every device."""
  return NamedSharding(mesh, P())


def data_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Sharding of batches: split on the leading (batch) axis over "data"."""
  return NamedSharding(mesh, P("data"))


def local_batch_size(global_batch_size: int, mesh: jax.sharding.Mesh) -> int:
  """Lists this host feeds per global batch; checks the batch splits evenly over devices."""
  if global_batch_size % mesh.size:
    raise ValueError(f"batch size {global_batch_size} is not divisible by {mesh.size} devices")
  return global_batch_size // jax.process_count()


def shard_batch(batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """This host's part of a global batch (numpy) -> global arrays sharded over "data"."""
  sharding = data_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
