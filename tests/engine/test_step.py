"""`train_step` options: gradient accumulation and the dropout bit generator."""

import functools
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from train_helpers import ROOT, run_on_eight_devices, tiny_lists

from rankjax import registry, supervision
from rankjax.configs import default as config_defaults
from rankjax.data import pipeline, store
from rankjax.engine import mesh as mesh_lib
from rankjax.engine import step as step_lib
from rankjax.models import cross_encoder


class _Scorer(nn.Module):
  """Deterministic and free of batch statistics, so micro-batches can match the whole batch."""

  @nn.compact
  def __call__(self, batch, *, train=False):
    del train
    return nn.Dense(1)(jnp.tanh(nn.Dense(8)(batch["features"])))[..., 0]


def _config(num, loss="softmax"):
  config = config_defaults.default_config()
  config.total_steps, config.loss.name, config.grad_accum_steps = 10, loss, num
  config.supervision.source = "click"  # every tiny list has click labels on every item
  return config


def _batch(tmp_path, size=8):
  path = store.write_dataset(tmp_path, name="tiny", splits={"train": tiny_lists(size, seed=3)})
  split = store.open_split(path, "train")
  return pipeline.make_batch(
    [split[i] for i in range(size)], batch_size=size, list_size=20, layout=split.layout
  )


def test_split_microbatches_is_strided():
  batch = {"x": jnp.arange(12).reshape(6, 2), "y": jnp.arange(6)}
  micro = step_lib.split_microbatches(batch, 3)
  assert micro["x"].shape == (3, 2, 2)
  np.testing.assert_array_equal(micro["y"], [[0, 3], [1, 4], [2, 5]])
  np.testing.assert_array_equal(micro["x"][1], [[2, 3], [8, 9]])


