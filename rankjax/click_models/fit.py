"""Fitting click models (EM, closed form, or gradient on the log-likelihood) and evaluating them.

Everything runs jitted on the default JAX device; EM and gradient fits are one compiled loop, run
for any number of iterations at a time (`FitMethod.steps`), so a fit can show its progress.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rankjax import progress as progress_lib
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


# The log-likelihood per shown result that a fit's bar shows (`fit(progress=True)`).
@jax.jit(static_argnums=0)
def _mean_log_likelihood(model, params, doc, click, mask):
  return log_probs(model, params, doc, click, mask).sum() / jnp.maximum(mask.sum(), 1)


def _keep(model, state):
  del model
  return state


@jax.jit(static_argnums=(0, 1, 2))
def _counts(model, num_pairs, num_ranks, doc, click, mask, smoothing):
  return model.closed_form(doc, click, mask, num_pairs, num_ranks, smoothing)


def _counts_start(model, log, params, learning_rate):
  del model, log, params, learning_rate  # the closed form starts from nothing
  return None


def _counts_steps(model, log, state, n, doc, click, mask, *, learning_rate, smoothing):
  del state, n, learning_rate  # runs once
  return _counts(model, log.num_pairs, log.num_ranks, doc, click, mask, jnp.float32(smoothing))


def _em_start(model, log, params, learning_rate):
  del learning_rate
  return model.init(log.num_pairs, log.num_ranks) if params is None else params


@jax.jit(static_argnums=0)
def _em(model, params, n, doc, click, mask, smoothing):
  return jax.lax.fori_loop(0, n, lambda _, p: model.em_step(p, doc, click, mask, smoothing), params)


def _em_steps(model, log, state, n, doc, click, mask, *, learning_rate, smoothing):
  del log, learning_rate
  return _em(model, state, n, doc, click, mask, jnp.float32(smoothing))


@jax.jit(static_argnums=(0, 1))
def _gradient_start_jit(model, learning_rate, params):
  eps = 1e-4
  logits = jax.tree.map(
    lambda p: jnp.log(jnp.clip(p, eps, 1 - eps)) - jnp.log1p(-jnp.clip(p, eps, 1 - eps)), params
  )
  frozen = {k: v for k, v in params.items() if k in model.fixed}
  return logits, optax.adam(learning_rate).init(logits), frozen


def _gradient_start(model, log, params, learning_rate):
  params = model.init(log.num_pairs, log.num_ranks) if params is None else params
  return _gradient_start_jit(model, learning_rate, params)


@jax.jit(static_argnums=(0, 1))
def _gradient(model, lr, state, n, doc, click, mask):
  logits, opt_state, frozen = state
  opt = optax.adam(lr)
  count = jnp.maximum(mask.sum(), 1)

  def loss(lg):
    probs = {k: frozen[k] if k in frozen else jax.nn.sigmoid(v) for k, v in lg.items()}
    return -log_probs(model, probs, doc, click, mask).sum() / count

  def step(_, carry):
    lg, st = carry
    updates, st = opt.update(jax.grad(loss)(lg), st, lg)
    return optax.apply_updates(lg, updates), st

  logits, opt_state = jax.lax.fori_loop(0, n, step, (logits, opt_state))
  return logits, opt_state, frozen


def _gradient_steps(model, log, state, n, doc, click, mask, *, learning_rate, smoothing):
  del log, smoothing
  return _gradient(model, learning_rate, state, n, doc, click, mask)


def _gradient_params(model, state):
  del model
  logits, _, frozen = state
  return {k: frozen[k] if k in frozen else jax.nn.sigmoid(v) for k, v in logits.items()}


# In order of preference: a model's default method is the first that fits it.
registry.register(FIT_METHODS, "em")(FitMethod(_em_start, _em_steps, _keep, needs="em_step"))
registry.register(FIT_METHODS, "counts")(
  FitMethod(_counts_start, _counts_steps, _keep, iterative=False, needs="closed_form")
)
registry.register(FIT_METHODS, "gradient")(
  FitMethod(_gradient_start, _gradient_steps, _gradient_params)
)

# Seconds of fitting between two updates of the bar (`fit(progress=True)`); the chunks of
# iterations are sized to it from the time the last one took.
CHUNK_S = 0.5


def fit(
  model: ClickModel,
  log: ClickLog,
  *,
  method: str | None = None,
  iterations: int = 50,
  learning_rate: float = 0.05,
  smoothing: float = 1.0,
  params: Params | None = None,
  progress: bool = False,
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
    progress: on stderr, the compile of the fitting loop, and a bar of the iterations with the
      log-likelihood per shown result so far (the iterations then run in chunks of about
      `CHUNK_S` seconds; the same loop, so the same result).
  """
  method = method or model.methods[0]
  how = registry.lookup(FIT_METHODS, method, "fit method")
  if method not in model.methods:
    raise ValueError(f"{model.name} is fitted by {model.methods}, not {method!r}")
  doc, click, mask = _arrays(log)
  start = time.perf_counter()
  # Strong types, as the steps return them (`init` makes weakly typed arrays): one compile for
  # every chunk.
  state = jax.tree.map(lambda x: x.astype(x.dtype), how.start(model, log, params, learning_rate))
  total = iterations if how.iterative else 1
  with progress_lib.bar(
    total=total, desc=f"fitting {model.name} ({method})", unit=" it", disable=not progress
  ) as bar:
    done, chunk = 0, 1 if progress else total
    while done < total:
      n = min(chunk, total - done)
      began = time.perf_counter()
      with progress_lib.compiling(f"the {model.name} fit ({method})", progress and not done):
        state = how.steps(
          model, log, state, n, doc, click, mask, learning_rate=learning_rate, smoothing=smoothing
        )
      done += n
      if progress:  # reading the log-likelihood waits for the chunk: its time sizes the next
        ll = float(_mean_log_likelihood(model, how.params(model, state), doc, click, mask))
        bar.set_postfix(log_likelihood=f"{ll:.5f}", refresh=False)
        bar.update(n)
        chunk = max(1, round(n * CHUNK_S / max(time.perf_counter() - began, 1e-6)))
  params = jax.block_until_ready(how.params(model, state))
  seconds = time.perf_counter() - start
  return FitResult(params, method, total, seconds, evaluate(model, params, log))
