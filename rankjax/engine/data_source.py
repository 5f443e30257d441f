"""Where a run's data comes from: one resolver, `resolve(config, workdir)`, for every source.

`config.data` names the source (keys and defaults: `rankjax.configs.default`):

  data.path                 a prepared dataset directory (`rankjax.data.store`), used as it is;
  else data.name = "demo_world"   the simulated world of `data.world` (`rankjax.sim.world`);
  else data.name in svmlight.DATASETS   a known svmlight set (`rankjax.data.svmlight`);
  else data.name a path:
    a prepared dataset: its directory, or a directory holding one (`rankjax data prepare`'s
      `--output DIR` with one dataset in it, or DIR/NAME), used as it is;
    a LETOR / svmlight file: its queries split into train / validation / test like `prepare`'s
      (`rankjax.data.splits.by_unit`, `LETOR_TEST_FRACTION`, `LETOR_VALIDATION_FRACTION`);
    a LETOR fold directory (MSLR's `train.txt`, `vali.txt`, `test.txt`): its three files.

Any other name is a `registry.UnknownName` listing the svmlight sets. The world, the svmlight sets
and LETOR files are prepared once under `data.cache_dir` (default `<workdir>/data`) and reused by
later runs. With several hosts, host 0 writes and the others wait for it, then read.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re

import jax
import ml_collections
from jax.experimental import multihost_utils

from rankjax import registry
from rankjax.data import schema, splits, store, svmlight
from rankjax.sim import world

WORLD = "demo_world"  # the `data.name` of the simulated world
# A LETOR file's queries held out, as `rankjax data prepare`'s defaults hold out a log's.
LETOR_TEST_FRACTION = 0.2
LETOR_VALIDATION_FRACTION = 0.1
# A LETOR fold directory's files (MSLR-WEB10K/30K, LETOR 4.0), by split.
LETOR_FOLD = {"train": "train.txt", "validation": "vali.txt", "test": "test.txt"}


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
  local = pathlib.Path(data.name).expanduser()
  if data.name in svmlight.DATASETS:
    name, make_splits = data.name, svmlight.DATASETS[data.name]
  elif local.exists():
    prepared = _prepared_in(local)
    if prepared is not None:
      return prepared, None
    make_splits = _letor_splits(local)  # a directory that is not a LETOR fold is an error here
    name = _letor_name(local)
  elif os.sep in data.name:
    raise FileNotFoundError(f"config.data.name {data.name!r}: no such file or directory")
  else:
    raise registry.UnknownName(
      f"config.data.path is empty and config.data.name {data.name!r} is not {WORLD!r}, "
      f"nor a known svmlight dataset ({', '.join(sorted(svmlight.DATASETS))}), nor a path to a "
      "prepared dataset directory or a LETOR / svmlight file"
    )
  if jax.process_index() == 0:
    store.ensure_dataset(cache, name, make_splits, description=data.name)
  _wait_for_host_0("rankjax:prepare_data")
  return cache / name / store.VERSION, None


def _prepared_in(path: pathlib.Path) -> pathlib.Path | None:
  """The prepared dataset at `path`: the directory itself, `path/<version>`, or the one
  `path/NAME/<version>`; None where `path` holds none; several are an error listing them."""
  if path.is_file():
    return None
  for candidate in (path, path / store.VERSION):
    if (candidate / "dataset_info.json").exists():
      return candidate
  found = sorted(p.parent for p in path.glob(f"*/{store.VERSION}/dataset_info.json"))
  if len(found) > 1:
    # One line, as for a missing dataset: the one dataset asked for is not found.
    raise FileNotFoundError(
      f"config.data.name {str(path)!r} holds several prepared datasets "
      f"({', '.join(p.parent.name for p in found)}): give one, e.g. {found[0].parent}"
    )
  return found[0] if found else None


def _letor_name(path: pathlib.Path) -> str:
  """The cache name of a LETOR file or fold directory: its name and a hash of where it is and
  when it changed, so that an edited file is prepared again."""
  real = path.resolve()
  stat = (real / LETOR_FOLD["train"] if real.is_dir() else real).stat()
  key = f"{real}:{stat.st_size}:{stat.st_mtime_ns}"
  stem = re.sub(r"\W+", "_", real.name.lower()).strip("_") or "letor"
  return f"{stem}_{hashlib.blake2b(key.encode(), digest_size=4).hexdigest()}"


def _letor_splits(path: pathlib.Path):
  """() -> {split: lists} of a LETOR file (split by query hash) or fold directory."""
  if path.is_dir():
    missing = [f for f in LETOR_FOLD.values() if not (path / f).exists()]
    if missing:
      raise FileNotFoundError(
        f"config.data.name {str(path)!r}: no prepared dataset (dataset_info.json) in it, and not "
        f"a LETOR fold directory (no {', '.join(missing)})"
      )

    def fold() -> dict[str, list[schema.RankingList]]:
      train = svmlight.read_svmlight(path / LETOR_FOLD["train"])
      width = train[0].features.shape[1]
      return {
        "train": train,
        **{
          s: svmlight.read_svmlight(path / f, num_features=width)
          for s, f in LETOR_FOLD.items()
          if s != "train"
        },
      }

    return fold

  def by_query() -> dict[str, list[schema.RankingList]]:
    lists = svmlight.read_svmlight(path)
    split_of = splits.by_unit(
      {x.qid: x.qid for x in lists}, LETOR_TEST_FRACTION, LETOR_VALIDATION_FRACTION
    )
    out = {s: [x for x in lists if split_of[x.qid] == s] for s in ("train", "validation", "test")}
    return {s: v for s, v in out.items() if v}

  return by_query


def _wait_for_host_0(name: str):
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)
