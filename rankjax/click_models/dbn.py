"""Dynamic Bayesian network model (DBN) and its simplified form (SDBN, gamma = 1).

The user examines rank 1, is attracted with alpha_{q,d} (click), is satisfied after a click with
sigma_{q,d} (stop), and otherwise continues to the next rank with probability gamma. The full
conditional click probability follows a forward recursion over ranks on
eps_k = P(E_k = 1 | C_<k):

  P(C_k = 1 | C_<k) = alpha_k eps_k,                  eps_1 = 1
  eps_{k+1} = gamma (1 - sigma_k)                     after a click at k
  eps_{k+1} = gamma eps_k (1 - alpha_k) / (1 - alpha_k eps_k)   after no click

DBN is fitted by EM (Chapelle & Zhang, WWW 2009, with gamma learned too) or by gradient ascent on
this likelihood. Given a page's clicks, every rank down to the last click l was examined, and the
user was satisfied at l or went on unseen; with the backward probability of no click from rank k
on once examined,

  N_k = (1 - alpha_k) (1 - gamma + gamma N_{k+1}),    N_{K+1} = 1,

and the forward probability f_k of examining rank k > l with no click in between (f_{l+1} =
gamma (1 - sigma_l), or 1 at rank 1 with no click at all; f_{k+1} = f_k (1 - alpha_k) gamma), the
posteriors are, with Z = 1 - f_{l+1} + f_{l+1} N_{l+1} = P(no click after l):

  P(E_k = 1 | C) = 1 (k <= l),  f_k N_k / Z (k > l)
  P(A_k = 1 | C) = 1 after a click, alpha_k (1 - P(E_k = 1 | C)) otherwise
  P(S_l = 1 | C) = sigma_l / Z at the last click, 0 at earlier clicks

and the M-step sets alpha to the mean P(A = 1 | C) over impressions, sigma to the mean P(S = 1 | C)
over clicks, and gamma to the expected continuations over the expected chances to continue,
sum_k P(E_{k+1} = 1 | C) / sum_k P(E_k = 1, S_k = 0 | C) over ranks k with a rank shown below.

SDBN has the closed-form MLE: ranks down to the last click (all ranks of a page without clicks)
count as examined, alpha = clicks / examinations, sigma = last clicks / clicks. Relevance is
alpha * sigma.

Simulated: satisfaction sigma = alpha, continuation gamma (SDBN: 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rankjax import registry
from rankjax.click_models.base import MODELS, ClickModel, Params, Sums, segment_sums, smoothed_ratio


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


def e_step(params: Params, doc, click, mask) -> Sums:
  alpha, sigma, gamma = params["alpha"][doc], params["sigma"][doc], params["gamma"]
  click = click * mask
  num_pages, num_ranks = doc.shape
  last = _last_click_rank(click, mask)  # 1-based; 0: no click
  # The user skips hidden ranks (`click_probs`): both recursions carry their value over them, so
  # at a hidden rank N and f are those of the next shown rank. Unrolled over the K ranks rather
  # than a `lax.scan`: on a CPU XLA's loop over [N] columns costs several times the fused code.
  ones = jnp.ones(num_pages)
  n = [ones]  # N_k, 1 below the shown ranks
  for k in reversed(range(num_ranks)):
    n.insert(0, jnp.where(mask[:, k], (1 - alpha[:, k]) * (1 - gamma + gamma * n[0]), n[0]))
  f = [ones]  # f_k, restarting after every click
  for k in range(num_ranks):
    after = jnp.where(click[:, k] > 0, gamma * (1 - sigma[:, k]), f[-1] * (1 - alpha[:, k]) * gamma)
    f.append(jnp.where(mask[:, k], after, f[-1]))
  n, f = jnp.stack(n, axis=1), jnp.stack(f, axis=1)  # [N, K + 1], index k: rank k + 1
  f_next = jnp.take_along_axis(f, last[:, None], axis=1)  # f and N at rank l + 1
  n_next = jnp.take_along_axis(n, last[:, None], axis=1)
  z = jnp.maximum(1 - f_next + f_next * n_next, 1e-12)
  ranks = jnp.arange(1, num_ranks + 1)
  exam = jnp.where(ranks > last[:, None], f[:, :-1] * n[:, :-1] / z, 1.0) * mask
  is_last = (ranks == last[:, None]).astype(jnp.float32)
  satisfied = is_last * sigma / z
  attract = click + (1 - click) * alpha * (1 - exam)
  # Continuations run from each shown rank to the next shown one: the chances to continue are
  # at every shown rank but the last, the continuations at every shown rank but the first.
  upto = jnp.cumsum(mask, axis=1)  # shown ranks down to k
  not_first = mask & (upto > 1)
  not_last = mask & (upto < upto[:, -1:])
  return {
    "alpha": segment_sums(attract, doc, mask, params["alpha"].shape[0]),
    "sigma": segment_sums(satisfied, doc, mask & (click > 0), params["sigma"].shape[0]),
    "gamma": ((exam * not_first).sum(), ((exam - satisfied) * not_last).sum()),
  }


def count_sums_sdbn(doc, click, mask, num_pairs: int, num_ranks: int) -> Sums:
  del num_ranks
  last = _last_click_rank(click, mask)
  ranks = jnp.arange(1, click.shape[-1] + 1)
  examined = mask & ((ranks <= last[:, None]) | (last[:, None] == 0))
  is_last = (ranks == last[:, None]).astype(jnp.float32)
  return {
    "alpha": segment_sums(click, doc, examined, num_pairs),
    "sigma": segment_sums(is_last, doc, mask & (click > 0), num_pairs),
  }


def m_step(params: Params, sums: Sums, smoothing) -> Params:
  """alpha and sigma from their sums; gamma from its sums where they are given (SDBN: kept)."""
  gamma = params["gamma"]
  if "gamma" in sums:
    num, den = sums["gamma"]
    gamma = jnp.where(den > 0, num / jnp.maximum(den, 1e-12), gamma)
  return {
    "alpha": smoothed_ratio(sums["alpha"], smoothing),
    "sigma": smoothed_ratio(sums["sigma"], smoothing),
    "gamma": gamma,
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


DBN = ClickModel(
  "dbn", init, click_probs, sample, relevance, simulation_params, e_step=e_step, m_step=m_step
)
SDBN = ClickModel(
  "sdbn",
  init_sdbn,
  click_probs,
  sample,
  relevance,
  simulation_params_sdbn,
  count_sums=count_sums_sdbn,
  m_step=m_step,
  fixed=("gamma",),
)
registry.register(MODELS, DBN.name)(DBN)
registry.register(MODELS, SDBN.name)(SDBN)
