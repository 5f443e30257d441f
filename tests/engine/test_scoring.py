"""Scoring without training: checkpoint -> TREC run file and metrics (rankjax.engine.scoring)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import pytrec_eval
from train_helpers import ROOT, tiny_config, tiny_dataset

from rankjax.data import store
from rankjax.engine import scoring, train


@pytest.mark.slow
def test_score_writes_trec_run_and_matches_training_eval(tmp_path):
  data_path = tiny_dataset(tmp_path / "data")
  workdir = tmp_path / "run"
  out = train.train_and_evaluate(tiny_config(data_path), workdir)
  results = scoring.score(workdir, "test", best=False, output=tmp_path / "test.run")
  assert results.pop("step") == 6
  assert results.pop("best_metric") is None
  assert results.pop("run_file") == str(tmp_path / "test.run")
  assert results == out["eval"]["test"]  # the same checkpoint scores the same
  saved = json.loads((workdir / "score-test.json").read_text())
  assert saved["step"] == 6 and saved["metrics"] == results

  split = store.open_split(data_path, "test")
  lines = [l.split() for l in (tmp_path / "test.run").read_text().splitlines()]
  assert len(lines) == int(split.lengths.sum())
  run = {}
  for qid, q0, doc, rank, score, name in lines:
    assert q0 == "Q0" and name == "rankjax"
    run.setdefault(qid, []).append((int(rank), float(score), doc))
  for i in range(len(split)):
    rec = split[i]
    rows = run[rec["qid"].decode()]
    assert [r for r, _, _ in rows] == list(range(1, len(rows) + 1))
    assert np.all(np.diff([s for _, s, _ in rows]) <= 0)
    assert sorted(d for _, _, d in rows) == sorted(d.decode() for d in rec["doc_ids"])
  # trec_eval reads it.
  parsed = {q: {d: s for _, s, d in rows} for q, rows in run.items()}
  qrels = {
    split[i]["qid"].decode(): {
      d.decode(): int(l)
      for d, l in zip(split[i]["doc_ids"], np.nan_to_num(split[i]["label_human"]))
    }
    for i in range(len(split))
  }
  measured = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(parsed)
  assert set(measured) == set(parsed)

  # The command line gives the same run file.
  cli = subprocess.run(
    [
      sys.executable,
      "-m",
      "rankjax.cli",
      "score",
      f"--workdir={workdir}",
      "--split=test",
      "--nobest",
      f"--output={tmp_path / 'cli.run'}",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert cli.returncode == 0, cli.stderr
  assert (tmp_path / "cli.run").read_text() == (tmp_path / "test.run").read_text()
  assert "ndcg" in cli.stdout
  assert cli.stdout.splitlines()[-1] == (
    f"checkpoint step 6 (latest): wrote {tmp_path / 'cli.run'}"
  )
  # Without --step or --nobest the best checkpoint by validation NDCG@10 scores.
  best = scoring.score(workdir, "test", output=tmp_path / "best.run")
  evals = {
    r["step"]: r["validation/ndcg@10/all"]
    for r in map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines())
    if "validation/ndcg@10/all" in r
  }
  assert best["step"] == max(evals, key=evals.get)
  assert best["best_metric"] == "validation/ndcg@10/all"


@pytest.mark.slow
def test_a_run_saved_before_keys_were_declared_still_scores(tmp_path):
  """A config.json without keys declared since (token_buckets, length_grouped, data.world) and
  with a loss name rather than a section loads with the defaults and scores the same."""
  data_path = tiny_dataset(tmp_path / "data")
  workdir = tmp_path / "run"
  config = tiny_config(data_path, total_steps=2, **{"eval.every": 2, "checkpoint.every": 2})
  out = train.train_and_evaluate(config, workdir)
  saved = json.loads((workdir / "config.json").read_text())
  for key in ("token_buckets", "length_grouped", "world"):
    del saved["data"][key]
  saved["loss"] = saved["loss"]["name"]
  (workdir / "config.json").write_text(json.dumps(saved))
  results = scoring.score(workdir, "test")
  assert results.pop("step") == 2 and results.pop("best_metric") == "validation/ndcg@10/all"
  results.pop("run_file")
  assert results == out["eval"]["test"]
