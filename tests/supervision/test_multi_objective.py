"""The frequency-gated multi-objective: per-list mixing of the click and LLM losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from supervision_helpers import batch_of, config_for

from rankjax.supervision import multi_objective, single

freq_multi_objective = multi_objective.freq_multi_objective.loss_fn


def single_loss(batch, source, scores):
  config = config_for("single", source=source)
  return single.single_source.loss_fn(scores, batch, step=0, config=config)[0]


@pytest.mark.parametrize("weight,source", [(1.0, "click"), (0.0, "llm")])
def test_multi_objective_reduces_to_one_source(weight, source):
  batch = batch_of()
  scores = jnp.asarray(np.random.default_rng(1).normal(size=batch["mask"].shape), jnp.float32)
  config = config_for(gate="hard")
  config.supervision.gate.bucket_weights = (weight,) * 3
  config.supervision.gate.unknown_weight = weight
  loss, aux = freq_multi_objective(scores, batch, step=0, config=config)
  np.testing.assert_allclose(loss, single_loss(batch, source, scores), rtol=1e-6)
  np.testing.assert_allclose(aux[f"loss_{source}"], loss, rtol=1e-6)
  assert float(aux["gate_mean"]) == weight


def test_multi_objective_mixes_per_list_and_has_finite_grads():
  batch = batch_of()
  scores = jnp.asarray(np.random.default_rng(2).normal(size=batch["mask"].shape), jnp.float32)
  config = config_for(gate="hard")
  loss, _ = freq_multi_objective(scores, batch, step=0, config=config)
  where = batch["mask"]
  lc = single.per_list_loss("softmax", scores, batch["label_click"], where)
  ll = single.per_list_loss("softmax", scores, batch["label_llm"], where)
  w = np.array([1, 0.5, 0, 0.25, 1])
  np.testing.assert_allclose(loss, np.mean(w * lc[:5] + (1 - w) * ll[:5]), rtol=1e-6)
  grads = jax.grad(lambda s: freq_multi_objective(s, batch, step=0, config=config)[0])(scores)
  assert np.isfinite(grads).all() and not np.any(grads[5]) and not np.any(grads[0, 3:])


def test_multi_objective_click_loss_takes_ips_weights():
  batch = batch_of()
  scores = jnp.zeros(batch["mask"].shape)
  config = config_for(gate="hard", weights="ips_pbm", propensities=(1.0, 0.5, 0.25, 0.2, 0.1))
  config.supervision.gate.bucket_weights = (1.0,) * 3
  config.supervision.gate.unknown_weight = 1.0
  ips = freq_multi_objective(scores, batch, step=0, config=config)[0]
  config.supervision.weights = "none"
  naive = freq_multi_objective(scores, batch, step=0, config=config)[0]
  assert float(ips) > float(naive)


def test_missing_source_is_named():
  batch = batch_of()
  del batch["label_llm"], batch["mask_llm"]
  with pytest.raises(KeyError, match="no labels from source 'llm'"):
    freq_multi_objective(jnp.zeros(batch["mask"].shape), batch, step=0, config=config_for())
