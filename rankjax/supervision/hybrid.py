r"""Hybrid supervision: clicks and LLM labels in one model, by frequency gate or by data schedule.

Two objectives (registered in `rankjax.supervision.single.OBJECTIVES`, chosen with
`config.supervision.objective`):

**freq_multi_objective**: one model; on every list, a click loss and an LLM-label loss on the same
scores, combined per query by a gate w(frequency) in [0, 1] on the click loss:

  loss = sum_b valid_b * (w_b * L_click(b) + (1 - w_b) * L_llm(b)) / sum_b valid_b

L_s(b) is `config.loss` on list b with source s's labels (per-list mean over its valid terms; the
click loss carries the weights hook `config.supervision.weights`, e.g. IPS). Gates
(`config.supervision.gate.name`, `GATES`):
  hard     w = bucket_weights[bucket] (high, medium, low), `unknown_weight` for unbucketed lists
  sigmoid  w = sigmoid((log(1 + freq) - log(1 + centre)) / temperature)
  linear   w = 1 - rank / (num_buckets - 1), rank 0 = high ... 2 = low (unknown: `unknown_weight`)
  learned  w = sigmoid(coef * log(1 + freq) + bias), fitted by `fit_gate` on a small human-labelled
           validation set (beyond the paper; `rankjax.study.runner` fits it before training)
The mean of each loss and of w over the batch's lists are logged ("loss_click", "loss_llm",
"gate_mean").

**data_schedule**: each list of a batch is trained on one source drawn from the mixture of the
stage the step is in (optionally a different mixture per frequency bucket, zero to leave the
bucket out). A stage is a dict:
  {"start": step, "end": step, "mix": {"llm": 1.0}, "mix_end": {...}, "anneal": "linear",
   "buckets": ("high",)}
`mix_end` and `anneal` ("constant", "linear", "cosine") interpolate the mixture from `mix` at
`start` to `mix_end` at `end`; `buckets` restricts the stage to those buckets. `mix` may also map
a bucket name to a mixture ({"high": {"click": 1}, "low": {"llm": 1}}). Steps past the last stage
use its final mixture. Presets (`config.supervision.schedule`, `PRESETS`) build stages from
`total_steps`: llm_then_click, click_then_llm, anneal_linear, anneal_cosine (llm -> click),
frequency_staged (high-frequency lists on clicks first, then medium lists on both sources added,
then low lists on LLM labels added). The loss is the mean over the lists the stage trains (a list
without labels from its drawn source adds 0); "loss_<source>" and "share_<source>" are logged.

Config lines:
  config.supervision.objective = "freq_multi_objective"
  config.supervision.gate = {"name": "sigmoid", "centre": 20.0, "temperature": 1.0}
  config.supervision.objective = "data_schedule"
  config.supervision.schedule = "anneal_cosine"      # or config.supervision.stages = (...)

Why no iterator state: the draw is a pure function u = uniform(fold_in(key(seed), step))[list]
inside the jitted step; the batch at a step is already exact on resume (the data iterator's
state is in the checkpoint) and so is the step, so resuming needs no schedule state and one
compiled step serves every stage (no recompilation at stage boundaries). The cost: sources are
mixed per list, not per batch, which is what a mixture weight means anyway.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rankjax.ranking import losses
from rankjax import registry
from rankjax.data import schema

SOURCES = schema.SOURCES
_BUCKET_ROWS = (*schema.BUCKETS, "unknown")  # row 3 is bucket -1


def _bucket_row(bucket):
  """Bucket id (-1..2) -> row index into [high, medium, low, unknown]."""
  return jnp.where(bucket < 0, len(schema.BUCKETS), bucket)


# Gates: (batch, gate_config) -> f32[B], the weight of the click loss per list.

def hard_gate(batch, gate):
  """w = gate.bucket_weights[bucket] (high, medium, low); unknown bucket: gate.unknown_weight."""
  table = jnp.asarray([*gate.bucket_weights, gate.get("unknown_weight", 0.5)], jnp.float32)
  return table[_bucket_row(batch["bucket"])]


def sigmoid_gate(batch, gate):
  """w = sigmoid((log1p(freq) - log1p(gate.centre)) / gate.temperature).

  >>> import ml_collections
  >>> g = ml_collections.ConfigDict({"centre": 10.0, "temperature": 0.5})
  >>> [round(float(w), 3) for w in sigmoid_gate({"query_freq": jnp.array([1., 10., 1000.])}, g)]
  [0.032, 0.5, 1.0]
  """
  x = (jnp.log1p(batch["query_freq"]) - math.log1p(gate.centre)) / gate.temperature
  return jax.nn.sigmoid(x)


def linear_gate(batch, gate):
  """w = 1 - rank / 2 for high (rank 0), medium (1), low (2); unknown: gate.unknown_weight."""
  nb = len(schema.BUCKETS)
  w = 1.0 - batch["bucket"].astype(jnp.float32) / (nb - 1)
  return jnp.where(batch["bucket"] < 0, gate.get("unknown_weight", 0.5), w)


def learned_gate(batch, gate):
  """w = sigmoid(gate.coef * log1p(freq) + gate.bias), with (coef, bias) from `fit_gate`."""
  return jax.nn.sigmoid(gate.coef * jnp.log1p(batch["query_freq"]) + gate.bias)


GATES: dict[str, Callable] = {"hard": hard_gate, "sigmoid": sigmoid_gate, "linear": linear_gate,
                              "learned": learned_gate}


def fit_gate(query_freq, click_better, *, l2: float = 1e-2, iterations: int = 50) -> dict:
  """Fits the learned gate on human-labelled lists: logistic regression of `click_better` on
  log(1 + freq) (beyond the paper; the sigmoid gate with centre and temperature from data).

  Args:
    query_freq: f[N] frequency of each validation query.
    click_better: f[N] in [0, 1], 1 where the click labels rank the list better than the LLM
      labels against the human labels, 0 where worse, 0.5 for a tie (`study.gate_targets`).
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


