"""Supervision: which labels train the ranker, with which weights, under which objective.

An objective (`objective.Objective`, chosen by `config.supervision.objective`) is a pair:
  init(rng, config) -> {"params", "state"}, its own variables (empty for most);
  apply(scores, batch, *, step, config, variables) -> (loss, aux, new state).
A loss function without variables becomes one with `stateless`. Before training, the engine runs
`prepare`: the `prepare(config, context)` hooks of the chosen objective, weights hook and gate;
`label_sources(config)` says which labels they read, by the config key that chose them.

To add an objective (or a weights hook, gate or schedule preset): one function in its module (or
your own), registered where it is defined, then one config line:

  @registry.register(OBJECTIVES, "mine")
  @stateless
  def mine(scores, batch, *, step, config): ...

  config.supervision.objective = "mine"

Modules: objective (protocol, registry, preparation), labels (the label rule), weights, gates,
single, multi_objective, schedule, ultr.
"""

from rankjax.supervision import (
  gates,
  labels,
  multi_objective,
  objective,
  schedule,
  single,
  ultr,
  weights,
)
from rankjax.supervision.gates import GATES, fit_gate, gate_targets
from rankjax.supervision.labels import labels_and_where
from rankjax.supervision.objective import (
  OBJECTIVES,
  Context,
  Objective,
  data_phases,
  get_objective,
  label_sources,
  prepare,
  stateless,
)
from rankjax.supervision.schedule import PRESETS
from rankjax.supervision.weights import WEIGHTS

__all__ = [
  "GATES",
  "OBJECTIVES",
  "PRESETS",
  "WEIGHTS",
  "Context",
  "Objective",
  "data_phases",
  "fit_gate",
  "gate_targets",
  "gates",
  "get_objective",
  "label_sources",
  "labels",
  "labels_and_where",
  "multi_objective",
  "objective",
  "prepare",
  "schedule",
  "single",
  "stateless",
  "ultr",
  "weights",
]
