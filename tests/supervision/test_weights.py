"""Weights hooks: every registered one, IPS with PBM propensities and their preparation, and a
new hook added by one function and one config line."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from supervision_helpers import batch_of, config_for
from train_helpers import tiny_config, tiny_dataset

from rankjax import registry, supervision
from rankjax.engine import train
from rankjax.supervision import weights


@pytest.mark.parametrize("name", sorted(supervision.WEIGHTS))
def test_every_weights_hook_gives_item_weights_or_none(name):
  batch = batch_of()
  config = config_for(weights=name, propensities=(1.0, 0.6, 0.4, 0.3, 0.2))
  out = supervision.WEIGHTS[name](batch, config)
  if out is not None:
    assert out.shape == batch["mask"].shape and jnp.issubdtype(out.dtype, jnp.floating)
    assert np.all(np.isfinite(out)) and np.all(np.asarray(out) >= 0)


def test_ips_pbm_weights_are_inverse_relative_propensities():
  config = config_for(weights="ips_pbm", propensities=(0.8, 0.4, 0.2), ips_clip=0.3)
  w = weights.ips_pbm({"position": jnp.array([[0, 1, 2, 3, 7]])}, config)
  np.testing.assert_allclose(w, [[1, 1, 2, 1 / 0.3, 1 / 0.3]], rtol=1e-6)


def test_ips_pbm_propensities_come_from_the_config_or_the_dataset():
  context = supervision.Context("unused", metadata={"propensities": [1.0, 0.5]})
  given = config_for(weights="ips_pbm", propensities=(1.0, 0.7))
  assert weights.fill_propensities(given, context) == {}
  empty = config_for(weights="ips_pbm")
  assert weights.fill_propensities(empty, context) == {"propensities": (1.0, 0.5)}
  with pytest.raises(ValueError, match=r"propensities.*rankjax.click_models"):
    weights.fill_propensities(empty, supervision.Context("unused"))


def test_prepare_fills_propensities_in_a_copy_of_a_locked_config():
  config = config_for(objective="single", weights="ips_pbm")
  config.lock()
  prepared, notes = supervision.prepare(
    config, supervision.Context("unused", metadata={"propensities": [1.0, 0.5]})
  )
  assert prepared.is_locked and notes == []
  assert prepared.supervision.propensities == (1.0, 0.5)
  assert config.supervision.propensities == ()  # the caller's config is left as it was


# A new weights hook: one function, registered where it is defined, and one config line. Its
# preparation sets a declared key, which the hook then reads; it records what it saw when traced.
TRACED = []


def _prepare_toy(config, context):
  del config
  context.notes.append("toy weights prepared")
  return {"ips_clip": 0.5}


@registry.register(supervision.WEIGHTS, "toy_half")
def toy_half(batch, config):
  TRACED.append(config.supervision.ips_clip)
  return jnp.full(batch["mask"].shape, config.supervision.ips_clip)


toy_half.prepare = _prepare_toy


@pytest.mark.slow
def test_a_new_weights_hook_is_one_function_and_one_config_line(tmp_path):
  config = tiny_config(tiny_dataset(tmp_path / "data"), **{"supervision.weights": "toy_half"})
  TRACED.clear()
  out = train.train_and_evaluate(config, tmp_path / "run")
  assert out["step"] == config.total_steps and out["preparation"] == ["toy weights prepared"]
  assert TRACED and set(TRACED) == {0.5}  # the step used the hook, with the prepared config
  saved = json.loads((tmp_path / "run" / "config.json").read_text())
  assert saved["supervision"]["ips_clip"] == 0.5 and config.supervision.ips_clip == 0.01
