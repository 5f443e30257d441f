"""The whole config checked before any data is read or anything compiled: `check(config)`.

Every named choice is looked up in its registry, by name (the registries themselves, so a new
entry needs no edit here), and every number against its range (`RANGES`, `SEQUENCES`). Each
violation is one line naming the key, the bad value and what is allowed:

  config.total_steps=-5: an integer >= 1
  config.eval.metrics[0]='ndcg@x': the cutoff after '@' must be a positive integer (...)

All of them are collected and raised together as one `ConfigError`. The choices whose registries
live above this layer (the data source, the dropout key, the best checkpoint's mode) are checked
by `rankjax.engine.validate`, which runs these checks too; what needs the dataset (its splits and
label sources) is checked there as soon as the dataset is known.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import pathlib
from collections.abc import Callable, Collection, Iterator

import ml_collections

from rankjax import models, registry, supervision
from rankjax.configs import default as config_defaults
from rankjax.configs.errors import ConfigError
from rankjax.data import schema
from rankjax.ranking import lambdaweights, losses, metrics

MISSING = object()  # what `get` returns for a key the config lacks


@dataclasses.dataclass(frozen=True)
class Range:
  """Numbers from `low` to `high` (None: unbounded; `low_open`: `low` itself excluded), only
  integers if `integer`. Booleans, NaN and strings are never in a range."""

  low: float | None = None
  high: float | None = None
  integer: bool = False
  low_open: bool = False

  def allows(self, value) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
      return False
    if self.integer and not isinstance(value, numbers.Integral):
      return False
    if self.low is not None and (value <= self.low if self.low_open else value < self.low):
      return False
    return self.high is None or value <= self.high

  def __str__(self) -> str:
    """ "an integer >= 1", "a number > 0", "a number in [0, 1]", "a number in (0, 1]"."""
    kind = "an integer" if self.integer else "a number"
    if self.high is None:
      return f"{kind} {'>' if self.low_open else '>='} {self.low}"
    return f"{kind} in {'(' if self.low_open else '['}{self.low}, {self.high}]"


# The numbers of the config: key -> its range.
RANGES = {
  "seed": Range(0, integer=True),
  "total_steps": Range(1, integer=True),
  "log_every": Range(1, integer=True),
  "grad_accum_steps": Range(1, integer=True),
  "data.batch_size": Range(1, integer=True),
  "data.num_threads": Range(0, integer=True),
  "data.token_buckets": Range(0, integer=True),
  "optimizer.lr": Range(0, low_open=True),
  "optimizer.warmup_steps": Range(0, integer=True),
  "optimizer.weight_decay": Range(0),
  "optimizer.clip_norm": Range(0, low_open=True),
  "eval.every": Range(1, integer=True),
  "eval.batch_size": Range(1, integer=True),
  "checkpoint.every": Range(1, integer=True),
  "checkpoint.keep": Range(1, integer=True),
  "supervision.ips_clip": Range(0, 1, low_open=True),
  "supervision.objective_lr_scale": Range(0),
  "supervision.num_positions": Range(1, integer=True),
  "supervision.em_decay": Range(0, 1),
  "supervision.gate.unknown_weight": Range(0, 1),
  "supervision.gate.centre": Range(0),
  "supervision.gate.temperature": Range(0, low_open=True),
  "supervision.anneal_pieces": Range(1, integer=True),
}


@dataclasses.dataclass(frozen=True)
class Each:
  """A sequence of numbers, each in `range`, of `min_length` or more (exactly `length` if set)."""

  range: Range
  min_length: int = 0
  length: int | None = None

  def violation(self, value) -> str | None:
    """What is wrong with `value` (None: nothing)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Collection):
      return f"a sequence: {self}"
    if self.length is not None and len(value) != self.length:
      return f"{self.length} values, each {self.range}"
    if len(value) < self.min_length:
      return f"at least {self.min_length} value(s), each {self.range}"
    bad = [i for i, v in enumerate(value) if not self.range.allows(v)]
    return f"each value {self.range} (not at position {bad[0]})" if bad else None

  def __str__(self) -> str:
    count = f"{self.length}" if self.length is not None else f"at least {self.min_length}"
    return f"{count} value(s), each {self.range}"


# The sequences of numbers of the config: key -> what each holds.
SEQUENCES = {
  "data.list_sizes": Each(Range(1, integer=True), min_length=1),
  "supervision.propensities": Each(Range(0, 1, low_open=True)),
  # The hard gate's weight of each bucket, high to low.
  "supervision.gate.bucket_weights": Each(Range(0, 1), length=len(schema.BUCKETS)),
}

