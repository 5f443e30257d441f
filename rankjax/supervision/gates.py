r"""Frequency gates, `GATES`: the weight w in [0, 1] of a list's click loss in the multi-objective.

A gate is `fn(batch, config) -> f32[B]`, chosen by `config.supervision.gate.name`, its settings
in `config.supervision.gate` (`rankjax.supervision.multi_objective` mixes the two losses with it):

  hard     w = bucket_weights[bucket] (high, medium, low), `unknown_weight` for unbucketed lists
  sigmoid  w = sigmoid((log(1 + freq) - log(1 + centre)) / temperature)
  linear   w = 1 - rank / (num_buckets - 1), rank 0 = high ... 2 = low (unknown: `unknown_weight`)
  learned  w = sigmoid(coef * log(1 + freq) + bias), fitted by `fit_gate` on a small human-labelled
           split (`gate.fit_split`) before training, unless coef and bias are given (beyond the
           paper: the sigmoid gate with centre and temperature from data)

A new gate is one function here (or anywhere) and one config line:

  @registry.register(GATES, "my_gate")
  def my_gate(batch, config): ...

A gate that needs something computed before training sets `fn.prepare` (`objective.prepare`), and
one that reads labels there sets `fn.label_sources` (`objective.label_sources`), as the learned
gate does.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rankjax import registry
from rankjax.data import schema
from rankjax.ranking import metrics as metrics_lib
from rankjax.supervision import labels as labels_lib

GATES: dict[str, Callable] = {}


def chosen(config) -> Callable:
  """The gate `config.supervision.gate.name` names."""
  return registry.lookup(GATES, config.supervision.gate.name, "gate")


@registry.register(GATES, "hard")
def hard_gate(batch, config):
  """w = gate.bucket_weights[bucket] (high, medium, low); unknown bucket: gate.unknown_weight."""
  table = jnp.asarray(
    [*config.supervision.gate.bucket_weights, config.supervision.gate.unknown_weight], jnp.float32
  )
  return table[labels_lib.bucket_row(batch["bucket"])]


@registry.register(GATES, "sigmoid")
def sigmoid_gate(batch, config):
  """w = sigmoid((log1p(freq) - log1p(gate.centre)) / gate.temperature).

  >>> import ml_collections
  >>> c = ml_collections.ConfigDict({"supervision": {"gate": {"centre": 10.0,
  ...                                                         "temperature": 0.5}}})
  >>> [round(float(w), 3) for w in sigmoid_gate({"query_freq": jnp.array([1., 10., 1000.])}, c)]
  [0.032, 0.5, 1.0]
  """
  x = (
    jnp.log1p(batch["query_freq"]) - math.log1p(config.supervision.gate.centre)
  ) / config.supervision.gate.temperature
  return jax.nn.sigmoid(x)


@registry.register(GATES, "linear")
def linear_gate(batch, config):
  """w = 1 - rank / 2 for high (rank 0), medium (1), low (2); unknown: gate.unknown_weight."""
  nb = len(schema.BUCKETS)
  w = 1.0 - batch["bucket"].astype(jnp.float32) / (nb - 1)
  return jnp.where(batch["bucket"] < 0, config.supervision.gate.unknown_weight, w)


@registry.register(GATES, "learned")
def learned_gate(batch, config):
  """w = sigmoid(gate.coef * log1p(freq) + gate.bias), with (coef, bias) from `fit_gate`."""
  return jax.nn.sigmoid(
    config.supervision.gate.coef * jnp.log1p(batch["query_freq"]) + config.supervision.gate.bias
  )


def fit_gate(query_freq, click_better, *, l2: float = 1e-2, iterations: int = 50) -> dict:
  """Fits the learned gate on human-labelled lists: logistic regression of `click_better` on
  log(1 + freq).

  Args:
    query_freq: f[N] frequency of each validation query.
    click_better: f[N] in [0, 1], 1 where the click labels rank the list better than the LLM
      labels against the human labels, 0 where worse, 0.5 for a tie (`gate_targets`).
    l2: ridge penalty on the coefficient (keeps a separable set finite).
    iterations: Newton steps.

  Returns:
    {"coef": float, "bias": float} for `learned_gate`.

  >>> freq = np.array([1., 2., 3., 50., 80., 200.])
  >>> g = fit_gate(freq, np.array([0., 0., 0.5, 1., 1., 1.]))
  >>> w = lambda f: 1 / (1 + np.exp(-(g["coef"] * np.log1p(f) + g["bias"])))
  >>> bool(w(1.) < 0.3), bool(w(200.) > 0.7)
  (True, True)
  """
  y = np.asarray(click_better, np.float64)
  x = np.stack([np.log1p(np.asarray(query_freq, np.float64)), np.ones_like(y)], 1)
  theta = np.zeros(2)
  penalty = np.diag([l2 * len(y), 0.0])
  for _ in range(iterations):
    p = 1 / (1 + np.exp(-x @ theta))
    grad = x.T @ (p - y) + penalty @ theta
    hess = (x * (p * (1 - p))[:, None]).T @ x + penalty + 1e-9 * np.eye(2)
    theta -= np.linalg.solve(hess, grad)
  return {"coef": float(theta[0]), "bias": float(theta[1])}


# The label sources the learned gate's fit compares: click and LLM labels against human ones.
FIT_SOURCES = ("click", "llm", "human")


def gate_targets(split, draws: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(query_freq f[N], click_better f[N]) of a split's lists that have a relevant document.

  click_better is 1 where ranking by the click labels gives a higher NDCG@10 against the human
  labels than ranking by the LLM labels, 0 where lower, 0.5 where equal; label ties are broken
  at random, averaged over `draws`.
  """
  rng = np.random.default_rng(seed)
  n, size = len(split), int(split.lengths.max())
  labels = {s: np.zeros((n, size), np.float32) for s in FIT_SOURCES}
  where = np.zeros((n, size), bool)
  freq = np.zeros(n)
  for i in range(n):
    rec = split[i]
    k = len(rec["doc_ids"])
    for s in labels:
      labels[s][i, :k] = np.nan_to_num(rec[f"label_{s}"])
    where[i, :k] = ~np.isnan(rec["label_human"])
    freq[i] = rec["query_freq"]
  human = jnp.asarray(labels["human"])
  ndcg = {}
  for s in ("click", "llm"):
    runs = [
      metrics_lib.ndcg_metric(
        jnp.asarray(labels[s] + 1e-3 * rng.random((n, size))),
        human,
        where=jnp.asarray(where),
        topn=10,
        reduce_fn=None,
      )
      for _ in range(draws)
    ]
    ndcg[s] = np.mean(runs, axis=0)
  keep = np.asarray(metrics_lib.has_relevant(human, jnp.asarray(where)))
  diff = (ndcg["click"] - ndcg["llm"])[keep]
  return freq[keep], np.where(np.abs(diff) < 1e-6, 0.5, (diff > 0).astype(np.float64))


