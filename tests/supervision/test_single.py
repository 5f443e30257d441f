"""The single-source objective and the per-list losses the hybrid objectives mix."""

import jax.numpy as jnp
import numpy as np
import pytest
from supervision_helpers import batch_of, config_for

from rankjax.data import schema
from rankjax.ranking import losses
from rankjax.supervision import labels, single, weights


@pytest.mark.parametrize("source", schema.SOURCES)
@pytest.mark.parametrize("weights_name", ["none", "ips_pbm"])
def test_single_source_is_the_loss_on_its_labels_with_the_hook_weights(source, weights_name):
  batch = batch_of()
  scores = jnp.asarray(np.random.default_rng(0).normal(size=batch["mask"].shape), jnp.float32)
  config = config_for(
    "single", source=source, weights=weights_name, propensities=(1.0, 0.5, 0.25, 0.2, 0.1)
  )
  loss, aux = single.single_source.loss_fn(scores, batch, step=0, config=config)
  y, where = labels.labels_and_where(batch, source)
  expected = losses.softmax_loss(
    scores, y, where=where, weights=weights.WEIGHTS[weights_name](batch, config), reduce_fn=jnp.mean
  )
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  assert int(aux["labelled_items"]) == int(where.sum()) == 3 + 4 * 5


def test_source_losses_are_per_list_and_weigh_only_clicks():
  batch = batch_of()
  scores = jnp.asarray(np.random.default_rng(1).normal(size=batch["mask"].shape), jnp.float32)
  config = config_for(weights="ips_pbm", propensities=(1.0, 0.5, 0.25, 0.2, 0.1))
  per = single.source_losses(scores, batch, config, ("click", "llm"))
  for source, item_weights in (("click", weights.ips_pbm(batch, config)), ("llm", None)):
    y, where = labels.labels_and_where(batch, source)
    per_list, has_labels = per[source]
    np.testing.assert_array_equal(has_labels, [True] * 5 + [False])
    for b in range(5):
      w = None if item_weights is None else item_weights[b]
      np.testing.assert_allclose(
        per_list[b],
        losses.softmax_loss(scores[b], y[b], where=where[b], weights=w, reduce_fn=jnp.mean),
        rtol=1e-6,
      )
