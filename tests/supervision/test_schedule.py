"""Data schedules: stages, mixtures, draws, presets and the objective's loss."""

import jax.numpy as jnp
import numpy as np
import pytest
from supervision_helpers import batch_of, config_for

from rankjax.supervision import schedule, single

data_schedule = schedule.data_schedule.loss_fn


def single_loss(batch, source, scores):
  config = config_for("single", source=source)
  return single.single_source.loss_fn(scores, batch, step=0, config=config)[0]


def test_mixture_interpolation_and_stage_lookup():
  t = schedule.compile_stages(
    [
      {"start": 0, "end": 10, "mix": {"llm": 1}},
      {"start": 10, "end": 30, "mix": {"llm": 1}, "mix_end": {"click": 1}, "anneal": "cosine"},
    ]
  )
  np.testing.assert_allclose(schedule.mixture_at(t, 9)[0], [0, 1, 0])
  np.testing.assert_allclose(schedule.mixture_at(t, 10)[0], [0, 1, 0])
  np.testing.assert_allclose(schedule.mixture_at(t, 15)[0], [0.1464466, 0.8535534, 0], rtol=1e-5)
  np.testing.assert_allclose(schedule.mixture_at(t, 20)[0], [0.5, 0.5, 0], rtol=1e-6)
  np.testing.assert_allclose(schedule.mixture_at(t, 500)[2], [1, 0, 0])


@pytest.mark.parametrize(
  "stages,match",
  [
    ([], "at least one"),
    (
      [{"start": 0, "end": 5, "mix": {"llm": 1}}, {"start": 6, "end": 9, "mix": {"llm": 1}}],
      "follow",
    ),
    ([{"start": 0, "end": 5, "mix": {"ctr": 1}}], "unknown source"),
    ([{"start": 0, "end": 5, "mix": {"llm": 1}, "buckets": ("tail",)}], "unknown buckets"),
    ([{"start": 0, "end": 5, "mix": {"llm": 1}, "anneal": "exp"}], "unknown anneal"),
    ([{"start": 0, "end": 5, "mixture": {"llm": 1}}], "unknown keys"),
  ],
)
def test_bad_stages_are_named(stages, match):
  with pytest.raises(ValueError, match=match):
    schedule.compile_stages(stages)


def test_draws_are_deterministic_follow_the_mixture_and_respect_buckets():
  t = schedule.compile_stages(
    [{"start": 0, "end": 10, "mix": {"high": {"click": 0.7, "llm": 0.3}, "low": {"llm": 1}}}]
  )
  bucket = jnp.asarray(np.tile([0, 1, 2, -1], 5000), jnp.int32)
  a = np.asarray(schedule.draw_sources(t, 3, bucket, seed=0))
  np.testing.assert_array_equal(a, schedule.draw_sources(t, 3, bucket, seed=0))
  assert not np.array_equal(a, schedule.draw_sources(t, 4, bucket, seed=0))
  assert not np.array_equal(a, schedule.draw_sources(t, 3, bucket, seed=1))
  high, medium, low, unknown = a[0::4], a[1::4], a[2::4], a[3::4]
  assert abs(np.mean(high == 0) - 0.7) < 0.03 and set(high) == {0, 1}
  assert set(low) == {1} and set(medium) == {-1} and set(unknown) == {-1}


@pytest.mark.parametrize("name", sorted(schedule.PRESETS))
def test_presets_cover_the_run(name):
  stages = schedule.PRESETS[name](90)
  t = schedule.compile_stages(stages)
  assert t["start"][0] == 0 and t["end"][-1] == 90
  first, last = np.asarray(schedule.mixture_at(t, 0)), np.asarray(schedule.mixture_at(t, 89))
  assert first.sum() > 0 and last.sum() > 0
  if name == "frequency_staged":
    assert first[0, 0] == 1 and not first[1:].any()  # high-frequency lists on clicks first
    assert last[2, 1] == 1  # low-frequency lists on LLM labels by the end


def test_an_unknown_preset_is_named():
  with pytest.raises(
    ValueError, match="unknown schedule preset 'llm_first'; known: .*anneal_cosine"
  ):
    data_schedule(
      jnp.zeros((6, 5)),
      batch_of(),
      step=0,
      config=config_for("data_schedule", schedule="llm_first"),
    )


def test_data_schedule_loss_matches_the_chosen_source():
  batch = batch_of()
  scores = jnp.asarray(np.random.default_rng(3).normal(size=batch["mask"].shape), jnp.float32)
  config = config_for("data_schedule", schedule="llm_then_click")
  early, aux = data_schedule(scores, batch, step=10, config=config)
  late, _ = data_schedule(scores, batch, step=60, config=config)
  np.testing.assert_allclose(early, single_loss(batch, "llm", scores), rtol=1e-6)
  np.testing.assert_allclose(late, single_loss(batch, "click", scores), rtol=1e-6)
  assert float(aux["share_llm"]) == 1.0 and float(aux["share_click"]) == 0.0
  config.supervision.stages = ({"start": 0, "end": 100, "mix": {"human": 1}, "buckets": ("high",)},)
  loss, aux = data_schedule(scores, batch, step=0, config=config)
  high = np.array([0, 4])
  lh = single.per_list_loss("softmax", scores, batch["label_human"], batch["mask"])
  np.testing.assert_allclose(loss, np.mean(np.asarray(lh)[high]), rtol=1e-6)
  np.testing.assert_allclose(aux["share_human"], 2 / 5)
