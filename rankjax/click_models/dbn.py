"""Dynamic Bayesian network model (DBN) and its simplified form (SDBN, gamma = 1).

The user examines rank 1, is attracted with alpha_{q,d} (click), is satisfied after a click with
sigma_{q,d} (stop), and otherwise continues to the next rank with probability gamma. The full
conditional click probability follows a forward recursion over ranks on
eps_k = P(E_k = 1 | C_<k):

  P(C_k = 1 | C_<k) = alpha_k eps_k,                  eps_1 = 1
  eps_{k+1} = gamma (1 - sigma_k)                     after a click at k
  eps_{k+1} = gamma eps_k (1 - alpha_k) / (1 - alpha_k eps_k)   after no click

DBN is fitted by gradient ascent on this likelihood. SDBN has the closed-form MLE: ranks down to
the last click (all ranks of a page without clicks) count as examined, alpha = clicks /
examinations, sigma = last clicks / clicks. Relevance is alpha * sigma.

Simulated: satisfaction sigma = alpha, continuation gamma (SDBN: 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rankjax import registry
from rankjax.click_models.base import MODELS, ClickModel, Params, segment_mean


def init(num_pairs: int, num_ranks: int) -> Params:
  del num_ranks
  return {
    "alpha": jnp.full((num_pairs,), 0.5),
    "sigma": jnp.full((num_pairs,), 0.5),
    "gamma": jnp.array(0.9),
  }


def init_sdbn(num_pairs: int, num_ranks: int) -> Params:
  return {**init(num_pairs, num_ranks), "gamma": jnp.array(1.0)}


def click_probs(params: Params, doc, click, mask) -> jax.Array:
  alpha, sigma, gamma = params["alpha"][doc], params["sigma"][doc], params["gamma"]

  def step(eps, k):
    a, s, c, m = alpha[:, k], sigma[:, k], click[:, k], mask[:, k]
    p = a * eps
    after = jnp.where(c > 0, gamma * (1 - s), gamma * eps * (1 - a) / jnp.maximum(1 - p, 1e-12))
    return jnp.where(m, after, eps), p

  _, probs = jax.lax.scan(step, jnp.ones(doc.shape[0]), jnp.arange(doc.shape[1]))
  return probs.T


def _last_click_rank(click, mask):
  ranks = jnp.arange(1, click.shape[-1] + 1)
  return jnp.max(jnp.where((click > 0) & mask, ranks, 0), axis=-1)


def closed_form_sdbn(doc, click, mask, num_pairs: int, num_ranks: int, smoothing: float) -> Params:
  del num_ranks
  last = _last_click_rank(click, mask)
  ranks = jnp.arange(1, click.shape[-1] + 1)
  examined = mask & ((ranks <= last[:, None]) | (last[:, None] == 0))
  is_last = (ranks == last[:, None]).astype(jnp.float32)
  return {
    "alpha": segment_mean(click, doc, examined, num_pairs, smoothing),
    "sigma": segment_mean(is_last, doc, mask & (click > 0), num_pairs, smoothing),
    "gamma": jnp.array(1.0),
  }


def sample(key, params: Params, doc, mask) -> jax.Array:
  doc, mask = jnp.asarray(doc), jnp.asarray(mask)
  ka, ks, kg = jax.random.split(key, 3)
  ua, us, ug = (jax.random.uniform(k, doc.shape) for k in (ka, ks, kg))
  alpha, sigma = params["alpha"][doc], params["sigma"][doc]

  def step(examining, k):
    c = examining & (ua[:, k] < alpha[:, k]) & mask[:, k]
    satisfied = c & (us[:, k] < sigma[:, k])
    go_on = examining & ~satisfied & (ug[:, k] < params["gamma"])
    return jnp.where(mask[:, k], go_on, examining), c

  _, clicks = jax.lax.scan(step, jnp.ones(doc.shape[0], bool), jnp.arange(doc.shape[1]))
  return clicks.T.astype(jnp.float32)


def relevance(params: Params) -> jax.Array:
  return params["alpha"] * params["sigma"]


def simulation_params(alpha: np.ndarray, num_ranks: int, eta: float, gamma: float) -> dict:
  """Satisfaction sigma = alpha after a click, continuation gamma."""
  del num_ranks, eta
  return {"alpha": alpha, "sigma": alpha.copy(), "gamma": np.float32(gamma)}


def simulation_params_sdbn(alpha: np.ndarray, num_ranks: int, eta: float, gamma: float) -> dict:
  """As DBN's with gamma = 1: SDBN's user never abandons (the simulator's `gamma` is unused)."""
  del gamma
  return simulation_params(alpha, num_ranks, eta, 1.0)


DBN = ClickModel("dbn", init, click_probs, sample, relevance, simulation_params)
SDBN = ClickModel(
  "sdbn",
  init_sdbn,
  click_probs,
  sample,
  relevance,
  simulation_params_sdbn,
  closed_form=closed_form_sdbn,
  fixed=("gamma",),
)
registry.register(MODELS, DBN.name)(DBN)
registry.register(MODELS, SDBN.name)(SDBN)
