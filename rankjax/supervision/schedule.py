r"""The data schedule: which lists train on which label source, by step, in stages.

"data_schedule" (`config.supervision.objective`): each list of a batch is trained on one source
from the mixture of the stage the step is in (optionally a different mixture per frequency
bucket, zero to leave the bucket out). A stage is a dict:
  {"start": step, "end": step, "mix": {"llm": 1.0}, "mix_end": {...}, "anneal": "linear",
   "buckets": ("high",)}
`mix_end` and `anneal` ("constant", "linear", "cosine") interpolate the mixture from `mix` at
`start` to `mix_end` at `end`; `buckets` restricts the stage to those buckets. `mix` may also map
a bucket name to a mixture ({"high": {"click": 1}, "low": {"llm": 1}}). Steps past the last stage
use its final mixture. The stages are `config.supervision.stages`, or when that is empty the
preset `config.supervision.schedule` (`PRESETS`: name -> function(total_steps) -> stages):
llm_then_click, click_then_llm, anneal_linear, anneal_cosine (llm -> click), frequency_staged
(high-frequency lists on clicks first, then medium lists on both sources added, then low lists
on LLM labels added). The loss is the mean over the lists the stage trains (a list without labels
from its source adds 0); "loss_<source>", "share_<source>" (of the batch's lists) and
"share_trained" (lists that train: their source's labels present) are logged.

How a list gets its source, `config.supervision.schedule_mode` (`MODES`):
- "per_list" (the default): every list of the shuffled split comes, and draws its source inside
  the jitted step, u = uniform(fold_in(key(seed), step))[list] (`draw_sources`); a list whose
  bucket the stage leaves out fills its batch slot and adds 0 (two thirds of the slots in
  `frequency_staged`'s first stage). Exact anneals; combines with `config.data.length_grouped`.
- "iterator": the input pipeline serves only lists the stage trains. Each stage is a grain mix
  of cells (the lists of one bucket with labels from one source, paired with that source)
  weighted as the mixture says (`data_phases` -> `rankjax.data.phases`, drawn by
  `rankjax.data.mixture`); the batch carries each list's source ("source_id"), and every slot
  trains. An annealed stage's mixture changes in `config.supervision.anneal_pieces` equal
  steps, each held at the mixture of its middle step.
  The expected gradient of a step is the per-list draw's; its noise is lower where the draw
  leaves slots idle, so under Adam the early stages train harder. On the demo this costs the
  rare queries NDCG@10 (README, "The data schedule"): hence not the default.
Either way the batch at a step is a pure function of the step (the data iterator's state is in
the checkpoint) and so is the step, so a resumed run is exact, and the shapes never change, so
one compiled step serves every stage (no recompilation at stage boundaries).

Config lines:
  config.supervision.objective = "data_schedule"
  config.supervision.schedule = "anneal_cosine"      # or config.supervision.stages = (...)
  config.supervision.schedule_mode = "iterator"      # or "per_list" (default)

A new preset is one function of `total_steps` here, registered with
`@registry.register(PRESETS, "name")`.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rankjax import registry
from rankjax.data import phases, schema
from rankjax.supervision import labels as labels_lib
from rankjax.supervision import objective, single

SOURCES = schema.SOURCES
_BUCKET_ROWS = labels_lib.BUCKET_ROWS


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


# A fixed enumeration, not a registry: a stage's anneal is stored as its index here and picks,
# inside the jitted step, one row of the curves `mixture_at` stacks in this order (one compiled
# step serves every stage); a new anneal is a new row there, not a registered function.
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
      raise ValueError(
        f"{where}: steps [{start}, {end}) must be non-empty and follow the previous stage's end"
      )
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
    jnp.asarray(tables["anneal"])[k]
  ]
  return (1 - alpha) * jnp.asarray(tables["mix0"])[k] + alpha * jnp.asarray(tables["mix1"])[k]


def draw_sources(tables, step, bucket, seed: int) -> jax.Array:
  """i32[B]: the source index per list (into `SOURCES`), -1 where its bucket gets no data.

  A pure function of (seed, step, list position in the batch): u ~ U[0, 1) from
  fold_in(key(seed), step), the source the first whose cumulative normalised weight exceeds u.
  """
  mix = mixture_at(tables, step)[labels_lib.bucket_row(bucket)]  # [B, 3]
  total = mix.sum(-1, keepdims=True)
  cum = jnp.cumsum(mix / jnp.maximum(total, 1e-12), axis=-1)
  u = jax.random.uniform(jax.random.fold_in(jax.random.key(seed), step), bucket.shape)
  source = jnp.minimum(jnp.sum(u[:, None] >= cum, axis=-1), len(SOURCES) - 1)
  return jnp.where(total[:, 0] > 0, source, -1)


PRESETS: dict[str, Callable[[int], list[dict]]] = {}
_LLM, _CLICK, _BOTH = {"llm": 1.0}, {"click": 1.0}, {"click": 0.5, "llm": 0.5}


@registry.register(PRESETS, "llm_then_click")
def llm_then_click(total_steps: int) -> list[dict]:
  """LLM labels for the first half of the run, clicks for the second.

  >>> [(s["start"], s["end"], s["mix"]) for s in llm_then_click(100)]
  [(0, 50, {'llm': 1.0}), (50, 100, {'click': 1.0})]
  """
  half = total_steps // 2
  return [
    {"start": 0, "end": half, "mix": _LLM},
    {"start": half, "end": total_steps, "mix": _CLICK},
  ]


@registry.register(PRESETS, "click_then_llm")
def click_then_llm(total_steps: int) -> list[dict]:
  """Clicks for the first half of the run, LLM labels for the second."""
  half = total_steps // 2
  return [
    {"start": 0, "end": half, "mix": _CLICK},
    {"start": half, "end": total_steps, "mix": _LLM},
  ]


@registry.register(PRESETS, "anneal_linear")
def anneal_linear(total_steps: int) -> list[dict]:
  """From LLM labels to clicks over the run, linearly."""
  return [{"start": 0, "end": total_steps, "mix": _LLM, "mix_end": _CLICK, "anneal": "linear"}]


@registry.register(PRESETS, "anneal_cosine")
def anneal_cosine(total_steps: int) -> list[dict]:
  """From LLM labels to clicks over the run, on a half cosine."""
  return [{"start": 0, "end": total_steps, "mix": _LLM, "mix_end": _CLICK, "anneal": "cosine"}]


@registry.register(PRESETS, "frequency_staged")
def frequency_staged(total_steps: int) -> list[dict]:
  """High-frequency lists on clicks first, then medium lists on both sources added, then low
  lists on LLM labels added."""
  third = total_steps // 3
  return [
    {"start": 0, "end": third, "mix": {"high": _CLICK}},
    {"start": third, "end": 2 * third, "mix": {"high": _CLICK, "medium": _BOTH}},
    {
      "start": 2 * third,
      "end": total_steps,
      "mix": {"high": _CLICK, "medium": _BOTH, "low": _LLM, "unknown": _BOTH},
    },
  ]


def schedule_stages(config) -> list[dict]:
  """The stages of `config.supervision`: explicit `stages`, else the preset `schedule`."""
  if config.supervision.stages:
    return [dict(s) for s in config.supervision.stages]
  preset = registry.lookup(PRESETS, config.supervision.schedule, "schedule preset")
  return preset(config.total_steps)


def used_sources(tables: dict[str, np.ndarray]) -> list[str]:
  """The sources some stage of compiled `tables` draws with a weight above 0."""
  return [
    s for i, s in enumerate(SOURCES) if tables["mix0"][..., i].any() or tables["mix1"][..., i].any()
  ]


def _stages_sources(config) -> dict[str, tuple[str, ...]]:
  key = "supervision.stages" if config.supervision.stages else "supervision.schedule"
  return {key: tuple(used_sources(compile_stages(schedule_stages(config))))}


# How a list gets its source (module doc): a fixed pair, not a registry; `data_phases` and the
# loss branch on it.
MODES = ("iterator", "per_list")


def data_phases(config) -> list[phases.Phase] | None:
  """The training stream's mixtures by step in "iterator" mode (module doc); None in "per_list".

  A constant stage is one phase; an annealed one `config.supervision.anneal_pieces` phases (at
  most one per step), each at the mixture of its middle step; past an annealed last stage, its
  final mixture.
  """
  if config.supervision.schedule_mode == "per_list":
    return None
  tables = compile_stages(schedule_stages(config))
  out = []
  if tables["start"][0] > 0:  # before the first stage, its first mixture (as `mixture_at`)
    out.append(phases.Phase(0, tables["mix0"][0]))
  for i, (start, end) in enumerate(zip(tables["start"].tolist(), tables["end"].tolist())):
    mix0, mix1 = tables["mix0"][i], tables["mix1"][i]
    if tables["anneal"][i] == ANNEALS.index("constant") or np.array_equal(mix0, mix1):
      out.append(phases.Phase(start, mix0))
      continue
    pieces = min(config.supervision.anneal_pieces, end - start)
    bounds = start + np.arange(pieces + 1) * (end - start) // pieces
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
      out.append(phases.Phase(a, np.asarray(mixture_at(tables, (a + b - 1) / 2))))
    if i == len(tables["start"]) - 1:
      out.append(phases.Phase(end, mix1))
  return out


def _loss(scores, batch, *, step, config):
  """Each list trained on its source: the batch's "source_id" or a draw (module doc)."""
  tables = compile_stages(schedule_stages(config))
  used = used_sources(tables)
  per = single.source_losses(scores, batch, config, used)
  if config.supervision.schedule_mode == "per_list":
    source = draw_sources(tables, step, batch["bucket"], config.seed)
  elif "source_id" in batch:
    source = batch["source_id"]
  else:
    raise KeyError(
      "the data schedule in 'iterator' mode trains each list on the batch's source_id, which "
      "this batch lacks (`rankjax.data.pipeline.train_dataset` with the phases of "
      "`schedule.data_phases` sets it); config.supervision.schedule_mode='per_list' draws "
      "sources in the step instead"
    )
  valid = batch["list_valid"]
  n = jnp.maximum(jnp.sum(valid & (source >= 0)), 1)
  loss = 0.0
  trained = 0.0
  aux = {}
  for s in used:
    chosen = (valid & (source == SOURCES.index(s))).astype(jnp.float32)
    loss = loss + jnp.sum(chosen * per[s][0])
    trained = trained + jnp.sum(chosen * per[s][1])
    aux[f"loss_{s}"] = jnp.sum(chosen * per[s][0]) / jnp.maximum(chosen.sum(), 1.0)
    aux[f"share_{s}"] = chosen.sum() / jnp.maximum(valid.sum(), 1)
  aux["share_trained"] = trained / jnp.maximum(valid.sum(), 1)
  return loss / n, aux


# The objective: the loss, and the phases the engine builds the training stream from.
data_schedule = registry.register(objective.OBJECTIVES, "data_schedule")(
  objective.Stateless(_loss, label_sources=_stages_sources, data_phases=data_phases)
)
