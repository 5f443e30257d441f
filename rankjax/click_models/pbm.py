"""Position-based model (PBM): a click needs examination of the rank and attraction of the doc.

  P(C_k = 1) = theta_k * alpha_{q,d}

EM: given a non-click, P(E = 1 | C = 0) = theta (1 - alpha) / (1 - theta alpha) and
P(A = 1 | C = 0) = alpha (1 - theta) / (1 - theta alpha); a click means E = A = 1. theta is the mean
posterior examination per rank, alpha the mean posterior attraction per pair. A result's posteriors
depend on it only through (pair, rank, click), so the per-(pair, rank) impressions and clicks are
all of PBM's sufficient statistics: `pair_rank_e_step` runs the E-step on them, in time
O(pairs x ranks) instead of O(pages x ranks).

Simulated: theta_k = k ** -eta.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rankjax import registry
from rankjax.click_models.base import (
  MODELS,
  ClickModel,
  Params,
  Sums,
  examination_posteriors,
  segment_sums,
  smoothed_ratio,
)


def init(num_pairs: int, num_ranks: int) -> Params:
  return {"theta": jnp.full((num_ranks,), 0.5), "alpha": jnp.full((num_pairs,), 0.5)}


def click_probs(params: Params, doc, click, mask) -> jax.Array:
  del click, mask
  return params["theta"] * params["alpha"][doc]


def e_step(params: Params, doc, click, mask) -> Sums:
  theta = jnp.broadcast_to(params["theta"], doc.shape)
  post_e, post_a = examination_posteriors(theta, params["alpha"][doc], click)
  w = mask.astype(jnp.float32)
  return {
    "theta": ((post_e * w).sum(0), w.sum(0)),
    "alpha": segment_sums(post_a, doc, mask, params["alpha"].shape[0]),
  }


def pair_rank_e_step(params: Params, impressions, clicks) -> Sums:
  """`e_step` from impressions and clicks per (pair, rank), [P, K]: the same sums."""
  post_e, post_a = examination_posteriors(params["theta"], params["alpha"][:, None], 0.0)
  skips = impressions - clicks  # shown, not clicked: the posteriors above; a click counts 1
  # Cells never shown add nothing, also where an unseen pair's alpha is 0 / 0 (no smoothing).
  e = clicks + jnp.where(skips > 0, skips * post_e, 0.0)
  a = clicks + jnp.where(skips > 0, skips * post_a, 0.0)
  return {"theta": (e.sum(0), impressions.sum(0)), "alpha": (a.sum(1), impressions.sum(1))}


def m_step(params: Params, sums: Sums, smoothing) -> Params:
  del params
  num, den = sums["theta"]
  return {"theta": num / jnp.maximum(den, 1), "alpha": smoothed_ratio(sums["alpha"], smoothing)}


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
  e_step=e_step,
  m_step=m_step,
  pair_rank_e_step=pair_rank_e_step,
  propensity=propensity,
)
registry.register(MODELS, PBM.name)(PBM)
