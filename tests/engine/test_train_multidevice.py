"""Data parallelism: the same steps on 8 fake CPU devices match one device to float tolerance.

JAX fixes its device count when it starts, so the comparison runs in a subprocess with
`XLA_FLAGS=--xla_force_host_platform_device_count=8`, building a 1-device and an 8-device mesh.

The loss is pointwise MSE: listwise softmax is invariant to a shift of all scores, so the output
bias gets a gradient that is pure rounding noise, which Adam scales up to a full-size step whose
sign differs between reduction orders; every other parameter would still match.
"""

import textwrap

import pytest
from train_helpers import run_on_eight_devices

SCRIPT = textwrap.dedent("""
    import sys, tempfile, pathlib
    sys.path.insert(0, sys.argv[1])
    import jax, numpy as np
    from rankjax.engine import evaluate, mesh as mesh_lib, step as step_lib, train
    from rankjax import supervision
    from rankjax.data import pipeline, store
    from train_helpers import tiny_config, tiny_dataset

    assert jax.device_count() == 8, jax.devices()
    path = tiny_dataset(pathlib.Path(tempfile.mkdtemp()))
    config = tiny_config(path, **{"data.batch_size": 8, "eval.batch_size": 8, "loss.name": "mse"})
    split = store.open_split(path, "train")
    test = store.open_split(path, "test")
    example = pipeline.make_batch([], batch_size=1, list_size=16, layout=split.layout)

    def run(devices, config=config, evaluated=True):
      mesh = mesh_lib.make_mesh(devices)
      model, tx, _, init = train.build(config, mesh, example)
      objective = supervision.get_objective(config.supervision.objective)
      step_fn = step_lib.compile_train_step(mesh, model=model, tx=tx, config=config,
                                            objective=objective)
      state = init()
      it = iter(pipeline.train_dataset(split, batch_size=8, list_sizes=(16, 32), seed=0,
                                       num_threads=0, phases=supervision.data_phases(config)))
      losses = []
      for _ in range(4):
        batch = mesh_lib.shard_batch(next(it), mesh)
        assert len(batch["mask"].sharding.device_set) == len(devices)
        state, measured = step_fn(state, batch)
        losses.append(float(measured["loss"]))
      assert len(state.params["embed"]["kernel"].sharding.device_set) == len(devices)
      if not evaluated:
        return jax.device_get(state), losses
      eval_step = evaluate.make_eval_step(model, config.eval.metrics, "human", mesh)
      results, scores = evaluate.evaluate_split(
          eval_step, {"params": state.params, **state.model_state}, test, batch_size=8,
          list_sizes=(16, 32), mesh=mesh, with_scores=True)
      return jax.device_get(state), losses, results, scores

    one = run(jax.devices()[:1])
    eight = run(jax.devices())
    np.testing.assert_allclose(one[1], eight[1], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(one[0]), jax.tree.leaves(eight[0])):
      np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                 rtol=1e-4, atol=1e-5)
    for spec in one[2]:
      for bucket, value in one[2][spec].items():
        np.testing.assert_allclose(value, eight[2][spec][bucket], rtol=1e-4, atol=1e-5)
    assert sorted(one[3]) == sorted(eight[3]) == list(range(len(test)))
    for i in one[3]:
      np.testing.assert_allclose(one[3][i], eight[3][i], rtol=1e-4, atol=1e-5)
    # The data schedule's iterator: each list's source ("source_id") split with its list.
    schedule = tiny_config(path, **{"data.batch_size": 8, "eval.batch_size": 8, "loss.name": "mse"})
    schedule.supervision.update({"objective": "data_schedule", "schedule_mode": "iterator",
                                 "stages": ({"start": 0, "end": 2, "mix": {"high": {"click": 1}}},
                                            {"start": 2, "end": 4, "mix": {"human": 1}})})
    one_s = run(jax.devices()[:1], schedule, evaluated=False)
    eight_s = run(jax.devices(), schedule, evaluated=False)
    np.testing.assert_allclose(one_s[1], eight_s[1], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(one_s[0]), jax.tree.leaves(eight_s[0])):
      np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                 rtol=1e-4, atol=1e-5)
    print("EQUIVALENT", one[1], one_s[1])
""")


@pytest.mark.slow
def test_eight_devices_match_one():
  run_on_eight_devices(SCRIPT)
