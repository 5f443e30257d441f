"""Fitting click models (EM, closed form, or gradient on the log-likelihood) and evaluating them.

Everything runs jitted on the default JAX device; a whole EM or gradient run is one compiled loop.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rankjax import registry
from rankjax.click_models.base import FIT_METHODS, ClickModel, FitMethod, Params, log_probs
from rankjax.click_models.log import ClickLog


@dataclasses.dataclass
class FitResult:
  params: Params
  method: str
  iterations: int
  seconds: float
  train: dict  # `evaluate` on the training log


def _arrays(log: ClickLog):
  return jnp.asarray(log.doc), jnp.asarray(log.click), jnp.asarray(log.mask)


def evaluate(model: ClickModel, params: Params, log: ClickLog) -> dict:
  """Log-likelihood per shown result, and perplexity (mean over ranks, and by rank)."""
  lp = np.asarray(_eval(model, params, *_arrays(log)), np.float64)
  mask = log.mask
  n = mask.sum(0)
  by_rank = np.where(n > 0, 2.0 ** (-(lp.sum(0) / np.log(2)) / np.maximum(n, 1)), np.nan)
  return {
    "log_likelihood": float(lp.sum() / max(mask.sum(), 1)),
    "perplexity": float(np.nanmean(by_rank)),
    "perplexity_by_rank": by_rank.tolist(),
    "sessions": log.num_sessions,
  }


@jax.jit(static_argnums=0)
def _eval(model, params, doc, click, mask):
  return log_probs(model, params, doc, click, mask)


@jax.jit(static_argnums=(0, 1, 2))
def _counts(model, num_pairs, num_ranks, doc, click, mask, smoothing):
  return model.closed_form(doc, click, mask, num_pairs, num_ranks, smoothing)


@jax.jit(static_argnums=(0, 1))
def _em(model, iters, params, doc, click, mask, smoothing):
  return jax.lax.fori_loop(
    0, iters, lambda _, p: model.em_step(p, doc, click, mask, smoothing), params
  )


@jax.jit(static_argnums=(0, 1, 2))
def _gradient(model, iters, lr, params, doc, click, mask):
  eps = 1e-4
  logits = jax.tree.map(
    lambda p: jnp.log(jnp.clip(p, eps, 1 - eps)) - jnp.log1p(-jnp.clip(p, eps, 1 - eps)), params
  )
  frozen = {k: v for k, v in params.items() if k in model.fixed}
  opt = optax.adam(lr)
  n = jnp.maximum(mask.sum(), 1)

  def loss(lg):
    probs = {k: frozen[k] if k in frozen else jax.nn.sigmoid(v) for k, v in lg.items()}
    return -log_probs(model, probs, doc, click, mask).sum() / n

  def step(carry, _):
    lg, state = carry
    value, grads = jax.value_and_grad(loss)(lg)
    updates, state = opt.update(grads, state, lg)
    return (optax.apply_updates(lg, updates), state), value

  (logits, _), _ = jax.lax.scan(step, (logits, opt.init(logits)), None, length=iters)
  return {k: frozen[k] if k in frozen else jax.nn.sigmoid(v) for k, v in logits.items()}


def _run_counts(model, log, doc, click, mask, *, params, iterations, learning_rate, smoothing):
  del params, iterations, learning_rate  # the closed form starts from nothing, runs once
  return _counts(model, log.num_pairs, log.num_ranks, doc, click, mask, jnp.float32(smoothing)), 1


def _run_em(model, log, doc, click, mask, *, params, iterations, learning_rate, smoothing):
  del learning_rate
  params = model.init(log.num_pairs, log.num_ranks) if params is None else params
  return _em(model, iterations, params, doc, click, mask, jnp.float32(smoothing)), iterations


def _run_gradient(model, log, doc, click, mask, *, params, iterations, learning_rate, smoothing):
  del smoothing
  params = model.init(log.num_pairs, log.num_ranks) if params is None else params
  return _gradient(model, iterations, learning_rate, params, doc, click, mask), iterations


# In order of preference: a model's default method is the first that fits it.
registry.register(FIT_METHODS, "em")(FitMethod(_run_em, needs="em_step"))
registry.register(FIT_METHODS, "counts")(FitMethod(_run_counts, needs="closed_form"))
registry.register(FIT_METHODS, "gradient")(FitMethod(_run_gradient))


def fit(
  model: ClickModel,
  log: ClickLog,
  *,
  method: str | None = None,
  iterations: int = 50,
  learning_rate: float = 0.05,
  smoothing: float = 1.0,
  params: Params | None = None,
) -> FitResult:
  """Fits `model` to `log`.

  Args:
    model: a `ClickModel` (`rankjax.click_models.get(name)`).
    log: the training clicks.
    method: a name in `FIT_METHODS`: "em", "counts" (closed form) or "gradient" (Adam on the
      log-likelihood, full batch); default: the first of `model.methods`.
    iterations: EM iterations or gradient steps (ignored by "counts").
    learning_rate: Adam step size on the parameters' logits.
    smoothing: pseudo-count pulling each pair's estimates towards 0.5 (EM and counts).
    params: starting point (default `model.init`).
  """
  method = method or model.methods[0]
  run = registry.lookup(FIT_METHODS, method, "fit method").run
  if method not in model.methods:
    raise ValueError(f"{model.name} is fitted by {model.methods}, not {method!r}")
  doc, click, mask = _arrays(log)
  start = time.perf_counter()
  params, iterations = run(
    model,
    log,
    doc,
    click,
    mask,
    params=params,
    iterations=iterations,
    learning_rate=learning_rate,
    smoothing=smoothing,
  )
  params = jax.block_until_ready(params)
  seconds = time.perf_counter() - start
  return FitResult(params, method, iterations, seconds, evaluate(model, params, log))
