"""Fitting click models (EM, closed form, or gradient on the log-likelihood) and evaluating them.

Two paths: the whole log at once (`fit(model, log)`: one jitted loop over [N, K] arrays on the
default device, float32 sums), or streamed (`fit(model, log_or_source, batch_sessions=B)`:
`rankjax.click_models.stream`, memory O(B + pairs), the mesh's devices, compensated sums; EM and
counts only). Evaluation always streams, so it never holds more than a batch of log-probabilities.
The whole-log EM and gradient fits are one compiled loop, run for any number of iterations at a
time (`FitMethod.steps`), so a fit can show its progress.
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
  shard_pairs: bool = False,
  progress: bool = False,
) -> dict:
  """Log-likelihood per shown result, and perplexity (mean over ranks, and by rank).

  Args:
    data: a `ClickLog`, or a page source (`rankjax.click_models.source`).
  """
  source = _source(data)
  lp, shown = stream.log_likelihood_by_rank(
    model,
    params,
    source,
    batch_sessions=batch_sessions,
    mesh=mesh,
    shard_pairs=shard_pairs,
    progress=progress,
  )
  by_rank = stream.perplexity(lp, shown)
  return {
    "log_likelihood": float(lp.sum() / max(shown.sum(), 1)),
    "perplexity": float(np.nanmean(by_rank)),
    "perplexity_by_rank": by_rank.tolist(),
    "sessions": source.num_sessions,
  }


# The log-likelihood per shown result that a fit's bar shows (`fit(progress=True)`).
@jax.jit(static_argnums=0)
def _mean_log_likelihood(model, params, doc, click, mask):
  return log_probs(model, params, doc, click, mask).sum() / jnp.maximum(mask.sum(), 1)


def _keep(model, state):
  del model
  return state


@jax.jit(static_argnums=(0, 1, 2))
def _counts(model, num_pairs, num_ranks, doc, click, mask, smoothing):
  init = model.init(num_pairs, num_ranks)
  return model.m_step(init, model.count_sums(doc, click, mask, num_pairs, num_ranks), smoothing)


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
  def step(_, p):
    return model.m_step(p, model.e_step(p, doc, click, mask), smoothing)

  return jax.lax.fori_loop(0, n, step, params)


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


def _stream_em(model, source, *, params, iterations, smoothing, **streaming):
  return stream.run_em(
    model, source, params=params, iterations=iterations, smoothing=smoothing, **streaming
  )


def _stream_counts(model, source, *, params, iterations, smoothing, **streaming):
  del params, iterations  # the closed form starts from nothing, runs once
  params, counts = stream.run_counts(model, source, smoothing=smoothing, **streaming)
  return params, 1, counts


# In order of preference: a model's default method is the first that fits it.
registry.register(FIT_METHODS, "em")(
  FitMethod(_em_start, _em_steps, _keep, needs="e_step", stream=_stream_em)
)
registry.register(FIT_METHODS, "counts")(
  FitMethod(
    _counts_start, _counts_steps, _keep, iterative=False, needs="count_sums", stream=_stream_counts
  )
)
registry.register(FIT_METHODS, "gradient")(
  FitMethod(_gradient_start, _gradient_steps, _gradient_params)
)

# Seconds of fitting between two updates of the bar (`fit(progress=True)`); the chunks of
# iterations are sized to it from the time the last one took.
CHUNK_S = 0.5


def _fit_whole_log(model, method, log, params, iterations, learning_rate, smoothing, progress):
  """`fit` on the whole log at once: (params, iterations run)."""
  fit_method = FIT_METHODS[method]
  doc, click, mask = (jnp.asarray(a) for a in (log.doc, log.click, log.mask))
  # Strong types, as the steps return them (`init` makes weakly typed arrays): one compile for
  # every chunk.
  state = jax.tree.map(
    lambda x: x.astype(x.dtype), fit_method.start(model, log, params, learning_rate)
  )
  total = iterations if fit_method.iterative else 1
  with progress_lib.bar(
    total=total, desc=f"fitting {model.name} ({method})", unit=" it", disable=not progress
  ) as bar:
    done, chunk = 0, 1 if progress else total
    while done < total:
      n = min(chunk, total - done)
      began = time.perf_counter()
      with progress_lib.compiling(f"the {model.name} fit ({method})", progress and not done):
        state = fit_method.steps(
          model, log, state, n, doc, click, mask, learning_rate=learning_rate, smoothing=smoothing
        )
      done += n
      if progress:  # reading the log-likelihood waits for the chunk: its time sizes the next
        ll = float(_mean_log_likelihood(model, fit_method.params(model, state), doc, click, mask))
        bar.set_postfix(log_likelihood=f"{ll:.5f}", refresh=False)
        bar.update(n)
        chunk = max(1, round(n * CHUNK_S / max(time.perf_counter() - began, 1e-6)))
  return fit_method.params(model, state), total


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
  shard_pairs: bool = False,
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
    shard_pairs: stream the fit with the per-pair tables split by pair id over the devices of the
      mesh (`rankjax.click_models.pair_shards`) instead of held whole on each.
    collect_counts: streamed: also return each pair's impressions and clicks by rank
      (`FitResult.counts`) from the first pass.
    progress: on stderr, the compile of the fitting loop, and a bar of the iterations with the
      log-likelihood per shown result so far (the whole-log iterations then run in chunks of
      about `CHUNK_S` seconds; the same loop, so the same result); streamed, a bar of the passes.
  """
  method = method or model.methods[0]
  fit_method = registry.lookup(FIT_METHODS, method, "fit method")
  if method not in model.methods:
    raise ValueError(f"{model.name} is fitted by {model.methods}, not {method!r}")
  streamed = batch_sessions is not None or shard_pairs or not isinstance(data, ClickLog)
  if streamed and fit_method.stream is None:
    raise ValueError(f"the {method!r} fit has no streamed form; stream 'em' or 'counts'")
  start = time.perf_counter()
  counts = None
  if streamed:
    streaming = {"batch_sessions": batch_sessions, "mesh": mesh, "shard_pairs": shard_pairs}
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
    params, iterations = _fit_whole_log(
      model, method, data, params, iterations, learning_rate, smoothing, progress
    )
  params = jax.block_until_ready(params)
  seconds = time.perf_counter() - start
  train = evaluate(model, params, data, progress=progress, **streaming)
  return FitResult(params, method, iterations, seconds, train, counts)