def fit_learned_gate(config, context) -> dict:
  """Preparation of the learned gate: (coef, bias) fitted on split `gate.fit_split`.

  A gate with both given is used as it is. The fit's account (lists, how often clicks won, the
  frequency where w = 0.5) is left in `context.notes` for the run's log and the study's report.
  """
  gate = config.supervision.gate
  if gate.coef is not None and gate.bias is not None:
    return {}
  if gate.coef is not None or gate.bias is not None:
    raise ValueError(
      f"the learned gate takes both coef and bias or neither (then they are "
      f"fitted on split {gate.fit_split!r}); it has coef={gate.coef}, "
      f"bias={gate.bias}"
    )
  split = config.supervision.gate.fit_split
  freq, target = gate_targets(context.open_split(split))
  fitted = fit_gate(freq, target)
  centre = float(np.expm1(-fitted["bias"] / fitted["coef"])) if fitted["coef"] else float("nan")
  context.notes.append(
    f"Learned gate (fitted on {len(freq)} `{split}` lists; click labels ranked better than LLM "
    f"labels on {np.mean(target):.0%} of them): w = sigmoid({fitted['coef']:.3f} log(1 + freq) "
    f"{fitted['bias']:+.3f}), w = 0.5 at frequency {centre:.1f}."
  )
  return {"gate": fitted}


learned_gate.prepare = fit_learned_gate


def _fit_sources(config) -> dict[str, tuple[str, ...]]:
  """The labels the learned gate's fit reads (`gate_targets`); none when coef and bias are set."""
  gate = config.supervision.gate
  fitted = gate.coef is None or gate.bias is None
  return {"supervision.gate.name": FIT_SOURCES} if fitted else {}


learned_gate.label_sources = _fit_sources
