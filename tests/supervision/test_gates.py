"""Frequency gates: every registered one, the learned gate's fit and its preparation, and a new
gate added by one function and one config line."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from supervision_helpers import batch_of, config_for, tiny_dataset_with_llm
from train_helpers import tiny_config

from rankjax import registry, supervision
from rankjax.data import store
from rankjax.engine import train
from rankjax.sim import world as demo_world
from rankjax.supervision import gates


@pytest.mark.parametrize("name", sorted(supervision.GATES))
def test_every_gate_gives_a_weight_per_list_in_0_1(name):
  batch = jax.tree.map(jnp.asarray, batch_of())
  config = config_for(gate=name)
  config.supervision.gate.update({"coef": 1.5, "bias": -4.0})  # the learned gate's, as fitted
  w = jax.jit(lambda b: supervision.GATES[name](b, config))(batch)
  assert w.shape == batch["list_valid"].shape and w.dtype == jnp.float32
  assert np.all((np.asarray(w) >= 0) & (np.asarray(w) <= 1))


def test_gates():
  batch = batch_of()
  config = config_for()
  np.testing.assert_allclose(gates.hard_gate(batch, config), [1, 0.5, 0, 0.25, 1, 0])
  np.testing.assert_allclose(gates.linear_gate(batch, config), [1, 0.5, 0, 0.25, 1, 0])
  w = np.asarray(gates.sigmoid_gate(batch, config))
  assert np.all(np.diff(w[np.argsort(batch["query_freq"])]) > 0)  # increasing in frequency
  assert w[0] > 0.95 and w[3] < 0.1


def test_fit_gate_recovers_a_logistic_gate():
  rng = np.random.default_rng(0)
  freq = np.exp(rng.uniform(0, 6, 20000)) - 1
  p = 1 / (1 + np.exp(-(1.5 * np.log1p(freq) - 4.0)))
  fitted = gates.fit_gate(freq, (rng.uniform(size=freq.size) < p).astype(float), l2=0.0)
  assert abs(fitted["coef"] - 1.5) < 0.1 and abs(fitted["bias"] + 4.0) < 0.3
  config = config_for(gate="learned")
  config.supervision.gate.update(fitted)
  w = gates.learned_gate({"query_freq": jnp.asarray(freq[:5], jnp.float32)}, config)
  np.testing.assert_allclose(w, p[:5], atol=0.05)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
  cfg = demo_world.WorldConfig(num_queries=120, num_docs=500, sessions=2000, seed=3)
  return demo_world.build(tmp_path_factory.mktemp("world"), cfg)


def test_learned_gate_is_fitted_on_its_split_before_training(world):
  path, meta = world
  freq, target = gates.gate_targets(store.open_split(path, "validation"))
  assert len(freq) == len(target) > 5 and set(np.unique(target)) <= {0.0, 0.5, 1.0}
  config = config_for(gate="learned", objective="freq_multi_objective")
  prepared, notes = supervision.prepare(config, supervision.Context(path, meta))
  fitted = gates.fit_gate(freq, target)
  assert (prepared.supervision.gate.coef, prepared.supervision.gate.bias) == (
    fitted["coef"],
    fitted["bias"],
  )
  assert config.supervision.gate.coef is None  # the caller's config is left as it was
  assert len(notes) == 1 and notes[0].startswith(
    f"Learned gate (fitted on {len(freq)} `validation` lists; click labels ranked better"
  )
  # A given gate is kept; half a gate is an error.
  assert supervision.prepare(prepared, supervision.Context(path, meta))[1] == []
  config.supervision.gate.coef = 1.0
  with pytest.raises(ValueError, match="both coef and bias or neither"):
    supervision.prepare(config, supervision.Context(path, meta))


# A new gate: one function, registered where it is defined, and one config line.
@registry.register(supervision.GATES, "toy_quarter")
def toy_quarter(batch, config):
  del config
  return jnp.full(batch["list_valid"].shape, 0.25)


@pytest.mark.slow
def test_a_new_gate_is_one_function_and_one_config_line(tmp_path):
  config = tiny_config(
    tiny_dataset_with_llm(tmp_path / "data"),
    **{"supervision.objective": "freq_multi_objective", "supervision.gate.name": "toy_quarter"},
  )
  out = train.train_and_evaluate(config, tmp_path / "run")
  assert out["step"] == config.total_steps
  logged = (tmp_path / "run" / "metrics.jsonl").read_text()
  assert '"train/gate_mean": 0.25' in logged