def per_list_loss(name: str, scores, labels, where, weights=None):
  """f32[B]: `name`'s loss of each list, the mean over that list's valid terms (0 if none)."""
  fn = losses.get_loss(name)

  def one(s, y, m, w):
    return fn(s, y, where=m, weights=w, reduce_fn=jnp.mean)

  if weights is None:
    return jax.vmap(lambda s, y, m: one(s, y, m, None))(scores, labels, where)
  return jax.vmap(one)(scores, labels, where, weights)


def _source_losses(scores, batch, config, sources):
  """{source: (per-list loss f32[B], list has a label from it bool[B])}."""
  from rankjax.supervision import single as supervision  # supervision registers this module's objectives
  out = {}
  for s in sources:
    labels, where = supervision.labels_and_where(batch, s)
    weights = None
    if s == "click":
      weights = registry.lookup(supervision.WEIGHTS, config.supervision.weights, "weights")(
          batch, config)
    out[s] = (per_list_loss(config.loss, scores, labels, where, weights), jnp.any(where, -1))
  return out


def freq_multi_objective(scores, batch, *, step, config):
  """Click and LLM losses on the same lists, mixed per list by a frequency gate (module doc)."""
  del step
  gate_cfg = config.supervision.gate
  if gate_cfg.name not in GATES:
    raise KeyError(f"unknown gate {gate_cfg.name!r}; known: {sorted(GATES)}")
  w = GATES[gate_cfg.name](batch, gate_cfg)
  per = _source_losses(scores, batch, config, ("click", "llm"))
  valid = batch["list_valid"].astype(jnp.float32)
  n = jnp.maximum(valid.sum(), 1.0)
  (lc, hc), (ll, hl) = per["click"], per["llm"]
  loss = jnp.sum(valid * (w * lc + (1 - w) * ll)) / n
  aux = {"loss_click": jnp.sum(valid * hc * lc) / jnp.maximum(jnp.sum(valid * hc), 1.0),
         "loss_llm": jnp.sum(valid * hl * ll) / jnp.maximum(jnp.sum(valid * hl), 1.0),
         "gate_mean": jnp.sum(valid * w) / n}
  return loss, aux


