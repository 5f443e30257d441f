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
  em_step(params, doc, click, mask, s)  -> params   (one EM iteration, s = pseudo-count smoothing)
  closed_form(doc, click, mask, P, K, s)-> params   (models with a closed-form MLE)
  propensity(params)                    -> [K] examination probability by rank (position models)

`sample` draws from the distribution whose conditionals `click_probs` gives: the test suite checks
this for every registered model.

The fitting methods are `FitMethod` records in `FIT_METHODS` ("em" needs `em_step`, "counts"
`closed_form`, "gradient" nothing); `ClickModel.methods` lists the ones that can fit a model.

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
  em_step: Callable | None = None
  closed_form: Callable | None = None
  propensity: Callable | None = None
  fixed: tuple[str, ...] = ()  # parameters gradient fitting leaves at their initial value

  @property
  def methods(self) -> tuple[str, ...]:
    """The `FIT_METHODS` that fit this model, in their registration order (the first is the
    default)."""
    return tuple(
      name
      for name, m in FIT_METHODS.items()
      if m.needs is None or getattr(self, m.needs) is not None
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
    needs: the `ClickModel` field a model must have for this method (e.g. "em_step"), or None.
  """

  start: Callable
  steps: Callable
  params: Callable
  iterative: bool = True
  needs: str | None = None


# name -> FitMethod, registered with `registry.register` where each is defined (`fit.py`).
FIT_METHODS: dict[str, FitMethod] = {}


def get(name: str) -> ClickModel:
  """The click model registered as `name` (`registry.UnknownName` lists the known ones)."""
  return registry.lookup(MODELS, name, "click model")


def log_probs(model: ClickModel, params: Params, doc, click, mask) -> jax.Array:
  """[N, K] log P(C_k = c_k | C_<k), 0 at masked ranks."""
  p = jnp.clip(model.click_probs(params, doc, click, mask), EPS, 1 - EPS)
  return jnp.where(mask, click * jnp.log(p) + (1 - click) * jnp.log1p(-p), 0.0)


def segment_mean(
  values, doc, mask, num_pairs: int, smoothing: float, prior: float = 0.5
) -> jax.Array:
  """Per pair: (sum of `values` over its shown ranks + smoothing * prior) / (count + smoothing)."""
  w = mask.astype(jnp.float32)
  num = jax.ops.segment_sum((values * w).ravel(), doc.ravel(), num_segments=num_pairs)
  den = jax.ops.segment_sum(w.ravel(), doc.ravel(), num_segments=num_pairs)
  return (num + smoothing * prior) / (den + smoothing)


def previous_click_rank(click, mask) -> jax.Array:
  """[N, K] 1-based rank of the last click above rank k, 0 where there is none."""
  ranks = jnp.arange(1, click.shape[-1] + 1)
  clicked = jnp.where((click > 0) & mask, ranks, 0)
  upto = jax.lax.cummax(clicked, axis=clicked.ndim - 1)
  return jnp.concatenate([jnp.zeros_like(upto[..., :1]), upto[..., :-1]], axis=-1)
