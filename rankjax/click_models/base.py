"""What every click model provides, the registry of click models, and the model-independent
pieces: likelihood and perplexity.

A click model is one record, `ClickModel`, of pure functions over probability parameters (a dict
of arrays), entered into `MODELS` under its name where it is defined:

  init(num_pairs, num_ranks)            -> params
  click_probs(params, doc, click, mask) -> [N, K] P(C_k = 1 | C_<k), the full conditional
  sample(key, params, doc, mask)        -> [N, K] simulated clicks
  relevance(params)                     -> [P] the model's relevance estimate per (query, doc) pair
  simulation_params(alpha, K, eta, gamma) -> params the simulator (`rankjax.sim.clicks`) clicks
                                           with: alpha [P] per-pair attractiveness, examination
                                           decaying as k ** -eta, continuation gamma (numpy)
  e_step(params, doc, click, mask)      -> Sums     expected counts of the hidden events (EM models)
  count_sums(doc, click, mask, P, K)    -> Sums     observed counts (models with a closed-form MLE)
  m_step(params, sums, s)               -> params   the parameters from Sums (s = pseudo-count
                                                    smoothing); one EM iteration is
                                                    m_step(p, e_step(p, ...), s)
  pair_rank_e_step(params, imps, clicks)-> Sums     the E-step from per-(pair, rank) impressions and
                                                    clicks [P, K] alone, for models whose
                                                    likelihood depends on the log only through them
  propensity(params)                    -> [K] examination probability by rank (position models)

`Sums` maps a parameter's name to arrays that are sums over pages: the sums of two disjoint sets of
pages add up to the sums of their union, which is what lets `rankjax.click_models.stream` fit
from minibatches (and devices) one at a time.

`sample` draws from the distribution whose conditionals `click_probs` gives: the test suite checks
this for every registered model.

The fitting methods are `FitMethod` records in `FIT_METHODS` ("em" needs `e_step`, "counts"
`count_sums`, both `m_step`; "gradient" nothing); `ClickModel.methods` lists the ones that can fit
a model.

The log-likelihood of a page is sum_k log P(C_k = c_k | C_<k); perplexity at rank k is
2 ** (-mean_n log2 P(C_k = c_k | C_<k)) and the reported perplexity is its mean over ranks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from rankjax import registry

Params = dict[str, jax.Array]
Sums = dict[str, tuple[jax.Array, ...]]
EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class ClickModel:
  """One click model's functions (see the module docstring)."""

  name: str
  init: Callable
  click_probs: Callable
  sample: Callable
  relevance: Callable
  simulation_params: Callable
  e_step: Callable | None = None
  count_sums: Callable | None = None
  m_step: Callable | None = None
  pair_rank_e_step: Callable | None = None
  propensity: Callable | None = None
  fixed: tuple[str, ...] = ()  # parameters gradient fitting leaves at their initial value

  @property
  def methods(self) -> tuple[str, ...]:
    """The `FIT_METHODS` that fit this model, in their registration order (the first is the
    default)."""
    return tuple(
      name
      for name, m in FIT_METHODS.items()
      if m.needs is None or (getattr(self, m.needs) is not None and self.m_step is not None)
    )


# name -> ClickModel; each model module registers its own (`registry.register`).
MODELS: dict[str, ClickModel] = {}


@dataclasses.dataclass(frozen=True)
class FitMethod:
  """A way to fit click models (`rankjax.click_models.fit` registers them), as a loop that runs
  in chunks of iterations, so that a fit can show its progress between them.

  Attributes:
    start: (model, log, params, learning_rate) -> the state the iterations carry; `params` is the
      starting point or None.
    steps: (model, log, state, n, doc, click, mask, *, learning_rate, smoothing) -> the state n
      iterations later; one compiled loop whatever n is.
    params: (model, state) -> the fitted params.
    iterative: False for a method that runs once, whatever the iterations asked (closed form).
    needs: the `ClickModel` field a model must have for this method (e.g. "e_step"), or None.
    stream: the same fit over minibatches of a `rankjax.click_models.source` (`stream.py`), or
      None where the method has no streamed form.
  """

  start: Callable
  steps: Callable
  params: Callable
  iterative: bool = True
  needs: str | None = None
  stream: Callable | None = None


# name -> FitMethod, registered with `registry.register` where each is defined (`fit.py`).
FIT_METHODS: dict[str, FitMethod] = {}


def get(name: str) -> ClickModel:
  """The click model registered as `name` (`registry.UnknownName` lists the known ones)."""
  return registry.lookup(MODELS, name, "click model")


def log_probs(model: ClickModel, params: Params, doc, click, mask) -> jax.Array:
  """[N, K] log P(C_k = c_k | C_<k), 0 at masked ranks."""
  p = jnp.clip(model.click_probs(params, doc, click, mask), EPS, 1 - EPS)
  return jnp.where(mask, click * jnp.log(p) + (1 - click) * jnp.log1p(-p), 0.0)


def segment_sums(values, doc, mask, num_pairs: int) -> tuple[jax.Array, jax.Array]:
  """Per pair: (sum of `values` over its ranks where `mask`, count of those ranks)."""
  w = mask.astype(jnp.float32)
  num = jax.ops.segment_sum((values * w).ravel(), doc.ravel(), num_segments=num_pairs)
  den = jax.ops.segment_sum(w.ravel(), doc.ravel(), num_segments=num_pairs)
  return num, den


def smoothed_ratio(sums: tuple[jax.Array, jax.Array], smoothing, prior: float = 0.5) -> jax.Array:
  """(num + smoothing * prior) / (den + smoothing): a mean pulled towards `prior`."""
  num, den = sums
  return (num + smoothing * prior) / (den + smoothing)


def examination_posteriors(exam, attract, click) -> tuple[jax.Array, jax.Array]:
  """P(E = 1 | C) and P(A = 1 | C) where C = E * A, E ~ Bernoulli(exam), A ~ Bernoulli(attract).

  A click means E = A = 1; given no click, P(E = 1) = exam (1 - attract) / (1 - exam attract) and
  P(A = 1) = attract (1 - exam) / (1 - exam attract).
  """
  denom = jnp.maximum(1 - exam * attract, 1e-12)
  post_e = click + (1 - click) * exam * (1 - attract) / denom
  post_a = click + (1 - click) * attract * (1 - exam) / denom
  return post_e, post_a


def previous_click_rank(click, mask) -> jax.Array:
  """[N, K] 1-based rank of the last click above rank k, 0 where there is none."""
  ranks = jnp.arange(1, click.shape[-1] + 1)
  clicked = jnp.where((click > 0) & mask, ranks, 0)
  upto = jax.lax.cummax(clicked, axis=clicked.ndim - 1)
  return jnp.concatenate([jnp.zeros_like(upto[..., :1]), upto[..., :-1]], axis=-1)
