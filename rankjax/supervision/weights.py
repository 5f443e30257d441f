"""Weights hooks, `WEIGHTS`: per-item weights of click labels (`config.supervision.weights`).

A weights hook is `fn(batch, config) -> f32[B, L] | None` ("none" gives None: unweighted). The
single-source objective weighs its labels with it, the hybrid objectives their click loss. Click
debiasing (IPS, ...) is one more hook, registered where it is defined:

  @registry.register(WEIGHTS, "my_weights")
  def my_weights(batch, config): ...

A hook that needs something computed before training sets `fn.prepare` (`objective.prepare`).
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from rankjax import registry

WEIGHTS: dict[str, Callable] = {}


def chosen(config) -> Callable:
  """The weights hook `config.supervision.weights` names."""
  return registry.lookup(WEIGHTS, config.supervision.weights, "weights")


@registry.register(WEIGHTS, "none")
def no_weights(batch, config):
  """Every labelled item counts once."""
  del batch, config
  return None


@registry.register(WEIGHTS, "ips_pbm")
def ips_pbm(batch, config):
  """Inverse propensity weights theta_1 / theta_position of click labels (IPS, PBM propensities).

  theta is the examination probability per rank, rank 1 first, from a position-based click model
  (`config.supervision.propensities`, e.g. `rankjax.click_models.fit(PBM, log).params["theta"]`;
  empty: the dataset's, filled before training by `fill_propensities`); the relative propensity
  is clipped below at `config.supervision.ips_clip`. Unknown positions (0) weigh as rank 1,
  ranks past the last as the last.

  >>> import ml_collections
  >>> config = ml_collections.ConfigDict({"supervision": {"propensities": (1.0, 0.5, 0.001),
  ...                                                     "ips_clip": 0.01}})
  >>> ips_pbm({"position": jnp.array([[0, 1, 2, 3, 9]])}, config).tolist()
  [[1.0, 1.0, 2.0, 100.0, 100.0]]
  """
  theta = jnp.asarray(config.supervision.propensities, jnp.float32)
  k = jnp.clip(batch["position"] - 1, 0, theta.shape[0] - 1)
  return 1.0 / jnp.maximum(theta[k] / theta[0], config.supervision.ips_clip)


def fill_propensities(config, context) -> dict:
  """Preparation of `ips_pbm`: empty `config.supervision.propensities` from the dataset's.

  The dataset's metadata (`context.metadata["propensities"]`, e.g. the demo world's PBM fit on
  its own click log) fills them; without either it is an error saying how to get them.
  """
  if len(config.supervision.propensities):
    return {}
  fitted = context.metadata.get("propensities")
  if not fitted:
    raise ValueError(
      "weights 'ips_pbm' needs click propensities: config.supervision.propensities is empty "
      "and the dataset's metadata has none. Set it to the examination probability per rank, "
      "rank 1 first, e.g. from a PBM fit on the click log (`python -m rankjax.click_models "
      "--model pbm --format FMT FILES`, or `rankjax.click_models.fit`), or use "
      "config.supervision.weights = 'none'"
    )
  return {"propensities": tuple(float(p) for p in fitted)}


ips_pbm.prepare = fill_propensities