# Data schedules.

def _mix_table(mix: Mapping, buckets: Sequence[str] | None, where: str) -> np.ndarray:
  """f32[4 bucket rows, 3 sources] from {source: w} or {bucket: {source: w}}."""
  table = np.zeros((len(_BUCKET_ROWS), len(SOURCES)), np.float32)
  per_bucket = all(isinstance(v, Mapping) for v in mix.values()) and mix
  rows = dict(mix) if per_bucket else {b: mix for b in _BUCKET_ROWS}
  for bucket, m in rows.items():
    if bucket not in _BUCKET_ROWS:
      raise ValueError(f"{where}: unknown bucket {bucket!r}; known: {_BUCKET_ROWS}")
    for source, weight in m.items():
      if source not in SOURCES:
        raise ValueError(f"{where}: unknown source {source!r}; known: {SOURCES}")
      if weight < 0:
        raise ValueError(f"{where}: negative weight {weight} for {source!r}")
      table[_BUCKET_ROWS.index(bucket), SOURCES.index(source)] = weight
  if buckets is not None:
    unknown = set(buckets) - set(_BUCKET_ROWS)
    if unknown:
      raise ValueError(f"{where}: unknown buckets {sorted(unknown)}; known: {_BUCKET_ROWS}")
    table[[i for i, b in enumerate(_BUCKET_ROWS) if b not in buckets]] = 0
  return table


ANNEALS = ("constant", "linear", "cosine")


def compile_stages(stages: Sequence[Mapping]) -> dict[str, np.ndarray]:
  """Stage dicts (module doc) -> arrays: start, end i32[S], anneal i32[S], mix0, mix1 f32[S, 4, 3].

  >>> t = compile_stages([{"start": 0, "end": 10, "mix": {"llm": 1}},
  ...                     {"start": 10, "end": 20, "mix": {"click": 1}, "buckets": ("high",)}])
  >>> t["mix0"][1].tolist()  # rows high, medium, low, unknown; columns click, llm, human
  [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
  """
  if not stages:
    raise ValueError("a data schedule needs at least one stage")
  out = {k: [] for k in ("start", "end", "anneal", "mix0", "mix1")}
  for i, st in enumerate(stages):
    where = f"schedule stage {i}"
    unknown = set(st) - {"start", "end", "mix", "mix_end", "anneal", "buckets"}
    if unknown:
      raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    start, end = int(st["start"]), int(st["end"])
    if end <= start or (i and start != out["end"][-1]):
      raise ValueError(f"{where}: steps [{start}, {end}) must be non-empty and follow the "
                       f"previous stage's end")
    anneal = st.get("anneal", "constant")
    if anneal not in ANNEALS:
      raise ValueError(f"{where}: unknown anneal {anneal!r}; known: {ANNEALS}")
    buckets = st.get("buckets")
    mix0 = _mix_table(st["mix"], buckets, where)
    out["start"].append(start)
    out["end"].append(end)
    out["anneal"].append(ANNEALS.index(anneal))
    out["mix0"].append(mix0)
    out["mix1"].append(_mix_table(st["mix_end"], buckets, where) if "mix_end" in st else mix0)
  return {k: np.asarray(v) for k, v in out.items()}


def mixture_at(tables: dict[str, np.ndarray], step) -> jax.Array:
  """f32[4, 3]: the mixture per bucket row at `step` (traceable).

  >>> t = compile_stages([{"start": 0, "end": 10, "mix": {"llm": 1}, "mix_end": {"click": 1},
  ...                      "anneal": "linear"}])
  >>> mixture_at(t, 5)[0].tolist(), mixture_at(t, 99)[0].tolist()
  ([0.5, 0.5, 0.0], [1.0, 0.0, 0.0])
  """
  start, end = jnp.asarray(tables["start"]), jnp.asarray(tables["end"])
  k = jnp.clip(jnp.sum(step >= start) - 1, 0, start.shape[0] - 1)
  frac = jnp.clip((step - start[k]) / (end[k] - start[k]), 0.0, 1.0)
  alpha = jnp.stack([jnp.zeros_like(frac), frac, 0.5 * (1 - jnp.cos(jnp.pi * frac))])[
      jnp.asarray(tables["anneal"])[k]]
  return (1 - alpha) * jnp.asarray(tables["mix0"])[k] + alpha * jnp.asarray(tables["mix1"])[k]