# The names of the config: key -> (the registry of its values, what a value is called).
CHOICES = {
  "supervision.objective": (supervision.OBJECTIVES, "objective"),
  "supervision.source": (schema.SOURCES, "label source"),
  "supervision.weights": (supervision.WEIGHTS, "weights hook"),
  "supervision.gate.name": (supervision.GATES, "gate"),
  "supervision.schedule": (supervision.PRESETS, "schedule preset"),
  "supervision.schedule_mode": (supervision.schedule.MODES, "schedule mode"),
  "eval.label_source": (schema.SOURCES, "label source"),
}

# Loss options that name an entry of a registry: option -> (the registry, what an entry is).
NAMED_LOSS_OPTIONS = {"lambdaweight": (lambdaweights.LAMBDAWEIGHTS, "lambdaweight")}

Check = Callable[[ml_collections.ConfigDict], Iterator[str]]


def get(config, key: str):
  """The value at dotted `key` of `config`, or `MISSING` where the config lacks it."""
  node = config
  for part in key.split("."):
    if not hasattr(node, "keys") or part not in node:
      return MISSING
    node = node[part]
  return node


def known(names: Collection[str]) -> str:
  """The allowed names, sorted, for a message."""
  return ", ".join(sorted(names))


def choice(key: str, value, names: Collection[str], what: str) -> Iterator[str]:
  """A line if `value` (at `key`) is not one of `names`."""
  if not isinstance(value, str) or value not in names:
    yield f"config.{key}={value!r}: unknown {what}; known: {known(names)}"


def _missing_keys(config) -> Iterator[str]:
  """Keys `default_config()` declares that `config` lacks (a config not built on it)."""

  def walk(section, prefix):
    for key, value in section.items():
      name = f"{prefix}{key}"
      if get(config, name) is MISSING:
        yield f"config.{name} is missing: rankjax.configs.default declares it"
      elif isinstance(value, ml_collections.ConfigDict) and name not in ("model", "loss"):
        yield from walk(value, f"{name}.")

  yield from walk(config_defaults.default_config(), "")


def _experiment_keys(config) -> Iterator[str]:
  for key in config_defaults.EXPERIMENT_KEYS:
    if get(config, key) is None:
      yield (
        f"config.{key} is unset: every experiment sets it (rankjax.configs.default.EXPERIMENT_KEYS)"
      )


def _numbers(config) -> Iterator[str]:
  for key, allowed in RANGES.items():
    value = get(config, key)
    unset = value is None and key in config_defaults.EXPERIMENT_KEYS
    if value is not MISSING and not unset and not allowed.allows(value):
      yield f"config.{key}={value!r}: {allowed}"
  for key, each in SEQUENCES.items():
    value = get(config, key)
    unset = value is None and key in config_defaults.EXPERIMENT_KEYS
    if value is not MISSING and not unset:
      wrong = each.violation(value)
      if wrong:
        yield f"config.{key}={_plain(value)!r}: {wrong}"


def _choices(config) -> Iterator[str]:
  for key, (names, what) in CHOICES.items():
    value = get(config, key)
    if value is not MISSING:
      yield from choice(key, value, names, what)


def _model(config) -> Iterator[str]:
  """The model's name among the model modules, and `config.model`'s keys among its fields."""
  name = get(config, "model.name")
  if name is None or name is MISSING:
    return
  names = registry.module_names(models)
  if name not in names:
    yield from choice("model.name", name, names, "model")
    return
  fields = set(config_defaults.model_config(name).keys()) - {"name"}
  for key in sorted(set(config.model.keys()) - fields - {"name"}):
    yield (
      f"config.model.{key}={config.model[key]!r}: model {name!r} has no field {key!r}; "
      f"its fields: {known(fields)}"
    )


def _loss(config) -> Iterator[str]:
  """The loss's name among `losses.LOSSES`, its options among the loss's."""
  spec = get(config, "loss")
  if spec is MISSING:
    return
  name = spec["name"] if hasattr(spec, "keys") and "name" in spec else MISSING
  if name is not MISSING and (not isinstance(name, str) or name not in losses.LOSSES):
    yield from choice("loss.name", name, losses.LOSSES, "loss")
    return
  try:
    losses.get_loss(spec)
  except (ValueError, TypeError) as e:
    yield f"config.loss={_plain(spec)!r}: {e}"
    return
  for option, (names, what) in NAMED_LOSS_OPTIONS.items():
    value = spec.get(option, MISSING)
    if isinstance(value, str):
      yield from choice(f"loss.{option}", value, names, what)


def _metric_specs(config) -> Iterator[str]:
  specs = get(config, "eval.metrics")
  if specs is MISSING:
    return
  if isinstance(specs, str) or not isinstance(specs, Collection):
    yield f"config.eval.metrics={specs!r}: a sequence of metric specs, e.g. ('ndcg@10', 'pnr')"
    return
  for i, spec in enumerate(specs):
    try:
      metrics.parse_spec(spec)
    except ValueError as e:  # registry.UnknownName too
      yield f"config.eval.metrics[{i}]={spec!r}: {e}"


