"""Simulated click logs from labelled lists, for scale benchmarks and controlled tests (not users).

A session draws a query with Zipf frequencies (the query at popularity rank i has probability
proportional to i ** -zipf), a logging ranker orders the query's documents, the top `list_size`
are shown, and a click model, any of `rankjax.click_models.MODELS` by name, clicks:

  attractiveness  alpha = noise + (1 - noise) * (2 ** y - 1) / (2 ** y_max - 1), y the graded label,
                  then, with `doc_quality` > 0, logit(alpha) += q_d, q_d ~ N(0, doc_quality) per doc
  the rest        the model's `simulation_params(alpha, list_size, eta, gamma)`, e.g. PBM's
                  examination theta_k = k ** -eta, DBN's continuation `gamma`

Logging rankers, by name in `LOGGERS`: "noisy-label" (y + N(0, logger_noise), drawn per session,
so documents move between ranks), "fixed-noisy-label" (noise drawn once per query), "random", or
"feature:j" (the j-th feature, 0-based, ties broken at random).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rankjax import click_models, registry
from rankjax import progress as progress_lib
from rankjax.click_models.base import Params
from rankjax.click_models.log import ClickLog
from rankjax.data import schema


@dataclasses.dataclass
class SimulatedLog:
  """A simulated log: the click arrays, the query of each session, and the true parameters."""

  log: ClickLog
  query: np.ndarray  # int32 [N], index into `qids`
  qids: list[str]
  labels: np.ndarray  # float32 [P], the graded label of each (query, doc) pair
  truth: Params  # the click model's parameters (numpy), per rank and per pair
  config: dict

  def records(self) -> Iterator[dict]:
    """Generic-layout records (`rankjax.data.readers.generic`), one per session."""
    pairs, log = self.log.pairs, self.log
    for n in range(log.num_sessions):
      m = log.mask[n]
      docs = [pairs[i][1] for i in log.doc[n][m]]
      yield {
        "session_id": str(n),
        "query_id": self.qids[self.query[n]],
        "doc_ids": docs,
        "ranks": (np.flatnonzero(m) + 1).tolist(),
        "clicks": log.click[n][m].astype(int).tolist(),
        "labels": self.labels[log.doc[n][m]].tolist(),
      }


def attractiveness(labels: np.ndarray, noise: float, max_label: float) -> np.ndarray:
  """alpha = noise + (1 - noise) * (2^y - 1) / (2^y_max - 1), y clipped to [0, y_max].

  >>> attractiveness(np.array([0., 2., 4.]), noise=0.1, max_label=4).astype(float).round(3).tolist()
  [0.1, 0.28, 1.0]
  """
  y = np.clip(labels, 0, max_label)
  return (noise + (1 - noise) * (2.0**y - 1) / (2.0**max_label - 1)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class LoggingRanker:
  """How the logging ranker orders a query's documents in each session (the top `list_size` by
  score are shown).

  Attributes:
    scores: (rng, list, n, *, noise, fixed, argument) -> [n, len(list)] scores for n sessions of
      one query; `noise` is `logger_noise`, `fixed` the list's `per_query` draw (or None),
      `argument` what follows the name's colon (or "").
    per_query: (rng, list, noise) -> a draw made once per query, for every query in turn before any
      session is simulated; None draws nothing.
    argument: the name of the argument written after a colon (`feature:J`), or None for none.
  """

  scores: Callable[..., np.ndarray]
  per_query: Callable[[np.random.Generator, schema.RankingList, float], np.ndarray] | None = None
  argument: str | None = None


# `logger` names -> LoggingRanker, each entered with `registry.register` below its function.
LOGGERS: dict[str, LoggingRanker] = {}


def _noisy_label(rng, lst, n, *, noise, fixed, argument):
  del fixed, argument
  y = np.nan_to_num(lst.labels["human"])
  return y + rng.normal(0, noise, (n, len(y)))


def _fixed_noise(rng, lst, noise):
  return lst.labels["human"] + rng.normal(0, noise, len(lst))


def _fixed_noisy_label(rng, lst, n, *, noise, fixed, argument):
  del rng, noise, argument
  return np.broadcast_to(fixed, (n, len(lst)))


def _random(rng, lst, n, *, noise, fixed, argument):
  del noise, fixed, argument
  return rng.random((n, len(lst)))


def _feature(rng, lst, n, *, noise, fixed, argument):
  del noise, fixed
  j = int(argument)
  if lst.features is None or j >= lst.features.shape[1]:
    raise ValueError(f"logger 'feature:{argument}': list {lst.qid!r} has no feature {j}")
  return lst.features[:, j] + 1e-6 * rng.random((n, len(lst)))


registry.register(LOGGERS, "noisy-label")(LoggingRanker(_noisy_label))
registry.register(LOGGERS, "fixed-noisy-label")(LoggingRanker(_fixed_noisy_label, _fixed_noise))
registry.register(LOGGERS, "random")(LoggingRanker(_random))
registry.register(LOGGERS, "feature")(LoggingRanker(_feature, argument="J"))


def logging_ranker(logger: str) -> tuple[LoggingRanker, str]:
  """The ranker `logger` names, "<name>" or "<name>:<argument>", and its argument ("" if none).

  >>> logging_ranker("feature:3")[1]
  '3'
  >>> logging_ranker("best")  # doctest: +ELLIPSIS
  Traceback (most recent call last):
  rankjax.registry.UnknownName: unknown logger 'best'; known: ...
  """
  name, colon, argument = logger.partition(":")
  ranker = registry.lookup(LOGGERS, name, "logger")
  if ranker.argument is not None and not argument:
    raise ValueError(f"logger {logger!r} needs its argument: {name}:{ranker.argument}")
  if ranker.argument is None and colon:
    raise ValueError(f"logger {name!r} takes no argument, got {logger!r}")
  return ranker, argument


def logger_names() -> str:
  """The loggers as written on a command line, e.g. "random, feature:J"."""
  return ", ".join(name + (f":{r.argument}" if r.argument else "") for name, r in LOGGERS.items())


def simulate(
  lists: Sequence[schema.RankingList],
  *,
  sessions: int,
  model: str = "pbm",
  list_size: int = 10,
  zipf: float = 1.1,
  eta: float = 1.0,
  noise: float = 0.1,
  gamma: float = 0.9,
  doc_quality: float = 0.0,
  logger: str = "noisy-label",
  logger_noise: float = 1.0,
  max_label: float | None = None,
  seed: int = 0,
  chunk: int = 200_000,
  progress: bool = False,
) -> SimulatedLog:
  """Simulates `sessions` result pages over labelled `lists` (human labels required), ordered by
  the logging ranker `logger` names (`logging_ranker`) and clicked by the click model registered
  as `model` (`registry.UnknownName` if either is not registered); `chunk` sessions are clicked
  at a time. With `progress`, the sampler's compile and a bar of the sessions clicked on stderr.

  Returns:
    The log, with `truth`: the model's `simulation_params`, e.g. theta [K] (PBM), gamma [K, K]
    (UBM) or gamma (DBN), and alpha (and sigma for DBN) per (query, doc) pair.
  """
  click_model = click_models.get(model)
  ranker, argument = logging_ranker(logger)
  lists = [x for x in lists if "human" in x.labels and len(x)]
  if not lists:
    raise ValueError("no list with human labels to simulate from")
  rng = np.random.default_rng(seed)
  max_label = (
    max_label if max_label is not None else max(float(np.nanmax(x.labels["human"])) for x in lists)
  )
  offsets = np.cumsum([0] + [len(x) for x in lists])
  pairs = [(x.qid, d) for x in lists for d in x.doc_ids]
  labels = np.concatenate([np.nan_to_num(x.labels["human"]) for x in lists]).astype(np.float32)
  alpha = attractiveness(labels, noise, max_label)
  if doc_quality > 0:
    docs = sorted({d for _, d in pairs})
    effect = dict(zip(docs, rng.normal(0, doc_quality, len(docs))))
    logit = np.log(np.clip(alpha, 1e-4, 1 - 1e-4)) - np.log1p(-np.clip(alpha, 1e-4, 1 - 1e-4))
    alpha = (1 / (1 + np.exp(-(logit + np.array([effect[d] for _, d in pairs]))))).astype(
      np.float32
    )
  truth = click_model.simulation_params(alpha, list_size, eta=eta, gamma=gamma)

  popularity = rng.permutation(len(lists))
  p = np.arange(1, len(lists) + 1, dtype=np.float64) ** -zipf
  query = popularity[rng.choice(len(lists), size=sessions, p=p / p.sum())].astype(np.int32)
  fixed = (
    [ranker.per_query(rng, x, logger_noise) for x in lists]
    if ranker.per_query
    else [None] * len(lists)
  )
  doc = np.zeros((sessions, list_size), np.int32)
  mask = np.zeros((sessions, list_size), bool)
  for q in np.unique(query):
    rows = np.flatnonzero(query == q)
    scores = ranker.scores(
      rng, lists[q], len(rows), noise=logger_noise, fixed=fixed[q], argument=argument
    )
    top = np.argsort(-scores, axis=1, kind="stable")[:, :list_size]
    doc[rows, : top.shape[1]] = offsets[q] + top
    mask[rows, : top.shape[1]] = True
  click = np.zeros((sessions, list_size), np.float32)
  params = {name: jnp.asarray(v) for name, v in truth.items()}
  key = jax.random.key(seed)
  sample = progress_lib.announcing(
    jax.jit(click_model.sample),
    f"the {model} click sampler",
    shapes=lambda key, params, doc, mask: f"{len(doc):,} sessions",
    enabled=progress,
  )
  with progress_lib.bar(
    total=sessions, desc=f"clicking ({model})", unit=" sessions", disable=not progress
  ) as bar:
    for start in range(0, sessions, chunk):
      sl = slice(start, start + chunk)
      click[sl] = np.asarray(sample(jax.random.fold_in(key, start), params, doc[sl], mask[sl]))
      bar.update(len(click[sl]))
  config = {
    "simulated": True,
    "sessions": sessions,
    "model": model,
    "list_size": list_size,
    "zipf": zipf,
    "eta": eta,
    "noise": noise,
    "gamma": gamma,
    "doc_quality": doc_quality,
    "logger": logger,
    "logger_noise": logger_noise,
    "max_label": max_label,
    "seed": seed,
  }
  return SimulatedLog(
    ClickLog(doc, click, mask, pairs),
    query,
    [x.qid for x in lists],
    labels,
    {name: np.asarray(v) for name, v in truth.items()},
    config,
  )
