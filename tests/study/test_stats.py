"""Tests for the study's statistics, report and plots (fake scores; no training)."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from train_helpers import load_config

from rankjax.engine import evaluate
from rankjax.engine import mesh as mesh_lib
from rankjax.study import plots, report, signals, stats


def test_holm_matches_the_definition():
  rng = np.random.default_rng(0)
  p = rng.uniform(0, 0.1, 7)
  order = np.argsort(p)
  expected = np.empty(7)
  running = 0.0
  for i, j in enumerate(order):
    running = max(running, min(1.0, (7 - i) * p[j]))
    expected[j] = running
  np.testing.assert_allclose(stats.holm(p), expected)
  assert np.all(stats.holm(p) >= p)


def test_per_list_metrics_agree_with_the_trainers_evaluation(world_split):
  _, _, split = world_split
  data = signals.padded_split(split, ("semantic",))
  scores = data["semantic"] + np.random.default_rng(0).normal(size=data["semantic"].shape)
  mesh = mesh_lib.make_mesh()

  class Fixed:  # a "model" whose scores are the batch's semantic + noise
    def apply(self, variables, batch, train=False):
      del variables, train
      return batch["semantic"] + batch["noise"]

  noise = scores - data["semantic"]
  step = evaluate.make_eval_step(Fixed(), stats.METRICS, "human", mesh)
  per_list = stats.per_list_metrics(scores, data)
  batch = {
    "semantic": jnp.asarray(data["semantic"]),
    "noise": jnp.asarray(noise),
    "label_human": jnp.asarray(data["label"]),
    "mask_human": jnp.asarray(data["where"]),
    "mask": jnp.asarray(data["where"]),
    "list_valid": jnp.ones(len(scores), bool),
    "bucket": jnp.asarray(data["bucket"]),
  }
  bucket_stats, _ = step({}, batch)
  for spec in stats.METRICS:
    expected = evaluate.metrics_lib.finalize_bucket_stats(bucket_stats[spec])
    for b in stats.BUCKETS:
      sel = stats.in_bucket(data["bucket"], b)
      np.testing.assert_allclose(np.nanmean(per_list[spec][sel]), expected[b], rtol=1e-5)


def fake_scores(data, quality_weight, seeds=3, noise=1.0):
  rng = np.random.default_rng(seeds)
  return [
    data["semantic"]
    + quality_weight * data["quality"]
    + noise * rng.normal(size=data["semantic"].shape)
    for _ in range(seeds)
  ]


def test_summary_report_and_plots(world_split, tmp_path):
  _, meta, split = world_split
  config = load_config("demo", "tiny")
  data = signals.padded_split(split, ("global_ctr", "quality", "semantic"))
  scores = {
    "click": fake_scores(data, 1.0),
    "llm": fake_scores(data, 0.0),
    "oracle": fake_scores(data, 1.0, noise=0.0),
  }
  config.study.variants = ml_collections.ConfigDict(
    {v: {"source": v} for v in ("click", "llm", "oracle")}
  )
  summary = stats.summarize(scores, data, config.study)
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
  ranges = {"high": {"queries": 3, "min": 9.0, "max": 40.0}, "medium": {"queries": 0}}
  summary.update(
    seconds=1.0,
    run_seconds=2.0,
    world=meta,
    preparation={"click": [], "oracle": [note]},
    bucket_ranges=ranges,
  )
  text = report.report(summary, config)
  assert "a simulation" in text and "| oracle |" in text and "▲" in text
  assert "| variant | high (freq 9..40) | medium | low | all |" in text  # the dataset's ranges
  assert text.count(note) == 1  # what the runs prepared
  for spec in stats.METRICS:
    assert f"## {spec.upper()}" in text
  plots.plot_bars(summary, tmp_path / "bars.png")
  plots.plot_histograms(scores, data, config.study, tmp_path / "hist.png")
  assert (tmp_path / "bars.png").read_bytes()[:4] == b"\x89PNG"
  assert (tmp_path / "hist.png").stat().st_size > 1000


def test_report_lists_the_reference_last_and_tests_every_metric(world_split):
  _, meta, split = world_split
  config = load_config("demo", "tiny")
  data = signals.padded_split(split, ("global_ctr", "quality", "semantic"))
  scores = {"human": fake_scores(data, 1.0, noise=0.0), "click": fake_scores(data, 1.0)}
  scores["llm"] = fake_scores(data, 0.0)
  config.study.variants = ml_collections.ConfigDict(
    {"human": {"source": "human"}, "click": {"source": "click"}, "llm": {"source": "llm"}}
  )
  summary = stats.summarize(scores, data, config.study)
  assert summary["order"] == ["click", "llm", "human"]
  assert summary["references"] == ["human"]
  summary.update(seconds=1.0, run_seconds=2.0, world=meta, preparation={})
  text = report.report(summary, config)
  table = text[text.index("## NDCG@10") :].split("\n\n")[1].splitlines()
  assert [row.split(" | ")[0] for row in table[2:]] == [
    "| click",
    "| llm",
    "| human (reference)",
    "| lists",
  ]
  for spec in stats.METRICS:
    assert f"## Paired tests against click ({spec.upper()})" in text
  fig = plots.bars_figure(summary)
  ax = fig.axes[0]
  assert ax.get_ylim()[0] == 0.0 and ax.get_title().startswith("NDCG@10 by bucket")
  assert [t.get_text() for t in ax.get_legend().get_texts()][-1] == "human (reference)"