def _splits(config) -> Iterator[str]:
  splits = get(config, "eval.splits")
  if splits is MISSING:
    return
  if (
    isinstance(splits, str)
    or not isinstance(splits, Collection)
    or not all(isinstance(s, str) for s in splits)
  ):
    yield f"config.eval.splits={splits!r}: a sequence of split names, e.g. ('validation',)"


def _best_metric(config) -> Iterator[str]:
  """`checkpoint.best_metric`: "" or <split>/<metric spec>/<bucket> of what evaluation reports."""
  best = get(config, "checkpoint.best_metric")
  if best is MISSING or best == "":
    return
  splits, specs = (_names(get(config, key)) for key in ("eval.splits", "eval.metrics"))
  parts = best.split("/") if isinstance(best, str) else ()
  if len(parts) != 3 or parts[0] not in splits or parts[1] not in specs:
    yield (
      f"config.checkpoint.best_metric={best!r}: '' or <split>/<metric>/<bucket>, <split> one of "
      f"config.eval.splits {splits}, <metric> one of config.eval.metrics {specs}, <bucket> one "
      f"of {known(metrics.BUCKETS)}"
    )
  elif parts[2] not in metrics.BUCKETS:
    yield (
      f"config.checkpoint.best_metric={best!r}: unknown bucket {parts[2]!r}; known: "
      f"{known(metrics.BUCKETS)}"
    )


def _stages(config) -> Iterator[str]:
  """Explicit data schedule stages compile (`schedule.compile_stages`); the data schedule's
  iterator does not combine with length-grouped batches."""
  stages = get(config, "supervision.stages")
  if stages is not MISSING and stages:
    try:
      supervision.schedule.compile_stages([dict(s) for s in stages])
    except KeyError as e:
      yield f"config.supervision.stages: a stage lacks the key {e}"
    except (ValueError, TypeError) as e:
      yield f"config.supervision.stages: {e}"
  if (
    get(config, "supervision.objective") == "data_schedule"
    and get(config, "supervision.schedule_mode") == "iterator"
    and get(config, "data.length_grouped") is True
  ):
    yield (
      "config.supervision.schedule_mode='iterator': the data schedule's iterator mixes lists by "
      "bucket and source, which config.data.length_grouped=True would regroup by length; set "
      "config.supervision.schedule_mode='per_list' or config.data.length_grouped=False"
    )


def _data_path(config) -> Iterator[str]:
  path = get(config, "data.path")
  if isinstance(path, str) and path and not (pathlib.Path(path) / "dataset_info.json").is_file():
    yield (
      f"config.data.path={path!r}: not a prepared dataset (no dataset_info.json); write one with "
      "`rankjax data prepare ... --output DIR --name NAME` and give DIR/NAME/1.0.0"
    )


def _names(value) -> tuple:
  """A sequence of names as a tuple; () for anything else (reported by its own check)."""
  if isinstance(value, str) or not isinstance(value, Collection):
    return ()
  return tuple(value)


def _plain(value):
  """A ConfigDict as a dict, a list as a tuple, for a message."""
  if isinstance(value, ml_collections.ConfigDict):
    return value.to_dict()
  return tuple(value) if isinstance(value, list) else value


CHECKS: tuple[Check, ...] = (
  _missing_keys,
  _experiment_keys,
  _numbers,
  _choices,
  _model,
  _loss,
  _metric_specs,
  _splits,
  _best_metric,
  _stages,
  _data_path,
)


def problems(config: ml_collections.ConfigDict, checks: tuple[Check, ...] = CHECKS) -> list[str]:
  """Every violation `checks` find in `config`, one line each (empty: none)."""
  return [line for check_fn in checks for line in check_fn(config)]


def raise_problems(lines: list[str]) -> None:
  """A `ConfigError` of `lines`, if there are any."""
  if lines:
    raise ConfigError(lines)


def check(config: ml_collections.ConfigDict) -> None:
  """Raises a `ConfigError` of every violation `CHECKS` find in `config`.

  >>> from rankjax.configs import default
  >>> c = default.default_config()
  >>> c.update({"total_steps": -5, "data": {"name": "x", "list_sizes": (0,)},
  ...           "model": {"name": "mlp"}, "eval": {"every": 1}, "checkpoint": {"every": 1}})
  >>> check(c)
  Traceback (most recent call last):
  rankjax.configs.errors.ConfigError: config.total_steps=-5: an integer >= 1
  config.data.list_sizes=(0,): each value an integer >= 1 (not at position 0)
  """
  raise_problems(problems(config))