def draw_sources(tables, step, bucket, seed: int) -> jax.Array:
  """i32[B]: the source index per list (into `SOURCES`), -1 where its bucket gets no data.

  A pure function of (seed, step, list position in the batch): u ~ U[0, 1) from
  fold_in(key(seed), step), the source the first whose cumulative normalised weight exceeds u.
  """
  mix = mixture_at(tables, step)[_bucket_row(bucket)]  # [B, 3]
  total = mix.sum(-1, keepdims=True)
  cum = jnp.cumsum(mix / jnp.maximum(total, 1e-12), axis=-1)
  u = jax.random.uniform(jax.random.fold_in(jax.random.key(seed), step), bucket.shape)
  source = jnp.minimum(jnp.sum(u[:, None] >= cum, axis=-1), len(SOURCES) - 1)
  return jnp.where(total[:, 0] > 0, source, -1)


def preset(name: str, total_steps: int) -> list[dict]:
  """Stages of a named schedule over `total_steps` (module doc).

  >>> [(s["start"], s["end"], s["mix"]) for s in preset("llm_then_click", 100)]
  [(0, 50, {'llm': 1.0}), (50, 100, {'click': 1.0})]
  """
  half, third = total_steps // 2, total_steps // 3
  llm, click = {"llm": 1.0}, {"click": 1.0}
  if name == "llm_then_click":
    return [{"start": 0, "end": half, "mix": llm},
            {"start": half, "end": total_steps, "mix": click}]
  if name == "click_then_llm":
    return [{"start": 0, "end": half, "mix": click},
            {"start": half, "end": total_steps, "mix": llm}]
  if name in ("anneal_linear", "anneal_cosine"):
    return [{"start": 0, "end": total_steps, "mix": llm, "mix_end": click,
             "anneal": name.split("_")[1]}]
  if name == "frequency_staged":
    both = {"click": 0.5, "llm": 0.5}
    return [
        {"start": 0, "end": third, "mix": {"high": click}},
        {"start": third, "end": 2 * third, "mix": {"high": click, "medium": both}},
        {"start": 2 * third, "end": total_steps,
         "mix": {"high": click, "medium": both, "low": llm, "unknown": both}}]
  raise ValueError(f"unknown schedule preset {name!r}; known: {sorted(PRESETS)}")


PRESETS = ("llm_then_click", "click_then_llm", "anneal_linear", "anneal_cosine",
           "frequency_staged")


def schedule_stages(config) -> list[dict]:
  """The stages of `config.supervision`: explicit `stages`, else the preset `schedule`."""
  sup = config.supervision
  stages = sup.get("stages")
  if stages:
    return [dict(s) for s in stages]
  return preset(sup.schedule, config.total_steps)


def data_schedule(scores, batch, *, step, config):
  """Each list trained on one source drawn from the stage's mixture (module doc)."""
  tables = compile_stages(schedule_stages(config))
  used = [s for i, s in enumerate(SOURCES) if tables["mix0"][..., i].any() or
          tables["mix1"][..., i].any()]
  per = _source_losses(scores, batch, config, used)
  source = draw_sources(tables, step, batch["bucket"], config.seed)
  valid = batch["list_valid"]
  n = jnp.maximum(jnp.sum(valid & (source >= 0)), 1)
  loss = 0.0
  aux = {}
  for s in used:
    chosen = (valid & (source == SOURCES.index(s))).astype(jnp.float32)
    loss = loss + jnp.sum(chosen * per[s][0])
    aux[f"loss_{s}"] = jnp.sum(chosen * per[s][0]) / jnp.maximum(chosen.sum(), 1.0)
    aux[f"share_{s}"] = chosen.sum() / jnp.maximum(valid.sum(), 1)
  return loss / n, aux
