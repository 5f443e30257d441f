"""Supervision: which labels train the ranker, with which item weights, under which objective.

An objective turns the model's scores on a training batch into the scalar loss:
  objective(scores f32[B, L], batch, *, step, config) -> (loss, aux: dict of scalars)
The config chooses it by name (`config.supervision.objective`). The default, "single", trains on
one label source (`config.supervision.source`, one of click / llm / human): labels
`label_<source>` where `mask & mask_<source>` (and the list is real), the loss
`config.loss` from `rankjax.ranking.losses`, and per-item weights from the weights hook named by
`config.supervision.weights`.

A weights hook is `fn(batch, config) -> f32[B, L] | None`; "none" gives None (unweighted).
Click debiasing (IPS, ...) is one more hook; a data schedule or a frequency-gated multi-objective
is one more objective; either is then one config line.

An objective with its own variables (a propensity model, a position tower, EM statistics) has
  objective.init(rng, config) -> {"params": pytree, "state": pytree}
and is called with them, returning their new non-gradient state:
  objective(scores, batch, *, step, config, variables) -> (loss, aux, new_state)
The trainer keeps them in `TrainState.objective` (so checkpoints hold them and a resumed run is
exact), trains "params" together with the model's params under the same optimizer, replaces
"state" by `new_state`, and never uses either to score or evaluate. `rankjax.supervision.ultr` has examples.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from rankjax.supervision import hybrid
from rankjax.ranking import losses
from rankjax import registry
from rankjax.supervision import ultr


def no_weights(batch, config):
  """Every labelled item counts once."""
  del batch, config
  return None


def ips_pbm(batch, config):
  """Inverse propensity weights theta_1 / theta_position for click labels (IPS with PBM propensities).

  theta is the examination probability per rank, rank 1 first, from a position-based click model
  (`config.supervision.propensities`, e.g. `rankjax.click_models.fit(PBM, log).params["theta"]`);
  the relative propensity is clipped below at `config.supervision.ips_clip` (default 0.01). Unknown
  positions (0) weigh as rank 1, ranks past the last as the last.
  """
  theta = jnp.asarray(config.supervision.propensities, jnp.float32)
  k = jnp.clip(batch["position"] - 1, 0, theta.shape[0] - 1)
  return 1.0 / jnp.maximum(theta[k] / theta[0], config.supervision.get("ips_clip", 0.01))


WEIGHTS: dict[str, Callable] = {"none": no_weights, "ips_pbm": ips_pbm}


def labels_and_where(batch, source: str):
  """(labels f32[B, L], where bool[B, L]) of one label source: real items that have its label."""
  if f"label_{source}" not in batch:
    have = sorted(k[len("label_"):] for k in batch if k.startswith("label_"))
    raise KeyError(f"the data has no labels from source {source!r}; it has {have}")
  where = batch["mask"] & batch[f"mask_{source}"] & batch["list_valid"][:, None]
  return batch[f"label_{source}"], where


def single_source(scores, batch, *, step, config):
  """The loss on one label source, optionally weighted per item."""
  del step
  labels, where = labels_and_where(batch, config.supervision.source)
  weights = registry.lookup(WEIGHTS, config.supervision.weights, "weights")(batch, config)
  loss = losses.get_loss(config.loss)(scores, labels, where=where, weights=weights,
                                      reduce_fn=jnp.mean)
  return loss, {"labelled_items": jnp.sum(where)}


OBJECTIVES: dict[str, Callable] = {"single": single_source,
                                   "freq_multi_objective": hybrid.freq_multi_objective,
                                   "data_schedule": hybrid.data_schedule, **ultr.OBJECTIVES}


def get_objective(name: str) -> Callable:
  """The objective registered as `name` in `OBJECTIVES`."""
  return registry.lookup(OBJECTIVES, name, "objective")
