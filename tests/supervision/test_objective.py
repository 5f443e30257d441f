"""The Objective protocol: every registered objective, the declared config it reads, preparation,
and a new objective with its own variables added by one class and one config line."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from supervision_helpers import batch_of, config_for
from train_helpers import ROOT, parse_config_flags, tiny_config, tiny_dataset

from rankjax import registry, supervision
from rankjax.engine import train
from rankjax.ranking import losses


@pytest.mark.parametrize("name", sorted(supervision.OBJECTIVES))
def test_every_objective_gives_a_finite_loss_and_keeps_its_state(name):
  config = config_for(name, gate="linear")
  batch = batch_of()
  if supervision.data_phases(config) is not None:  # the source of each list, as its stream has
    batch["source_id"] = np.arange(len(batch["bucket"]), dtype=np.int32) % 2
  batch = jax.tree.map(jnp.asarray, batch)
  objective = supervision.get_objective(name)
  variables = objective.init(jax.random.key(0), config)
  assert set(variables) == {"params", "state"}

  @jax.jit
  def loss_and_grads(scores, variables):
    def loss_fn(scores, params):
      loss, aux, state = objective.apply(
        scores, batch, step=7, config=config, variables={**variables, "params": params}
      )
      return loss, (aux, state)

    return jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(scores, variables["params"])

  scores = jnp.asarray(np.random.default_rng(0).normal(size=batch["mask"].shape), jnp.float32)
  (loss, (aux, state)), grads = loss_and_grads(scores, variables)
  assert loss.shape == () and np.isfinite(loss)
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves((aux, grads)))
  assert jax.tree.structure(state) == jax.tree.structure(variables["state"])
  for new, old in zip(jax.tree.leaves(state), jax.tree.leaves(variables["state"])):
    assert new.shape == old.shape and new.dtype == old.dtype


def test_an_unknown_objective_lists_the_known_ones():
  with pytest.raises(registry.UnknownName, match="unknown objective 'singel'; known: .*single"):
    supervision.get_objective("singel")


def test_stateless_objectives_keep_their_loss_function():
  batch = batch_of()
  config = config_for("single")
  scores = jnp.zeros(batch["mask"].shape)
  objective = supervision.get_objective("single")
  variables = objective.init(None, config)
  assert variables == {"params": {}, "state": {}}
  loss, aux, state = objective.apply(scores, batch, step=0, config=config, variables=variables)
  assert (loss, aux) == objective.loss_fn(scores, batch, step=0, config=config) and state == {}


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.py")), ids=lambda p: p.stem)
def test_supervision_keys_override_through_the_locked_flag(path):
  config = parse_config_flags(
    f"--config={path}",
    "--config.supervision.ips_clip=0.05",
    "--config.supervision.gate.name=sigmoid",
  )
  assert config.supervision.ips_clip == 0.05 and config.supervision.gate.name == "sigmoid"
  for variant in config.get("study", {}).get("variants", {}).values():
    supervision.get_objective(variant.get("objective", "single"))


def test_supervision_reads_config_keys_as_declared_attributes():
  files = [*(ROOT / "rankjax" / "supervision").glob("*.py"), ROOT / "rankjax/engine/step.py"]
  for file in files:
    assert not re.search(r"config(\.\w+)*\.get\(", file.read_text()), file


# A new objective with its own variables: one class, registered where it is defined, and one
# config line. A trained scale on the softmax loss (a param) and a count of steps (state).
@registry.register(supervision.OBJECTIVES, "toy_counted")
class CountedSoftmax:
  @staticmethod
  def init(rng, config):
    del rng, config
    return {"params": {"scale": jnp.ones(())}, "state": {"steps": jnp.zeros((), jnp.int32)}}

  @staticmethod
  def apply(scores, batch, *, step, config, variables):
    del step
    labels, where = supervision.labels_and_where(batch, config.supervision.source)
    loss = variables["params"]["scale"] * losses.softmax_loss(scores, labels, where=where)
    return loss, {"scale": variables["params"]["scale"]}, {"steps": variables["state"]["steps"] + 1}


@pytest.mark.slow
def test_a_new_objective_is_one_class_and_one_config_line(tmp_path):
  config = tiny_config(tiny_dataset(tmp_path / "data"), **{"supervision.objective": "toy_counted"})
  out = train.train_and_evaluate(config, tmp_path / "run")
  variables = out["state"].objective
  assert int(variables["state"]["steps"]) == config.total_steps == out["step"]
  assert float(variables["params"]["scale"]) != 1.0  # trained with the model
  resumed = train.train_and_evaluate(config, tmp_path / "run")  # restored from the checkpoint
  assert int(resumed["state"].objective["state"]["steps"]) == config.total_steps
