"""Tests for hybrid supervision: frequency gates, the multi-objective loss, data schedules."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from rankjax.supervision import hybrid
from rankjax.supervision import single as supervision


def batch_of(num_lists=6, list_size=5, seed=0):
  rng = np.random.default_rng(seed)
  mask = np.ones((num_lists, list_size), bool)
  mask[0, 3:] = False
  return {
      "mask": mask, "list_valid": np.array([True] * (num_lists - 1) + [False]),
      "label_click": rng.integers(0, 2, (num_lists, list_size)).astype(np.float32),
      "mask_click": np.ones((num_lists, list_size), bool),
      "label_llm": rng.integers(0, 5, (num_lists, list_size)).astype(np.float32),
      "mask_llm": np.ones((num_lists, list_size), bool),
      "label_human": rng.integers(0, 5, (num_lists, list_size)).astype(np.float32),
      "mask_human": np.ones((num_lists, list_size), bool),
      "position": np.tile(np.arange(1, list_size + 1), (num_lists, 1)).astype(np.int32),
      "query_freq": np.array([1000., 50., 2., 1., 300., 7.], np.float32)[:num_lists],
      "bucket": np.array([0, 1, 2, -1, 0, 2], np.int32)[:num_lists],
  }


def config_for(objective="freq_multi_objective", gate="hard", **sup):
  c = ml_collections.ConfigDict({
      "seed": 3, "total_steps": 100, "loss": "softmax",
      "supervision": {"objective": objective, "source": "click", "weights": "none",
                      "schedule": "llm_then_click", "stages": (),
                      "gate": {"name": gate, "bucket_weights": (1.0, 0.5, 0.0),
                               "unknown_weight": 0.25, "centre": 20.0, "temperature": 1.0}}})
  c.supervision.update(sup)
  return c


def single(batch, source, scores):
  config = config_for("single", source=source)
  return supervision.single_source(scores, batch, step=0, config=config)[0]


def test_gates():
  batch = batch_of()
  np.testing.assert_allclose(hybrid.hard_gate(batch, config_for().supervision.gate),
                             [1, 0.5, 0, 0.25, 1, 0])
  np.testing.assert_allclose(hybrid.linear_gate(batch, config_for().supervision.gate),
                             [1, 0.5, 0, 0.25, 1, 0])
  w = np.asarray(hybrid.sigmoid_gate(batch, config_for().supervision.gate))
  assert np.all(np.diff(w[np.argsort(batch["query_freq"])]) > 0)  # increasing in frequency
  assert w[0] > 0.95 and w[3] < 0.1


@pytest.mark.parametrize("weight,source", [(1.0, "click"), (0.0, "llm")])
def test_multi_objective_reduces_to_one_source(weight, source):
  batch = batch_of()
  scores = jnp.asarray(np.random.default_rng(1).normal(size=batch["mask"].shape), jnp.float32)
  config = config_for(gate="hard")
  config.supervision.gate.bucket_weights = (weight,) * 3
  config.supervision.gate.unknown_weight = weight
  loss, aux = hybrid.freq_multi_objective(scores, batch, step=0, config=config)
  np.testing.assert_allclose(loss, single(batch, source, scores), rtol=1e-6)
  np.testing.assert_allclose(aux[f"loss_{source}"], loss, rtol=1e-6)
  assert float(aux["gate_mean"]) == weight


def test_multi_objective_mixes_per_list_and_has_finite_grads():
  batch = batch_of()
  scores = jnp.asarray(np.random.default_rng(2).normal(size=batch["mask"].shape), jnp.float32)
  config = config_for(gate="hard")
  loss, _ = hybrid.freq_multi_objective(scores, batch, step=0, config=config)
  where = batch["mask"]
  lc = hybrid.per_list_loss("softmax", scores, batch["label_click"], where)
  ll = hybrid.per_list_loss("softmax", scores, batch["label_llm"], where)
  w = np.array([1, 0.5, 0, 0.25, 1])
  np.testing.assert_allclose(loss, np.mean(w * lc[:5] + (1 - w) * ll[:5]), rtol=1e-6)
  grads = jax.grad(lambda s: hybrid.freq_multi_objective(s, batch, step=0, config=config)[0])(
      scores)
  assert np.isfinite(grads).all() and not np.any(grads[5]) and not np.any(grads[0, 3:])


def test_multi_objective_click_loss_takes_ips_weights():
  batch = batch_of()
  scores = jnp.zeros(batch["mask"].shape)
  config = config_for(gate="hard", weights="ips_pbm", propensities=(1.0, 0.5, 0.25, 0.2, 0.1))
  config.supervision.gate.bucket_weights = (1.0,) * 3
  config.supervision.gate.unknown_weight = 1.0
  ips = hybrid.freq_multi_objective(scores, batch, step=0, config=config)[0]
  config.supervision.weights = "none"
  naive = hybrid.freq_multi_objective(scores, batch, step=0, config=config)[0]
  assert float(ips) > float(naive)


def test_mixture_interpolation_and_stage_lookup():
  t = hybrid.compile_stages([
      {"start": 0, "end": 10, "mix": {"llm": 1}},
      {"start": 10, "end": 30, "mix": {"llm": 1}, "mix_end": {"click": 1}, "anneal": "cosine"}])
  np.testing.assert_allclose(hybrid.mixture_at(t, 9)[0], [0, 1, 0])
  np.testing.assert_allclose(hybrid.mixture_at(t, 10)[0], [0, 1, 0])
  np.testing.assert_allclose(hybrid.mixture_at(t, 15)[0], [0.1464466, 0.8535534, 0], rtol=1e-5)
  np.testing.assert_allclose(hybrid.mixture_at(t, 20)[0], [0.5, 0.5, 0], rtol=1e-6)
  np.testing.assert_allclose(hybrid.mixture_at(t, 500)[2], [1, 0, 0])


@pytest.mark.parametrize("stages,match", [
    ([], "at least one"),
    ([{"start": 0, "end": 5, "mix": {"llm": 1}}, {"start": 6, "end": 9, "mix": {"llm": 1}}],
     "follow"),
    ([{"start": 0, "end": 5, "mix": {"ctr": 1}}], "unknown source"),
    ([{"start": 0, "end": 5, "mix": {"llm": 1}, "buckets": ("tail",)}], "unknown buckets"),
    ([{"start": 0, "end": 5, "mix": {"llm": 1}, "anneal": "exp"}], "unknown anneal"),
    ([{"start": 0, "end": 5, "mixture": {"llm": 1}}], "unknown keys"),
])
def test_bad_stages_are_named(stages, match):
  with pytest.raises(ValueError, match=match):
    hybrid.compile_stages(stages)


def test_draws_are_deterministic_follow_the_mixture_and_respect_buckets():
  t = hybrid.compile_stages([{"start": 0, "end": 10,
                              "mix": {"high": {"click": 0.7, "llm": 0.3}, "low": {"llm": 1}}}])
  bucket = jnp.asarray(np.tile([0, 1, 2, -1], 5000), jnp.int32)
  a = np.asarray(hybrid.draw_sources(t, 3, bucket, seed=0))
  np.testing.assert_array_equal(a, hybrid.draw_sources(t, 3, bucket, seed=0))
  assert not np.array_equal(a, hybrid.draw_sources(t, 4, bucket, seed=0))
  assert not np.array_equal(a, hybrid.draw_sources(t, 3, bucket, seed=1))
  high, medium, low, unknown = a[0::4], a[1::4], a[2::4], a[3::4]
  assert abs(np.mean(high == 0) - 0.7) < 0.03 and set(high) == {0, 1}
  assert set(low) == {1} and set(medium) == {-1} and set(unknown) == {-1}


@pytest.mark.parametrize("name", hybrid.PRESETS)
def test_presets_cover_the_run(name):
  stages = hybrid.preset(name, 90)
  t = hybrid.compile_stages(stages)
  assert t["start"][0] == 0 and t["end"][-1] == 90
  first, last = np.asarray(hybrid.mixture_at(t, 0)), np.asarray(hybrid.mixture_at(t, 89))
  assert first.sum() > 0 and last.sum() > 0
  if name == "frequency_staged":
    assert first[0, 0] == 1 and not first[1:].any()  # high-frequency lists on clicks first
    assert last[2, 1] == 1  # low-frequency lists on LLM labels by the end


def test_data_schedule_loss_matches_the_chosen_source():
  batch = batch_of()
  scores = jnp.asarray(np.random.default_rng(3).normal(size=batch["mask"].shape), jnp.float32)
  config = config_for("data_schedule", schedule="llm_then_click")
  early, aux = hybrid.data_schedule(scores, batch, step=10, config=config)
  late, _ = hybrid.data_schedule(scores, batch, step=60, config=config)
  np.testing.assert_allclose(early, single(batch, "llm", scores), rtol=1e-6)
  np.testing.assert_allclose(late, single(batch, "click", scores), rtol=1e-6)
  assert float(aux["share_llm"]) == 1.0 and float(aux["share_click"]) == 0.0
  config.supervision.stages = ({"start": 0, "end": 100, "mix": {"human": 1},
                                "buckets": ("high",)},)
  loss, aux = hybrid.data_schedule(scores, batch, step=0, config=config)
  high = np.array([0, 4])
  lh = hybrid.per_list_loss("softmax", scores, batch["label_human"], batch["mask"])
  np.testing.assert_allclose(loss, np.mean(np.asarray(lh)[high]), rtol=1e-6)
  np.testing.assert_allclose(aux["share_human"], 2 / 5)


def test_missing_source_is_named():
  batch = batch_of()
  del batch["label_llm"], batch["mask_llm"]
  with pytest.raises(KeyError, match="no labels from source 'llm'"):
    hybrid.freq_multi_objective(jnp.zeros(batch["mask"].shape), batch, step=0,
                                config=config_for())


def test_objectives_are_registered_and_jit():
  batch = batch_of()
  scores = jnp.zeros(batch["mask"].shape)
  for name in ("freq_multi_objective", "data_schedule"):
    fn = supervision.get_objective(name)
    config = config_for(name, gate="sigmoid")
    loss, aux = jax.jit(lambda s, b, t: fn(s, b, step=t, config=config))(scores, batch, 7)
    assert np.isfinite(loss) and all(np.isfinite(v) for v in aux.values())


def test_fit_gate_recovers_a_logistic_gate():
  rng = np.random.default_rng(0)
  freq = np.exp(rng.uniform(0, 6, 20000)) - 1
  p = 1 / (1 + np.exp(-(1.5 * np.log1p(freq) - 4.0)))
  fitted = hybrid.fit_gate(freq, (rng.uniform(size=freq.size) < p).astype(float), l2=0.0)
  assert abs(fitted["coef"] - 1.5) < 0.1 and abs(fitted["bias"] + 4.0) < 0.3
  gate = ml_collections.ConfigDict(fitted)
  w = hybrid.learned_gate({"query_freq": jnp.asarray(freq[:5], jnp.float32)}, gate)
  np.testing.assert_allclose(w, p[:5], atol=0.05)