@pytest.mark.parametrize("loss", ["softmax", "listmle", "approx_ndcg"])
def test_accumulated_step_equals_the_whole_batch(tmp_path, loss):
  """Exact for listwise losses (a mean over lists) when every list has labels."""
  batch = jax.tree.map(jnp.asarray, _batch(tmp_path))
  tx = optax.sgd(0.5)
  state = step_lib.init_state(_Scorer(), tx, batch, seed=0)
  objective = supervision.get_objective("single")
  out = {}
  for num in (1, 2, 4):
    step = jax.jit(
      lambda s, b, num=num: step_lib.train_step(
        s, b, model=_Scorer(), tx=tx, objective=objective, config=_config(num, loss)
      )
    )
    out[num] = step(state, batch)
  whole_state, whole = out[1]
  for num in (2, 4):
    micro_state, micro = out[num]
    np.testing.assert_allclose(micro["loss"], whole["loss"], rtol=1e-6)
    np.testing.assert_allclose(micro["grad_norm"], whole["grad_norm"], rtol=1e-5)
    assert int(micro["labelled_items"]) == int(whole["labelled_items"]) > 0  # counts add up
    for a, b in zip(jax.tree.leaves(micro_state.params), jax.tree.leaves(whole_state.params)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert float(whole["grad_norm"]) > 1e-3  # the comparison is about a real update


def test_accumulation_cuts_activation_memory():
  """The compiled step of a cross-encoder needs far less scratch memory in 4 micro-batches."""
  model = cross_encoder.Model(size="tiny", hidden_size=64, intermediate_size=256)
  rng = np.random.default_rng(0)
  tokens = rng.integers(5, 500, (8, 8, 64)).astype(np.int32)
  batch = {
    "tokens": tokens,
    "token_types": np.zeros_like(tokens),
    "mask": np.ones((8, 8), bool),
    "list_valid": np.ones(8, bool),
    "label_click": rng.integers(0, 2, (8, 8)).astype(np.float32),
    "mask_click": np.ones((8, 8), bool),
  }
  batch = jax.tree.map(jnp.asarray, batch)
  tx = optax.adamw(1e-4)
  state = jax.eval_shape(lambda: step_lib.init_state(model, tx, batch, seed=0))
  scratch = {}
  for num in (1, 4):
    step = jax.jit(
      functools.partial(
        step_lib.train_step,
        model=model,
        tx=tx,
        config=_config(num),
        objective=supervision.get_objective("single"),
      )
    )
    compiled = step.lower(state, batch).compile()
    scratch[num] = compiled.memory_analysis().temp_size_in_bytes
  assert scratch[4] < 0.5 * scratch[1], scratch


def test_micro_batches_must_divide_the_lists_per_device():
  mesh = mesh_lib.make_mesh()
  config = ml_collections.ConfigDict({"grad_accum_steps": 3, "data": {"batch_size": 8}})
  with pytest.raises(ValueError, match=r"grad_accum_steps=3 .* dividing the 8 lists per device"):
    step_lib.check_grad_accum(config, mesh)
  config.grad_accum_steps = 0
  with pytest.raises(ValueError, match="positive integer"):
    step_lib.check_grad_accum(config, mesh)
  config.grad_accum_steps = 4
  step_lib.check_grad_accum(config, mesh)


SCRIPT = textwrap.dedent("""
    import sys, tempfile, pathlib
    sys.path.insert(0, sys.argv[1])
    import jax, numpy as np
    from rankjax.engine import mesh as mesh_lib, step as step_lib, train
    from rankjax import supervision
    from rankjax.data import pipeline, store
    from train_helpers import tiny_config, tiny_dataset

    assert jax.device_count() == 8, jax.devices()
    path = tiny_dataset(pathlib.Path(tempfile.mkdtemp()))
    split = store.open_split(path, "train")
    example = pipeline.make_batch([], batch_size=1, list_size=16, layout=split.layout)

    def run(devices, num):
      config = tiny_config(path, **{"data.batch_size": 16, "loss.name": "mse",
                                    "grad_accum_steps": num})
      mesh = mesh_lib.make_mesh(devices)
      step_lib.check_grad_accum(config, mesh)
      model, tx, _, init = train.build(config, mesh, example)
      step_fn = step_lib.compile_train_step(mesh, model=model, tx=tx, config=config,
                                            objective=supervision.get_objective("single"))
      state = init()
      it = iter(pipeline.train_dataset(split, batch_size=16, list_sizes=(16, 32), seed=0,
                                       num_threads=0))
      batch = mesh_lib.shard_batch(next(it), mesh)
      hlo = step_fn.lower(state, batch).compile().as_text()
      losses = []
      for _ in range(3):
        state, measured = step_fn(state, mesh_lib.shard_batch(next(it), mesh))
        losses.append(float(measured["loss"]))
      return jax.device_get(state), losses, hlo

    one = run(jax.devices()[:1], 2)
    eight = run(jax.devices(), 2)
    # Strided micro-batches split each device's own lists: no list crosses devices.
    for op in ("all-to-all", "all-gather", "collective-permute"):
      assert op not in eight[2], op
    assert "all-reduce" in eight[2]
    np.testing.assert_allclose(one[1], eight[1], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(one[0]), jax.tree.leaves(eight[0])):
      np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                 rtol=1e-4, atol=1e-5)
    print("EQUIVALENT", one[1])
""")


@pytest.mark.slow
def test_eight_devices_accumulate_like_one():
  run_on_eight_devices(SCRIPT)


def test_dropout_key_implementations():
  rng = jax.random.PRNGKey(3)
  assert step_lib.dropout_key(rng, "threefry2x32") is rng
  key = step_lib.dropout_key(rng, "rbg")
  assert str(jax.random.key_impl(key)) == "rbg"
  np.testing.assert_array_equal(
    jax.random.key_data(key), jax.random.key_data(step_lib.dropout_key(rng, "rbg"))
  )
  with pytest.raises(
    registry.UnknownName, match="unknown config.dropout_rng_impl 'philox'; known: .*threefry2x32"
  ):
    step_lib.dropout_key(rng, "philox")


def test_rbg_dropout_trains_and_changes_only_the_masks(tmp_path):
  """`config.dropout_rng_impl`: other masks, same step where dropout is off; deterministic."""
  rng = np.random.default_rng(0)
  tokens = rng.integers(5, 500, (4, 3, 16)).astype(np.int32)
  batch = jax.tree.map(
    jnp.asarray,
    {
      "tokens": tokens,
      "token_types": np.zeros_like(tokens),
      "mask": np.ones((4, 3), bool),
      "list_valid": np.ones(4, bool),
      "mask_click": np.ones((4, 3), bool),
      "label_click": rng.integers(0, 2, (4, 3)).astype(np.float32),
    },
  )
  tx = optax.sgd(0.1)
  objective = supervision.get_objective("single")

  def step(impl, dropout, accum=1):
    model = cross_encoder.Model(size="tiny", dropout=dropout)
    config = _config(accum)
    config.dropout_rng_impl = impl
    state = step_lib.init_state(model, tx, batch, seed=0)
    return jax.jit(
      functools.partial(step_lib.train_step, model=model, tx=tx, objective=objective, config=config)
    )(state, batch)[1]["loss"]

  assert float(step("rbg", 0.3)) == float(step("rbg", 0.3))
  assert float(step("rbg", 0.3)) != float(step("threefry2x32", 0.3))
  assert np.isfinite(float(step("unsafe_rbg", 0.3, accum=2)))
  assert float(step("rbg", 0.0)) == float(step("threefry2x32", 0.0))


def test_step_imports_without_the_data_stack():
  """Benchmarks run the engine's step where only jax, flax, optax and transformers are installed
  (the GPU benchmark machine): `rankjax.engine.step` must not pull in the input pipeline or
  configs."""
  code = textwrap.dedent("""
      import sys
      class Block:
        def find_spec(self, name, path=None, target=None):
          if name.split(".")[0] in ("grain", "tensorflow_datasets", "ml_collections", "orbax"):
            raise ImportError("blocked " + name)
      sys.meta_path.insert(0, Block())
      from rankjax.engine import step
      from rankjax import supervision
      from rankjax.models import cross_encoder
      print("OK")
  """)
  proc = subprocess.run(
    [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
  )
  assert proc.stdout.strip() == "OK", proc.stderr[-2000:]


@pytest.mark.parametrize("objective_name", ["regression_em", "dla"])
def test_accumulation_threads_objective_variables(tmp_path, objective_name):
  """Objectives with their own variables: params train, state is updated micro-batch after
  micro-batch (with no decay, EM's per-rank counts are the whole batch's)."""
  batch = jax.tree.map(jnp.asarray, _batch(tmp_path))
  config = _config(2)
  config.supervision.em_decay = 1.0
  objective = supervision.get_objective(objective_name)
  tx = optax.sgd(0.5)
  init = functools.partial(objective.init, config=config)
  state = step_lib.init_state(_Scorer(), tx, batch, seed=0, objective_init=init)
  out = {}
  for num in (1, 2):
    config.grad_accum_steps = num
    out[num] = jax.jit(
      functools.partial(
        step_lib.train_step, model=_Scorer(), tx=tx, objective=objective, config=config
      )
    )(state, batch)
  for new_state, measured in out.values():
    assert np.isfinite(float(measured["loss"]))
    moved = jax.tree.map(lambda a, b: not np.allclose(a, b), new_state.params, state.params)
    assert any(jax.tree.leaves(moved))
  if objective_name == "regression_em":
    np.testing.assert_allclose(
      out[2][0].objective["state"]["seen"], out[1][0].objective["state"]["seen"]
    )
    assert not np.allclose(out[2][0].objective["state"]["seen"], state.objective["state"]["seen"])
  else:
    changed = jax.tree.map(
      lambda a, b: not np.allclose(a, b), out[2][0].objective["params"], state.objective["params"]
    )
    assert all(jax.tree.leaves(changed))
