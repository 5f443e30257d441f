"""Data schedules: stages, mixtures, draws, presets and the objective's loss."""

import jax.numpy as jnp
import numpy as np
import pytest
from supervision_helpers import batch_of, config_for, tiny_dataset_with_llm

from rankjax.data import pipeline, store
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
  assert float(aux["share_trained"]) == 1.0
  config.supervision.stages = ({"start": 0, "end": 100, "mix": {"human": 1}, "buckets": ("high",)},)
  loss, aux = data_schedule(scores, batch, step=0, config=config)
  high = np.array([0, 4])
  lh = single.per_list_loss("softmax", scores, batch["label_human"], batch["mask"])
  np.testing.assert_allclose(loss, np.mean(np.asarray(lh)[high]), rtol=1e-6)
  np.testing.assert_allclose(aux["share_human"], 2 / 5)
  np.testing.assert_allclose(aux["share_trained"], 2 / 5)  # the other lists' slots idle


def test_iterator_mode_trains_each_list_on_the_batch_source():
  batch = batch_of()
  scores = jnp.asarray(np.random.default_rng(3).normal(size=batch["mask"].shape), jnp.float32)
  config = config_for("data_schedule", schedule_mode="iterator")
  config.supervision.stages = ({"start": 0, "end": 9, "mix": {"click": 1, "llm": 1, "human": 1}},)
  batch["source_id"] = np.array([1, 0, 2, 1, 0, 2], np.int32)
  batch["mask_llm"][3] = False  # list 3 has no LLM labels: its slot does not train
  loss, aux = data_schedule(scores, batch, step=0, config=config)
  per = {
    s: np.asarray(single.per_list_loss("softmax", scores, batch[f"label_{s}"], batch["mask"]))
    for s in schedule.SOURCES
  }
  expected = [per[schedule.SOURCES[k]][i] for i, k in enumerate(batch["source_id"][:3])]
  np.testing.assert_allclose(loss, (sum(expected) + per["click"][4]) / 5, rtol=1e-6)
  np.testing.assert_allclose([aux["share_llm"], aux["share_trained"]], [2 / 5, 4 / 5])
  with pytest.raises(KeyError, match="source_id.*schedule_mode='per_list'"):
    data_schedule(scores, batch_of(), step=0, config=config)


def test_data_phases_follow_the_stages():
  config = config_for("data_schedule", schedule="frequency_staged", schedule_mode="iterator")
  config.total_steps = 90
  phases = schedule.data_phases(config)
  assert [p.start for p in phases] == [0, 30, 60]
  assert phases[0].weights[0].tolist() == [1, 0, 0] and not phases[0].weights[1:].any()
  assert phases[2].weights[2].tolist() == [0, 1, 0]  # low lists on LLM labels last
  config.supervision.schedule_mode = "per_list"
  assert schedule.data_phases(config) is None


def test_an_annealed_stage_changes_in_pieces():
  config = config_for(
    "data_schedule", schedule="anneal_linear", schedule_mode="iterator", anneal_pieces=4
  )
  config.total_steps = 100
  phases = schedule.data_phases(config)
  assert [p.start for p in phases] == [0, 25, 50, 75, 100]
  # Each piece at the mixture of its middle step (click share 12 / 100 in [0, 25)); past the
  # stage, its final mixture.
  np.testing.assert_allclose([p.weights[0, 0] for p in phases], [0.12, 0.37, 0.62, 0.87, 1])
  config.supervision.stages = (
    {"start": 5, "end": 8, "mix": {"llm": 1}, "mix_end": {"click": 1}, "anneal": "cosine"},
    {"start": 8, "end": 10, "mix": {"human": 1}},
  )
  starts = [p.start for p in schedule.data_phases(config)]
  assert starts == [0, 5, 6, 7, 8]  # before the first stage its first mixture; a piece a step


def test_the_iterator_serves_only_the_stage_lists_and_sources(tmp_path):
  split = store.open_split(tiny_dataset_with_llm(tmp_path), "train")
  config = config_for("data_schedule", schedule_mode="iterator")
  config.supervision.stages = (
    {"start": 0, "end": 4, "mix": {"high": {"click": 1}}},
    {"start": 4, "end": 8, "mix": {"medium": {"llm": 1}, "low": {"human": 1}}},
  )
  it = iter(
    pipeline.train_dataset(
      split,
      batch_size=4,
      list_sizes=(32,),
      seed=0,
      num_threads=0,
      phases=schedule.data_phases(config),
    )
  )
  served = [
    {(int(b), schedule.SOURCES[s]) for b, s in zip(batch["bucket"], batch["source_id"])}
    for batch in (next(it) for _ in range(12))
  ]
  assert set().union(*served[:4]) == {(0, "click")}  # the first stage: high lists on clicks
  assert set().union(*served[4:]) == {(1, "llm"), (2, "human")}  # from step 4 on, the second
