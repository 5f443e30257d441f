"""The config checked before a run: `check(config)` before anything else, `check_data(config,
data_path)` once the dataset is known, before anything compiles: its splits, and the label
sources evaluation, the objective and the gate read.

`check` is `rankjax.configs.validate`'s checks plus the choices whose registries live in the
engine: the data source (`data_source`), the dropout key (`step.DROPOUT_RNG_IMPLS`) and the best
checkpoint's mode (`checkpoint.BEST_MODES`). Each violation is one line naming the key, the bad
value and what is allowed; all are raised together as one `ConfigError`.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import ml_collections

from rankjax import supervision
from rankjax.configs import validate as config_validate
from rankjax.data import mixture, schema, store, svmlight
from rankjax.engine import checkpoint, data_source, step


def _data_name(config) -> Iterator[str]:
  """Without `data.path`, `data.name` is the demo world, a known svmlight set or a path (a prepared
  dataset or LETOR data, which `data_source.resolve` reads, naming a path that is missing)."""
  path, name = (config_validate.get(config, k) for k in ("data.path", "data.name"))
  if path or name in (None, config_validate.MISSING):  # None: unset, reported as such
    return
  if isinstance(name, str) and (os.sep in name or pathlib.Path(name).expanduser().exists()):
    return
  names = [data_source.WORLD, *svmlight.DATASETS]
  if name not in names:
    yield (
      f"config.data.name={name!r}: config.data.path is empty and this is no known dataset; "
      f"known: {config_validate.known(names)}"
    )


# The engine's names: key -> (the registry of its values, what a value is called).
CHOICES = {
  "dropout_rng_impl": (step.DROPOUT_RNG_IMPLS, "dropout key implementation"),
  "checkpoint.best_mode": (checkpoint.BEST_MODES, "best mode"),
}


def _choices(config) -> Iterator[str]:
  for key, (names, what) in CHOICES.items():
    value = config_validate.get(config, key)
    if value is not config_validate.MISSING:
      yield from config_validate.choice(key, value, names, what)


def problems(config: ml_collections.ConfigDict) -> list[str]:
  """Every violation of `config` found without its data, one line each (empty: none)."""
  return config_validate.problems(config, (*config_validate.CHECKS, _data_name, _choices))


def check(config: ml_collections.ConfigDict) -> None:
  """Raises a `ConfigError` of every violation of `config` found without its data."""
  config_validate.raise_problems(problems(config))


def _idle_phases(config, train) -> Iterator[str]:
  """A line for each mixture of the data schedule's iterator that has no list of `train` to
  serve (no list of its buckets has labels from its sources)."""
  phases = supervision.data_phases(config)
  if phases is None:
    return
  key = (
    "config.supervision.stages"
    if config.supervision.stages
    else f"config.supervision.schedule={config.supervision.schedule!r}"
  )
  for phase in phases:
    if not mixture.cells(train.buckets, train.label_sources, phase.weights):
      yield (
        f"{key}: from step {phase.start} the data schedule trains no list of {train.path}'s "
        f"train split: none of the buckets it trains has a list with labels from the sources it "
        f"trains them on (the data has {train.layout['sources']})"
      )


def data_problems(config: ml_collections.ConfigDict, data_path: str | pathlib.Path) -> list[str]:
  """Each split (`train`, `config.eval.splits`) the prepared dataset at `data_path` lacks, each
  label source the run reads that it has no labels from (`config.eval.label_source`, and those of
  the objective and gate: `supervision.label_sources`: `config.supervision.source` of "single",
  click and LLM labels of the multi-objective, ...), each source training reads that no list of
  the train split has (e.g. human labels held out whole by `prepare --split-by labelled`), and
  each mixture of a data schedule's iterator with no training list to serve; one line each,
  naming the key."""
  lines = []
  layout = train = None
  for key, name in [
    ("", "train"),
    *((f"config.eval.splits[{i}]", s) for i, s in enumerate(config.eval.splits)),
  ]:
    try:
      split = store.open_split(data_path, name, with_lengths=False)
    except KeyError as e:  # the dataset has no such split; the message lists those it has
      lines.append(f"{key}={name!r}: {e.args[0]}" if key else f"{e.args[0]} (training reads it)")
      continue
    layout = split.layout
    if not key:  # the training split
      train = split
      lines += _idle_phases(config, split)
  if layout is None:
    return lines
  have = layout["sources"]
  trained = _lists_by_source(train) if train is not None else None
  read = {"eval.label_source": (config.eval.label_source,), **supervision.label_sources(config)}
  for key, sources in read.items():
    value = config_validate.get(config, key)
    named = f"config.{key}={value!r}" if isinstance(value, str) else f"config.{key}"
    lines += [
      f"{named}: {data_path} has no labels from {s!r}; it has {have}"
      for s in sources
      if s not in have
    ]
    if trained is not None and key != "eval.label_source":
      lines += [
        f"{named}: no list of {data_path}'s train split has labels from {s!r}, so training "
        f"would learn nothing from them (lists with each source: {trained})"
        for s in sources
        if s in have and not trained[s]
      ]
  return lines


def _lists_by_source(split: store.Split) -> dict[str, int]:
  bits = split.label_sources
  return {s: int((bits >> i & 1).sum()) for i, s in enumerate(schema.SOURCES)}


def check_data(config: ml_collections.ConfigDict, data_path: str | pathlib.Path) -> None:
  """Raises a `ConfigError` of every line of `data_problems`."""
  config_validate.raise_problems(data_problems(config, data_path))
