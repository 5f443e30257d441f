"""User browsing model (UBM): examination depends on the rank and on the rank of the previous click.

  P(C_k = 1 | C_<k) = gamma[k, r'] * alpha_{q,d},   r' = rank of the last click above k (0: none)

EM as for PBM, with gamma in place of theta, averaged per (k, r') cell. The position propensity
reported is gamma[k, 0], the examination of rank k when nothing above it was clicked.

Simulated: gamma[k, r'] = (k - r') ** -eta after a click at r', theta_k = k ** -eta with no click
above (ranks 1-based).
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
  previous_click_rank,
  segment_sums,
  smoothed_ratio,
)


def init(num_pairs: int, num_ranks: int) -> Params:
  return {"gamma": jnp.full((num_ranks, num_ranks), 0.5), "alpha": jnp.full((num_pairs,), 0.5)}


def _gamma(params: Params, click, mask) -> jax.Array:
  k = jnp.arange(click.shape[-1])
  return params["gamma"][k, previous_click_rank(click, mask)]


def click_probs(params: Params, doc, click, mask) -> jax.Array:
  return _gamma(params, click, mask) * params["alpha"][doc]


def e_step(params: Params, doc, click, mask) -> Sums:
  post_e, post_a = examination_posteriors(_gamma(params, click, mask), params["alpha"][doc], click)
  num_ranks = click.shape[-1]
  cell = (jnp.arange(num_ranks) * num_ranks + previous_click_rank(click, mask)).ravel()
  w = mask.astype(jnp.float32)
  return {
    "gamma": tuple(
      jax.ops.segment_sum(x.ravel(), cell, num_segments=num_ranks * num_ranks).reshape(
        num_ranks, num_ranks
      )
      for x in (post_e * w, w)
    ),
    "alpha": segment_sums(post_a, doc, mask, params["alpha"].shape[0]),
  }


def m_step(params: Params, sums: Sums, smoothing) -> Params:
  num, den = sums["gamma"]
  return {
    "gamma": jnp.where(den > 0, num / jnp.maximum(den, 1), params["gamma"]),
    "alpha": smoothed_ratio(sums["alpha"], smoothing),
  }


def sample(key, params: Params, doc, mask) -> jax.Array:
  doc, mask = jnp.asarray(doc), jnp.asarray(mask)
  u = jax.random.uniform(key, doc.shape)
  attract = params["alpha"][doc]

  def step(prev, k):
    p = params["gamma"][k, prev] * attract[:, k]
    c = (u[:, k] < p) & mask[:, k]
    return jnp.where(c, k + 1, prev), c

  _, clicks = jax.lax.scan(step, jnp.zeros(doc.shape[0], jnp.int32), jnp.arange(doc.shape[1]))
  return clicks.T.astype(jnp.float32)


def relevance(params: Params) -> jax.Array:
  return params["alpha"]


def propensity(params: Params) -> jax.Array:
  return params["gamma"][:, 0]


def simulation_params(alpha: np.ndarray, num_ranks: int, eta: float, gamma: float) -> dict:
  """gamma[k, r'] = (k - r') ** -eta after a click at r' (0 above k), k ** -eta with none.

  >>> gamma = simulation_params(np.float32([0.5]), 3, eta=1.0, gamma=0.9)["gamma"]
  >>> gamma.astype(float).round(2).tolist()
  [[1.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.33, 0.5, 1.0]]
  """
  del gamma
  k = np.arange(1, num_ranks + 1, dtype=np.float32)
  dist = k[:, None] - np.arange(num_ranks)[None, :]  # rank - previous click rank
  g = np.where(dist > 0, np.maximum(dist, 1) ** -eta, 0.0).astype(np.float32)
  g[:, 0] = k**-eta
  return {"gamma": g, "alpha": alpha}


UBM = ClickModel(
  "ubm",
  init,
  click_probs,
  sample,
  relevance,
  simulation_params,
  e_step=e_step,
  m_step=m_step,
  propensity=propensity,
)
registry.register(MODELS, UBM.name)(UBM)
