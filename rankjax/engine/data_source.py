"""Where a run's data comes from: one resolver, `resolve(config, workdir)`, for every source.

`config.data` names the source (keys and defaults: `rankjax.configs.default`):

  data.path                 a prepared dataset directory (`rankjax.data.store`), used as it is;
  else data.name = "demo_world"   the simulated world of `data.world` (`rankjax.sim.world`);
  else data.name in svmlight.DATASETS   a known svmlight set (`rankjax.data.svmlight`).

Any other name is a `registry.UnknownName` listing the svmlight sets. The last two are prepared
once under `data.cache_dir` (default `<workdir>/data`) and reused by later runs. With several
hosts, host 0 writes and the others wait for it, then read.
"""

from __future__ import annotations

import os
import pathlib

import jax
import ml_collections
from jax.experimental import multihost_utils

from rankjax import registry
from rankjax.data import store, svmlight
from rankjax.sim import world

WORLD = "demo_world"  # the `data.name` of the simulated world


def resolve(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike
) -> tuple[pathlib.Path, dict | None]:
  """(the prepared dataset's directory, its metadata) for `config.data`, preparing it if needed.

  The metadata is the world's (`rankjax.sim.world.make_world`: its parameters, the PBM
  propensities fitted on its click log, ...) for the demo world, None for the other sources.
  """
  data = config.data
  if data.path:
    return pathlib.Path(data.path), None
  cache = pathlib.Path(data.cache_dir or pathlib.Path(workdir) / "data")
  if data.name == WORLD:
    parameters = world.WorldConfig(**data.world.to_dict())
    if jax.process_index() == 0:
      world.build(cache, parameters)
    _wait_for_host_0("rankjax:demo_world")
    return world.build(cache, parameters)  # built: this reads it
  try:
    splits = registry.lookup(svmlight.DATASETS, data.name, "svmlight dataset")
  except registry.UnknownName as e:
    raise registry.UnknownName(
      f"config.data.path is empty and config.data.name {data.name!r} is not {WORLD!r}: {e}"
    ) from None
  if jax.process_index() == 0:
    store.ensure_dataset(cache, data.name, splits)
  _wait_for_host_0("rankjax:prepare_data")
  return cache / data.name / store.VERSION, None


def _wait_for_host_0(name: str):
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)
