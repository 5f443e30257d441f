r"""The frequency-gated multi-objective: click and LLM losses on the same lists, mixed per query.

"freq_multi_objective" (`config.supervision.objective`): one model; on every list, a click loss
and an LLM-label loss on the same scores, combined per query by a gate w(frequency) in [0, 1] on
the click loss (`rankjax.supervision.gates`, `config.supervision.gate`):

  loss = sum_b valid_b * (w_b * L_click(b) + (1 - w_b) * L_llm(b)) / sum_b valid_b

L_s(b) is `config.loss` on list b with source s's labels (per-list mean over its valid terms; the
click loss carries the weights hook `config.supervision.weights`, e.g. IPS). The mean of each
loss over the lists that have its labels, and of w over the batch's lists, are logged
("loss_click", "loss_llm", "gate_mean").

Config lines:
  config.supervision.objective = "freq_multi_objective"
  config.supervision.gate = {"name": "sigmoid", "centre": 20.0, "temperature": 1.0}
"""

from __future__ import annotations

import jax.numpy as jnp

from rankjax import registry
from rankjax.supervision import gates, objective, single

MIXED = ("click", "llm")  # the label sources whose losses the gate mixes


@registry.register(objective.OBJECTIVES, "freq_multi_objective")
@objective.stateless(label_sources=lambda config: {"supervision.objective": MIXED})
def freq_multi_objective(scores, batch, *, step, config):
  """Click and LLM losses on the same lists, mixed per list by a frequency gate (module doc)."""
  del step
  w = gates.chosen(config)(batch, config)
  per = single.source_losses(scores, batch, config, MIXED)
  valid = batch["list_valid"].astype(jnp.float32)
  n = jnp.maximum(valid.sum(), 1.0)
  (lc, hc), (ll, hl) = per["click"], per["llm"]
  loss = jnp.sum(valid * (w * lc + (1 - w) * ll)) / n
  aux = {
    "loss_click": jnp.sum(valid * hc * lc) / jnp.maximum(jnp.sum(valid * hc), 1.0),
    "loss_llm": jnp.sum(valid * hl * ll) / jnp.maximum(jnp.sum(valid * hl), 1.0),
    "gate_mean": jnp.sum(valid * w) / n,
  }
  return loss, aux
