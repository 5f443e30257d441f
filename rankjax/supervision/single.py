"""The "single" objective: the loss on one label source, and per-list losses for mixed sources.

"single" (the default `config.supervision.objective`) trains on one label source,
`config.supervision.source` (click, llm or human): the labels of the one label rule
(`labels.labels_and_where`), the loss `config.loss` from `rankjax.ranking.losses` (a mean over
the batch's valid terms), and per-item weights from the weights hook `config.supervision.weights`
(`rankjax.supervision.weights`). The objectives that mix sources per list (the multi-objective,
the data schedule) take each source's loss per list from `source_losses`.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from rankjax import registry
from rankjax.ranking import losses
from rankjax.supervision import labels as labels_lib
from rankjax.supervision import objective
from rankjax.supervision import weights as weights_lib


def _its_source(config) -> dict[str, tuple[str, ...]]:
  return {"supervision.source": (config.supervision.source,)}


@registry.register(objective.OBJECTIVES, "single")
@objective.stateless(label_sources=_its_source)
def single_source(scores, batch, *, step, config):
  """The loss on one label source, optionally weighted per item."""
  del step
  labels, where = labels_lib.labels_and_where(batch, config.supervision.source)
  weights = weights_lib.chosen(config)(batch, config)
  loss = losses.get_loss(config.loss)(
    scores, labels, where=where, weights=weights, reduce_fn=jnp.mean
  )
  return loss, {"labelled_items": jnp.sum(where)}


def per_list_loss(name, scores, labels, where, weights=None):
  """f32[B]: `name`'s loss of each list, the mean over that list's valid terms (0 if none)."""
  fn = losses.get_loss(name)

  def one(s, y, m, w):
    return fn(s, y, where=m, weights=w, reduce_fn=jnp.mean)

  if weights is None:
    return jax.vmap(lambda s, y, m: one(s, y, m, None))(scores, labels, where)
  return jax.vmap(one)(scores, labels, where, weights)


def source_losses(scores, batch, config, sources: Sequence[str]) -> dict:
  """{source: (per-list loss f32[B], list has a label from it bool[B])}.

  Each is `config.loss` per list on that source's labels; the click loss carries the weights
  hook `config.supervision.weights` (e.g. IPS).
  """
  out = {}
  for s in sources:
    labels, where = labels_lib.labels_and_where(batch, s)
    weights = weights_lib.chosen(config)(batch, config) if s == "click" else None
    out[s] = (per_list_loss(config.loss, scores, labels, where, weights), jnp.any(where, -1))
  return out
