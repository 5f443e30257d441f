"""The Objective protocol, the `OBJECTIVES` registry, and preparation before training.

An objective turns the model's scores on a training batch into the scalar loss. As an optax
`GradientTransformation` is a pair of functions, an objective is a pair:

  init(rng, config) -> {"params": pytree, "state": pytree}
  apply(scores f32[B, L], batch, *, step, config, variables) -> (loss, aux, new_state)

`variables` is what `init` made, as trained so far: the objective's own variables (a propensity
model, a position tower, EM statistics). The trainer keeps them in `TrainState.objective` (so
checkpoints hold them and a resumed run is exact), trains "params" together with the model's
params under the same optimizer, replaces "state" by `new_state`, and never uses either to score
or evaluate. `aux` is a dict of scalars (or dicts of them), logged as "train/<name>".

Most objectives have no variables: a loss function `fn(scores, batch, *, step, config) -> (loss,
aux)` becomes an objective with empty ones by `stateless` (as `optax.stateless`), once, where it
is registered:

  @registry.register(OBJECTIVES, "my_objective")
  @objective.stateless
  def my_objective(scores, batch, *, step, config): ...

and one with variables is a class with static `init` and `apply` (`rankjax.supervision.ultr`).

Preparation: an objective, weights hook or gate that needs something computed from the data
before training (the learned gate's fit, IPS propensities from the dataset) has a `prepare`
attribute, `prepare(config, context: Context) -> dict`, returning updates of
`config.supervision`. `prepare` below runs them once; the engine trains with, and saves, the
prepared config.

Label sources: an objective or gate that reads labels has a `label_sources` attribute,
`label_sources(config) -> {config key: sources}`: the key that chose them (e.g.
"supervision.source") and the label sources it makes training read. `label_sources` below
gathers them, so that a dataset without one is refused before anything compiles
(`rankjax.engine.validate.check_data`). A stateless objective declares it with
`@stateless(label_sources=...)`.

Training stream: an objective that decides which lists train on which label source (the data
schedule) has a `data_phases` attribute, `data_phases(config) -> [rankjax.data.phases.Phase] |
None`; the engine then builds the training batches from those mixtures (each list with its
"source_id") instead of the shuffled split (`data_phases` below; None: the shuffled split).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Any, Callable, Mapping, Protocol

from rankjax import registry
from rankjax.supervision import gates, weights


class Objective(Protocol):
  """What the trainer calls (module docstring)."""

  def init(self, rng, config) -> dict:
    """{"params": pytree, "state": pytree}, the objective's own variables."""

  def apply(self, scores, batch, *, step, config, variables) -> tuple[Any, dict, Any]:
    """(loss, aux, new state) of a batch's scores, given the variables' current values."""


OBJECTIVES: dict[str, Objective] = {}


def get_objective(name: str) -> Objective:
  """The objective registered as `name` in `OBJECTIVES`."""
  return registry.lookup(OBJECTIVES, name, "objective")


@dataclasses.dataclass(frozen=True)
class Stateless:
  """An objective without variables: `loss_fn(scores, batch, *, step, config) -> (loss, aux)`.

  >>> def mean_score(scores, batch, *, step, config):
  ...   return scores.mean(), {}
  >>> objective = stateless(mean_score)
  >>> variables = objective.init(None, None)
  >>> variables
  {'params': {}, 'state': {}}
  >>> objective.apply(jnp.ones((2, 3)), {}, step=0, config=None, variables=variables)
  (Array(1., dtype=float32), {}, {})
  """

  loss_fn: Callable
  # config -> {config key: the label sources it makes the objective read} (module docstring).
  label_sources: Callable[[Any], dict[str, tuple[str, ...]]] | None = None
  data_phases: Callable | None = None  # the training stream's mixtures (module doc)

  def init(self, rng, config) -> dict:
    del rng, config
    return {"params": {}, "state": {}}

  def apply(self, scores, batch, *, step, config, variables):
    loss, aux = self.loss_fn(scores, batch, step=step, config=config)
    return loss, aux, variables["state"]


def stateless(loss_fn: Callable | None = None, *, label_sources: Callable | None = None):
  """`loss_fn` as an objective with empty variables (a decorator; `Stateless`): `@stateless`, or
  `@stateless(label_sources=fn)` for one that declares the label sources it reads."""
  if loss_fn is None:
    return functools.partial(stateless, label_sources=label_sources)
  return Stateless(loss_fn, label_sources)


def data_phases(config):
  """The chosen objective's mixtures of the training stream (`rankjax.data.phases.Phase`s), or
  None for the shuffled split (module doc)."""
  hook = getattr(get_objective(config.supervision.objective), "data_phases", None)
  return None if hook is None else hook(config)


@dataclasses.dataclass
class Context:
  """What preparation may read, and where it leaves its account.

  Attributes:
    data_path: the prepared dataset (`open_split`).
    metadata: what the dataset's maker knows about it, e.g. the demo world's
      {"propensities": PBM propensities fitted on its click log}; empty if nothing.
    notes: lines a hook leaves on what it did (the run prints them, the study reports them).
  """

  data_path: pathlib.Path
  metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  notes: list[str] = dataclasses.field(default_factory=list)

  def open_split(self, name: str):
    """The dataset's split `name` (`rankjax.data.store.Split`)."""
    # Imported here: the store needs tensorflow_datasets, which the training step must not.
    from rankjax.data import store  # pylint: disable=g-import-not-at-top

    return store.open_split(self.data_path, name)


def label_sources(config) -> dict[str, tuple[str, ...]]:
  """{config key: label sources}: the labels training with `config` reads, by the key of
  `config` that chose them, as the objective and gate `config.supervision` names declare them
  (their `label_sources` attribute; module docstring).

  >>> import ml_collections
  >>> label_sources(ml_collections.ConfigDict({"supervision": {
  ...     "objective": "dla", "gate": {"name": "linear"}}}))
  {'supervision.objective': ('click',)}
  """
  out = {}
  for entry in (get_objective(config.supervision.objective), gates.chosen(config)):
    declared = getattr(entry, "label_sources", None)
    if declared is not None:
      for key, sources in declared(config).items():
        out[key] = tuple(dict.fromkeys((*out.get(key, ()), *sources)))
  return out


def prepare(config, context: Context):
  """The config training runs with: `config.supervision` updated by the preparation hooks.

  The hooks are those of the objective, the weights hook and the gate `config.supervision`
  names, run in that order, each on the config as the hooks before it left it. `config` itself
  is not changed (a locked config stays locked; the updates set declared keys).

  Returns:
    (prepared config, the hooks' notes).
  """
  prepared = config.copy_and_resolve_references()
  for entry in (
    get_objective(config.supervision.objective),
    weights.chosen(config),
    gates.chosen(config),
  ):
    hook = getattr(entry, "prepare", None)
    if hook is not None:
      prepared.supervision.update(hook(prepared, context))
  return prepared, context.notes
