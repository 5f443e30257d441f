"""Position-based model (PBM): a click needs examination of the rank and attraction of the doc.

  P(C_k = 1) = theta_k * alpha_{q,d}

EM: given a non-click, P(E = 1 | C = 0) = theta (1 - alpha) / (1 - theta alpha) and
P(A = 1 | C = 0) = alpha (1 - theta) / (1 - theta alpha); a click means E = A = 1. theta is the mean
posterior examination per rank, alpha the mean posterior attraction per pair.

Simulated: theta_k = k ** -eta.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rankjax import registry
from rankjax.click_models.base import MODELS, ClickModel, Params, segment_mean


def init(num_pairs: int, num_ranks: int) -> Params:
  return {"theta": jnp.full((num_ranks,), 0.5), "alpha": jnp.full((num_pairs,), 0.5)}


def click_probs(params: Params, doc, click, mask) -> jax.Array:
  del click, mask
  return params["theta"] * params["alpha"][doc]


def em_step(params: Params, doc, click, mask, smoothing: float) -> Params:
  theta = jnp.broadcast_to(params["theta"], doc.shape)
  alpha = params["alpha"][doc]
  denom = jnp.maximum(1 - theta * alpha, 1e-12)
  post_e = click + (1 - click) * theta * (1 - alpha) / denom
  post_a = click + (1 - click) * alpha * (1 - theta) / denom
  w = mask.astype(jnp.float32)
  new_theta = (post_e * w).sum(0) / jnp.maximum(w.sum(0), 1)
  return {
    "theta": new_theta,
    "alpha": segment_mean(post_a, doc, mask, params["alpha"].shape[0], smoothing),
  }


def sample(key, params: Params, doc, mask) -> jax.Array:
  doc, mask = jnp.asarray(doc), jnp.asarray(mask)
  ke, ka = jax.random.split(key)
  examined = jax.random.bernoulli(ke, jnp.broadcast_to(params["theta"], doc.shape))
  attracted = jax.random.bernoulli(ka, params["alpha"][doc])
  return (examined & attracted & mask).astype(jnp.float32)


def relevance(params: Params) -> jax.Array:
  return params["alpha"]


def propensity(params: Params) -> jax.Array:
  return params["theta"]


def simulation_params(alpha: np.ndarray, num_ranks: int, eta: float, gamma: float) -> dict:
  """theta_k = k ** -eta.

  >>> theta = simulation_params(np.float32([0.5]), 3, eta=1.0, gamma=0.9)["theta"]
  >>> theta.astype(float).round(3).tolist()
  [1.0, 0.5, 0.333]
  """
  del gamma
  k = np.arange(1, num_ranks + 1, dtype=np.float32)
  return {"theta": k**-eta, "alpha": alpha}


PBM = ClickModel(
  "pbm",
  init,
  click_probs,
  sample,
  relevance,
  simulation_params,
  em_step=em_step,
  propensity=propensity,
)
registry.register(MODELS, PBM.name)(PBM)
