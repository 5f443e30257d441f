"""Fitting click models (EM, closed form, or gradient on the log-likelihood) and evaluating them.

Two paths: the whole log at once (`fit(model, log)`: one jitted loop over [N, K] arrays on the
default device, float32 sums), or streamed (`fit(model, log_or_source, batch_sessions=B)`:
`rankjax.click_models.stream`, memory O(B + pairs), the mesh's devices, compensated sums; EM and
counts only). Evaluation always streams, so it never holds more than a batch of log-probabilities.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rankjax import registry
from rankjax.click_models import stream
from rankjax.click_models.base import FIT_METHODS, ClickModel, FitMethod, Params, log_probs
from rankjax.click_models.log import ClickLog
from rankjax.click_models.source import LogSource


@dataclasses.dataclass
class FitResult:
  """A fit's parameters and its log-likelihood on the training pages (`evaluate`).

  Attributes:
    counts: per (pair, rank) impressions and clicks, from the streamed fit's first pass (None
      from the full-batch path, or when not asked for).
  """

  params: Params
  method: str
  iterations: int
  seconds: float
  train: dict
  counts: stream.PairRankCounts | None = None


def _source(data):
  return LogSource(data) if isinstance(data, ClickLog) else data


def evaluate(
  model: ClickModel,
  params: Params,
  data,
  *,
  batch_sessions: int | None = None,
  mesh=None,
  progress: bool = False,
) -> dict:
  """Log-likelihood per shown result, and perplexity (mean over ranks, and by rank).

  Args:
    data: a `ClickLog`, or a page source (`rankjax.click_models.source`).
  """
  source = _source(data)
  lp, shown = stream.log_likelihood_by_rank(
    model, params, source, batch_sessions=batch_sessions, mesh=mesh, progress=progress
  )
  by_rank = stream.perplexity(lp, shown)
  return {
    "log_likelihood": float(lp.sum() / max(shown.sum(), 1)),
    "perplexity": float(np.nanmean(by_rank)),
    "perplexity_by_rank": by_rank.tolist(),
    "sessions": source.num_sessions,
  }


@jax.jit(static_argnums=(0, 1, 2))
def _counts(model, num_pairs, num_ranks, doc, click, mask, smoothing):
  init = model.init(num_pairs, num_ranks)
  return model.m_step(init, model.count_sums(doc, click, mask, num_pairs, num_ranks), smoothing)


@jax.jit(static_argnums=(0, 1))
def _em(model, iters, params, doc, click, mask, smoothing):
  def step(_, p):
    return model.m_step(p, model.e_step(p, doc, click, mask), smoothing)

  return jax.lax.fori_loop(0, iters, step, params)


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


def _stream_em(model, source, *, params, iterations, smoothing, **streaming):
  return stream.run_em(
    model, source, params=params, iterations=iterations, smoothing=smoothing, **streaming
  )


def _stream_counts(model, source, *, params, iterations, smoothing, **streaming):
  del params, iterations  # the closed form starts from nothing, runs once
  params, counts = stream.run_counts(model, source, smoothing=smoothing, **streaming)
  return params, 1, counts


# In order of preference: a model's default method is the first that fits it.
registry.register(FIT_METHODS, "em")(FitMethod(_run_em, needs="e_step", stream=_stream_em))
registry.register(FIT_METHODS, "counts")(
  FitMethod(_run_counts, needs="count_sums", stream=_stream_counts)
)
registry.register(FIT_METHODS, "gradient")(FitMethod(_run_gradient))


def fit(
  model: ClickModel,
  data,
  *,
  method: str | None = None,
  iterations: int = 50,
  learning_rate: float = 0.05,
  smoothing: float = 1.0,
  params: Params | None = None,
  batch_sessions: int | None = None,
  mesh=None,
  collect_counts: bool = False,
  progress: bool = False,
) -> FitResult:
  """Fits `model` to a log.

  Args:
    model: a `ClickModel` (`rankjax.click_models.get(name)`).
    data: the training clicks: a `ClickLog`, or a page source (`rankjax.click_models.source`,
      streamed with `batch_sessions`, default `stream.default_batch_sessions()`).
    method: a name in `FIT_METHODS`: "em", "counts" (closed form) or "gradient" (Adam on the
      log-likelihood, full batch); default: the first of `model.methods`.
    iterations: EM iterations or gradient steps (ignored by "counts").
    learning_rate: Adam step size on the parameters' logits.
    smoothing: pseudo-count pulling each pair's estimates towards 0.5 (EM and counts).
    params: starting point (default `model.init`).
    batch_sessions: stream the fit in batches of this many pages over the devices of `mesh`
      (default: all devices); None with a `ClickLog`: the whole log at once.
    collect_counts: streamed: also return each pair's impressions and clicks by rank
      (`FitResult.counts`) from the first pass.
    progress: streamed: a progress bar on stderr.
  """
  method = method or model.methods[0]
  fit_method = registry.lookup(FIT_METHODS, method, "fit method")
  if method not in model.methods:
    raise ValueError(f"{model.name} is fitted by {model.methods}, not {method!r}")
  streamed = batch_sessions is not None or not isinstance(data, ClickLog)
  if streamed and fit_method.stream is None:
    raise ValueError(f"the {method!r} fit has no streamed form; stream 'em' or 'counts'")
  start = time.perf_counter()
  counts = None
  if streamed:
    streaming = {"batch_sessions": batch_sessions, "mesh": mesh}
    params, iterations, counts = fit_method.stream(
      model,
      _source(data),
      params=params,
      iterations=iterations,
      smoothing=smoothing,
      collect_counts=collect_counts,
      progress=progress,
      **streaming,
    )
  else:
    streaming = {}
    params, iterations = fit_method.run(
      model,
      data,
      *(jnp.asarray(a) for a in (data.doc, data.click, data.mask)),
      params=params,
      iterations=iterations,
      learning_rate=learning_rate,
      smoothing=smoothing,
    )
  params = jax.block_until_ready(params)
  seconds = time.perf_counter() - start
  train = evaluate(model, params, data, progress=progress, **streaming)
  return FitResult(params, method, iterations, seconds, train, counts)
