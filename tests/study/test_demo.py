"""End to end: the README's demo command on the tiny demo config writes a full report."""

import json
import os
import subprocess
import sys

import pytest
from train_helpers import CACHE_ENV, ROOT

VARIANTS = ("click", "llm", "data_schedule", "freq_multi_objective")


def run(args, **env):
  return subprocess.run(
    [sys.executable, *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    env={**os.environ, **CACHE_ENV, **env},
    timeout=600,
  )


@pytest.mark.slow
def test_demo_study_end_to_end(tmp_path):
  out = run(
    ["-m", "rankjax.cli", "train", "--config=configs/demo.py:tiny", f"--workdir={tmp_path}"]
  )
  assert out.returncode == 0, out.stderr[-3000:]
  # The demo ends with its headline table and where the report is; no tfds download notice.
  headline = out.stdout.split("NDCG@10 (mean ± std over seeds):\n", 1)[1].splitlines()
  assert headline[0] == "| variant | high | medium | low | all |"
  assert headline[-1] == f"Report: {tmp_path.resolve() / 'report.md'} ({headline[-1].split('(')[1]}"
  assert "Downloading" not in out.stdout and "wrote dataset 'demo_world' (train " in out.stderr
  report = (tmp_path / "report.md").read_text()
  assert "a simulation" in report
  table = report.split("## NDCG@10")[1].split("##")[0]
  assert "| variant | high | medium | low | all |" in table
  for v in VARIANTS:
    row = next(l for l in table.splitlines() if l.startswith(f"| {v} |"))
    assert row.count("±") == 4, row  # a value in every bucket
  summary = json.loads((tmp_path / "study.json").read_text())
  assert set(VARIANTS) <= set(summary["metrics"]) and summary["seeds"] == [0, 1]
  assert set(summary["tests"]) == set(summary["metrics"]) - {"click"}
  # Each click run's preparation fills the world's IPS propensities; study.json records them.
  for seed in ("0", "1"):
    assert summary["prepared"]["click"][seed]["propensities"] == summary["world"]["propensities"]
  assert summary["prepared"]["llm"] == {"0": {}, "1": {}}
  for png in ("ndcg10_by_bucket.png", "score_histograms.png"):
    assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
  # Each objective's loss is logged by the multi-objective run.
  log = (tmp_path / "runs" / "freq_multi_objective" / "seed0" / "metrics.jsonl").read_text()
  first = json.loads(log.splitlines()[0])
  assert {"train/loss_click", "train/loss_llm", "train/gate_mean"} <= set(first)


@pytest.mark.slow
def test_study_tool_refuses_a_config_without_a_study(tmp_path):
  out = run(
    ["-m", "rankjax.cli", "study", "--config=configs/mslr_mlp.py:local", f"--workdir={tmp_path}"]
  )
  assert out.returncode != 0 and "no `study` section" in out.stderr


def test_study_tool_adds_other_systems_runs_and_checks_them_first(tmp_path):
  study = ["-m", "rankjax.cli", "study", "--config=configs/demo.py:tiny", f"--workdir={tmp_path}"]
  out = run([*study, "--run=bm25"])
  assert out.returncode == 1 and "--run=bm25: NAME=FILE" in out.stderr
  missing = tmp_path / "gone.trec"
  out = run([*study, f"--run=bm25={missing}", f"--run=click={missing}"])
  assert out.returncode != 0, out.stderr
  assert f"config.study.runs['bm25']={str(missing)!r}: no such run file" in out.stderr
  assert "config.study.runs['click']: the name of a variant or baseline already" in out.stderr
  assert not (tmp_path / "runs").exists()  # refused before any run trained
