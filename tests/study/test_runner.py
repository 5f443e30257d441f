"""Tests for the study's runner: variant configs, the demo config, a whole study."""

import numpy as np
import pytest
from train_helpers import load_config

from rankjax import supervision
from rankjax.engine import data_source
from rankjax.sim import world as demo_world
from rankjax.study import runner as study


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
    supervision.prepare(study.variant_config(config, "click", 0, path), supervision.Context(path))
  learned = study.variant_config(config, "fmo_learned_gate", 0, path)
  assert learned.supervision.gate.coef is None
  prepared, notes = supervision.prepare(learned, supervision.Context(path, meta))
  assert np.isfinite([prepared.supervision.gate.coef, prepared.supervision.gate.bias]).all()
  assert len(notes) == 1 and "`validation` lists" in notes[0]


@pytest.mark.parametrize("arg", [None, "tiny", "noise_sweep"])
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
def test_study_on_a_prepared_dataset(tmp_path, monkeypatch):
  """A study over `config.data.path` (no world): variants that the data supports, no signals;
  baselines beside them, one left out for a library that is not installed."""
  from train_helpers import tiny_dataset, tiny_study

  from rankjax.data import store
  from rankjax.study import baselines

  missing = baselines.Baseline(lambda *_: None, {}, needs="no_such_module", install="pip install x")
  monkeypatch.setitem(baselines.BASELINES, "needs_a_missing_module", missing)
  config = tiny_study(
    tiny_dataset(tmp_path / "data"),
    seeds=(0,),
    baselines=("logged_order", "lgbm_human", "lgbm_click", "needs_a_missing_module"),
  )
  # Another system's run file: the logged order's ranking, one list's last document left out.
  test_lists = baselines.read_lists(store.open_split(config.data.path, "test"))
  logged = baselines.get("logged_order").score([], test_lists, 0)
  rows = [
    f"{lst['qid']} Q0 {doc} 0 {score} other\n"
    for lst, s in zip(test_lists, logged)
    for doc, score in list(zip(lst["doc_ids"], s))[: len(lst["doc_ids"]) - (lst is test_lists[0])]
  ]
  (tmp_path / "other.trec").write_text("".join(rows))
  config.study.runs = {"other_system": str(tmp_path / "other.trec")}
  summary = study.run(config, tmp_path / "study")
  assert summary["order"] == [
    "click", "logged_order", "lgbm_click", "other_system", "human", "lgbm_human"
  ]  # fmt: skip
  assert summary["metrics"]["other_system"] == summary["metrics"]["logged_order"]
  assert summary["world"] is None and set(summary["tests"]["lgbm_click"]["ndcg@10"]) >= {"all"}
  report = (tmp_path / "study" / "report.md").read_text()
  assert "none configured" in report and "| human (reference) |" in report
  assert "- **lgbm_human (reference)** (baseline, not trained by rankjax): model=LightGBM" in report
  assert (
    "`needs_a_missing_module` is left out: `no_such_module` is not installed (pip install x)."
    in report
  )
  assert "Run `other_system` (other.trec) does not rank 1 of the" in report
  config.study.runs = {"click": str(tmp_path / "other.trec"), "gone": str(tmp_path / "no.trec")}
  with pytest.raises(ValueError) as error:
    study.run(config, tmp_path / "study4")
  assert "config.study.runs['click']: the name of a variant or baseline already" in str(error.value)
  assert "config.study.runs['gone']=" in str(error.value) and "no such run file" in str(error.value)
  config.study.runs = {}
  config.study.baselines = ("nope",)
  with pytest.raises(
    ValueError, match=r"config.study.baselines=\('nope',\): a sequence of study baselines"
  ):
    study.run(config, tmp_path / "study3")
  config.study.baselines = ()
  config.study.semantic_signals = ("semantic",)
  with pytest.raises(ValueError, match="no per-item signals"):
    study.run(config, tmp_path / "study2")
