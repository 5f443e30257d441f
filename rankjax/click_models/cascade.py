"""Cascade model (CM): the user scans down and stops at the first click.

  P(C_k = 1 | C_<k) = alpha_{q,d} if nothing above k was clicked, else 0

Closed-form MLE: alpha = clicks / examinations, counting ranks down to the first click (all ranks
of a page without clicks). Clicks below the first one are impossible under the model; their
probability is clipped to 1e-6 in the likelihood.

Simulated: alpha alone (the cascade has no examination parameter).
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
  previous_click_rank,
  segment_sums,
  smoothed_ratio,
)


def init(num_pairs: int, num_ranks: int) -> Params:
  del num_ranks
  return {"alpha": jnp.full((num_pairs,), 0.5)}


def click_probs(params: Params, doc, click, mask) -> jax.Array:
  return jnp.where(previous_click_rank(click, mask) == 0, params["alpha"][doc], 0.0)


def count_sums(doc, click, mask, num_pairs: int, num_ranks: int) -> Sums:
  del num_ranks
  examined = mask & (previous_click_rank(click, mask) == 0)
  return {"alpha": segment_sums(click, doc, examined, num_pairs)}


def m_step(params: Params, sums: Sums, smoothing) -> Params:
  del params
  return {"alpha": smoothed_ratio(sums["alpha"], smoothing)}


def sample(key, params: Params, doc, mask) -> jax.Array:
  doc, mask = jnp.asarray(doc), jnp.asarray(mask)
  u = jax.random.uniform(key, doc.shape)
  attract = params["alpha"][doc]

  def step(done, k):
    c = ~done & (u[:, k] < attract[:, k]) & mask[:, k]
    return done | c, c

  _, clicks = jax.lax.scan(step, jnp.zeros(doc.shape[0], bool), jnp.arange(doc.shape[1]))
  return clicks.T.astype(jnp.float32)


def relevance(params: Params) -> jax.Array:
  return params["alpha"]


def simulation_params(alpha: np.ndarray, num_ranks: int, eta: float, gamma: float) -> dict:
  del num_ranks, eta, gamma
  return {"alpha": alpha}


CASCADE = ClickModel(
  "cascade",
  init,
  click_probs,
  sample,
  relevance,
  simulation_params,
  count_sums=count_sums,
  m_step=m_step,
)
registry.register(MODELS, CASCADE.name)(CASCADE)
