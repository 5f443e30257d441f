"""Tests for the study's statistics, analyses and report (fake scores; no training)."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats as scipy_stats

from rankjax.engine import data_source
from rankjax.engine import evaluate
from rankjax.engine import mesh as mesh_lib
from rankjax.study import runner as study
from rankjax import supervision
from rankjax.sim import world as demo_world
from rankjax.data import schema, store

from train_helpers import load_config


def test_holm_matches_the_definition():
  rng = np.random.default_rng(0)
  p = rng.uniform(0, 0.1, 7)
  order = np.argsort(p)
  expected = np.empty(7)
  running = 0.0
  for i, j in enumerate(order):
    running = max(running, min(1.0, (7 - i) * p[j]))
    expected[j] = running
  np.testing.assert_allclose(study.holm(p), expected)
  assert np.all(study.holm(p) >= p)


def test_auc_and_spearman_per_list():
  rng = np.random.default_rng(1)
  scores = rng.normal(size=(20, 8))
  relevant = rng.uniform(size=(20, 8)) < 0.4
  where = rng.uniform(size=(20, 8)) < 0.9
  auc = study.auc_per_list(scores, relevant, where)
  for i in range(20):
    pos, neg = scores[i][relevant[i] & where[i]], scores[i][~relevant[i] & where[i]]
    if len(pos) and len(neg):
      u = scipy_stats.mannwhitneyu(pos, neg).statistic
      np.testing.assert_allclose(auc[i], u / (len(pos) * len(neg)))
    else:
      assert np.isnan(auc[i])
  rho = study.spearman_per_list(scores, 2 * scores + 1, where)
  np.testing.assert_allclose(rho[where.sum(1) > 2], 1.0)
  assert np.isnan(study.spearman_per_list(scores, np.ones_like(scores), where)).all()


@pytest.fixture(scope="module")
def world_split(tmp_path_factory):
  cfg = demo_world.WorldConfig(num_queries=120, num_docs=500, sessions=2000, seed=3)
  path, meta = demo_world.build(tmp_path_factory.mktemp("world"), cfg)
  return path, meta, store.open_split(path, "test")


def test_per_list_metrics_agree_with_the_trainers_evaluation(world_split):
  _, _, split = world_split
  data = study.padded_split(split, ("semantic",))
  scores = data["semantic"] + np.random.default_rng(0).normal(size=data["semantic"].shape)
  mesh = mesh_lib.make_mesh()

  class Fixed:  # a "model" whose scores are the batch's semantic + noise
    def apply(self, variables, batch, train=False):
      del variables, train
      return batch["semantic"] + batch["noise"]

  noise = scores - data["semantic"]
  step = evaluate.make_eval_step(Fixed(), study.METRICS, "human", mesh)
  per_list = study.per_list_metrics(scores, data)
  batch = {"semantic": jnp.asarray(data["semantic"]), "noise": jnp.asarray(noise),
           "label_human": jnp.asarray(data["label"]), "mask_human": jnp.asarray(data["where"]),
           "mask": jnp.asarray(data["where"]), "list_valid": jnp.ones(len(scores), bool),
           "bucket": jnp.asarray(data["bucket"])}
  stats, _ = step({}, batch)
  for spec in study.METRICS:
    expected = evaluate.metrics_lib.finalize_bucket_stats(stats[spec])
    for b in study.BUCKETS:
      sel = study.in_bucket(data["bucket"], b)
      np.testing.assert_allclose(np.nanmean(per_list[spec][sel]), expected[b], rtol=1e-5)


def fake_scores(data, quality_weight, seeds=3, noise=1.0):
  rng = np.random.default_rng(seeds)
  return [data["semantic"] + quality_weight * data["quality"] +
          noise * rng.normal(size=data["semantic"].shape) for _ in range(seeds)]


def test_summary_report_and_plots(world_split, tmp_path):
  _, meta, split = world_split
  config = load_config("demo", "tiny")
  data = study.padded_split(split, ("global_ctr", "quality", "semantic"))
  scores = {"click": fake_scores(data, 1.0), "llm": fake_scores(data, 0.0),
            "oracle": fake_scores(data, 1.0, noise=0.0)}
  config.study.variants = ml_collections.ConfigDict(
      {v: {"source": v} for v in ("click", "llm", "oracle")})
  summary = study.summarize(scores, data, config.study)
  m = summary["metrics"]
  assert set(m) == {"click", "llm", "oracle"}
  assert set(m["click"]["ndcg@10"]) == {"high", "medium", "low", "all"}
  assert m["oracle"]["ndcg@10"]["all"]["mean"] == pytest.approx(1.0)
  assert m["oracle"]["ndcg@10"]["all"]["std"] == pytest.approx(0.0)
  assert summary["tests"]["oracle"]["ndcg@10"]["all"]["p_holm"] < 0.05
  assert summary["tests"]["oracle"]["ndcg@10"]["all"]["diff"] > 0
  a = summary["analyses"]
  assert a["oracle"]["auc/all"]["mean"] > a["click"]["auc/all"]["mean"] > 0.5
  assert a["llm"]["spearman/quality"]["mean"] < a["click"]["spearman/quality"]["mean"]
  assert a["llm"]["spearman/semantic"]["mean"] > a["click"]["spearman/semantic"]["mean"]
  note = "Learned gate (fitted on 9 `validation` lists; ...)."
  summary.update(seconds=1.0, world=meta, preparation={"click": [], "oracle": [note]})
  text = study.report(summary, config)
  assert "a simulation" in text and "| oracle |" in text and "▲" in text
  assert text.count(note) == 1  # what the runs prepared
  for spec in study.METRICS:
    assert f"## {spec.upper()}" in text
  study.plot_bars(summary, tmp_path / "bars.png")
  study.plot_histograms(scores, data, config.study, tmp_path / "hist.png")
  assert (tmp_path / "bars.png").read_bytes()[:4] == b"\x89PNG"
  assert (tmp_path / "hist.png").stat().st_size > 1000


def test_variant_config_merges_overrides_and_the_run_prepares_them(world_split):
  path, meta, _ = world_split
  config = load_config("demo", None)
  cfg = study.variant_config(config, "freq_multi_objective", 7, path)
  assert "study" not in cfg and cfg.seed == 7 and cfg.data.path == str(path)
  assert cfg.supervision.objective == "freq_multi_objective"
  assert cfg.supervision.gate.name == "linear"
  assert cfg.supervision.gate.fit_split == "validation"  # merged: the other gate keys stay
  assert study.variant_config(config, "llm", 0, path).supervision.source == "llm"
  # IPS propensities and a learned gate are the run's preparation, not the study's.
  assert cfg.supervision.propensities == ()
  prepared, _ = supervision.prepare(cfg, supervision.Context(path, meta))
  assert list(prepared.supervision.propensities) == meta["propensities"]
  with pytest.raises(ValueError, match="propensities"):
    supervision.prepare(study.variant_config(config, "click", 0, path),
                        supervision.Context(path))
  learned = study.variant_config(config, "fmo_learned_gate", 0, path)
  assert learned.supervision.gate.coef is None
  prepared, notes = supervision.prepare(learned, supervision.Context(path, meta))
  assert np.isfinite([prepared.supervision.gate.coef, prepared.supervision.gate.bias]).all()
  assert len(notes) == 1 and "`validation` lists" in notes[0]


def test_term_overlap_signal_from_texts(tmp_path):
  lists = [schema.RankingList(qid=f"q{i}", doc_ids=["a", "b"], query="red shoes",
                              doc_texts=["Red shoes for sale", "blue hats"],
                              labels={"human": np.array([2.0, 0.0])}) for i in range(2)]
  split = store.open_split(store.write_dataset(tmp_path, name="text", splits={"test": lists}),
                           "test")
  assert "term_overlap" in study.available_signals(split.layout)
  data = study.padded_split(split, ("term_overlap",))
  np.testing.assert_allclose(data["term_overlap"], [[1.0, 0.0], [1.0, 0.0]])


@pytest.mark.parametrize("arg", [None, "tiny"])
def test_demo_config_is_complete(arg):
  config = load_config("demo", arg)
  assert config.eval.every <= config.total_steps and config.checkpoint.every <= config.total_steps
  assert {"click", "llm", "data_schedule", "freq_multi_objective"} <= set(config.study.variants)
  assert config.study.baseline in config.study.variants
  for variant in config.study.variants.values():
    supervision.get_objective(variant.objective)
  assert config.data.name == data_source.WORLD
  demo_world.WorldConfig(**config.data.world.to_dict())
  with pytest.raises(ValueError, match="unknown config variant"):
    load_config("demo", "nope")


@pytest.mark.slow
def test_study_on_a_prepared_dataset(tmp_path):
  """A study over `config.data.path` (no world): variants that the data supports, no signals."""
  from train_helpers import tiny_config, tiny_dataset
  config = tiny_config(tiny_dataset(tmp_path / "data"), total_steps=4, log_every=2,
                       **{"data.list_sizes": (32,)})
  config.eval.every = config.checkpoint.every = 4
  config.study = ml_collections.ConfigDict({
      "seeds": (0,), "split": "test", "baseline": "click", "relevant_label": 1.0,
      "doc_signals": (), "semantic_signals": (),
      "variants": {"click": {"source": "click"}, "human": {"source": "human"}}})
  summary = study.run(config, tmp_path / "study")
  assert set(summary["metrics"]) == {"click", "human"} and summary["world"] is None
  report = (tmp_path / "study" / "report.md").read_text()
  assert "none configured" in report and "| human |" in report
  config.study.semantic_signals = ("semantic",)
  with pytest.raises(ValueError, match="no per-item signals"):
    study.run(config, tmp_path / "study2")
