"""A new user's first hour, through the program: own data prepared and trained on in two commands,
`prepare`'s summary and its bucket warnings, and whether a click log identifies the propensities
that `clicks fit` reports."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from train_helpers import CACHE_ENV, ROOT

from rankjax.cli import clicks as clicks_cli
from rankjax.cli import data as data_cli
from rankjax.data import schema, store
from rankjax.data.readers.generic import write_jsonl
from rankjax.sim import clicks as sim_lib

THIN = "are empty or thin (under 5% of the"
WHY = "have the same frequency, 1, and a quantile cut never splits one frequency"


def _lists(queries: int, docs: int = 10, width: int = 4) -> list[schema.RankingList]:
  rng = np.random.default_rng(0)
  return [
    schema.RankingList(
      qid=f"q{i}",
      doc_ids=[f"d{i}-{k}" for k in range(docs)],
      labels={"human": rng.integers(0, 5, docs).astype(np.float32)},
      features=rng.random((docs, width), dtype=np.float32),
    )
    for i in range(queries)
  ]


def _write_svmlight(path, lists):
  with open(path, "w") as f:
    for x in lists:
      for y, row, d in zip(x.labels["human"], x.features, x.doc_ids):
        feats = " ".join(f"{j + 1}:{v:.4f}" for j, v in enumerate(row))
        f.write(f"{int(y)} qid:{x.qid} {feats} # docid = {d}\n")


def _simulated_log(path, lists, **kw):
  sim = sim_lib.simulate(lists, **kw)
  with open(path, "w") as f:
    write_jsonl(sim.records(), f)
  return sim


def _program(*args):
  return subprocess.run(
    [sys.executable, "-m", "rankjax.cli", *map(str, args)],
    cwd=ROOT,
    env={**os.environ, **CACHE_ENV},
    capture_output=True,
    text=True,
    timeout=600,
  )


@pytest.mark.slow
def test_own_log_prepared_then_trained_on_with_a_shipped_config(tmp_path):
  """The README's two commands: `prepare --output DIR`, then `train --config.data.name=DIR` with
  a config that evaluates and keeps its best checkpoint on `validation`."""
  lists = _lists(40)
  _write_svmlight(tmp_path / "features.txt", lists)
  _simulated_log(tmp_path / "log.jsonl", lists, sessions=2000, logger="noisy-label", seed=0)
  data = tmp_path / "data"
  prep = _program(
    "data", "prepare", "--format", "jsonl", tmp_path / "log.jsonl", "--features",
    tmp_path / "features.txt", "--output", data, "--name", "mine", "--quiet",
  )  # fmt: skip
  assert prep.returncode == 0, prep.stderr[-2000:]
  summary = json.loads((data / "mine" / "1.0.0" / "prepare_summary.json").read_text())
  lists_line = next(line for line in prep.stdout.splitlines() if line.startswith("lists"))
  assert lists_line.split(None, 1)[1] == (
    "train {train}, validation {validation}, test {test} (split by query)".format(
      **summary["lists"]
    )
  )
  assert summary["lists"]["validation"] > 0 and sum(summary["lists"].values()) == 40
  run = _program(
    "train", "--config=configs/lightgbm_example.py:local", f"--workdir={tmp_path / 'run'}",
    f"--config.data.name={data}", "--config.supervision.source=click",
    "--config.total_steps=4", "--config.eval.every=4", "--config.checkpoint.every=4",
    "--config.log_every=2", "--config.optimizer.warmup_steps=1", "--config.model.hidden=16",
  )  # fmt: skip
  assert run.returncode == 0, run.stderr[-3000:]
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert set(results["splits"]) == {"validation", "test"}


def _prepare(capsys, *args):
  """`rankjax data prepare ARGS --quiet`: its summary, stdout and warnings (stderr's other lines
  are tfds's progress bars)."""
  out = data_cli.prepare([*map(str, args), "--quiet"])
  printed = capsys.readouterr()
  return out, printed.out, [line for line in printed.err.splitlines() if "warning" in line]


def test_prepare_prints_a_table_and_keeps_the_json_in_a_file(tmp_path, capsys):
  _simulated_log(tmp_path / "log.jsonl", _lists(90), sessions=3000, seed=1)
  args = ("--format", "jsonl", tmp_path / "log.jsonl", "--name", "t")
  out, printed, _ = _prepare(capsys, *args, "--output", tmp_path / "a")
  path = store.open_split(out["path"], "train").path
  assert json.loads((path / "prepare_summary.json").read_text()) == json.loads(json.dumps(out))
  lines = printed.splitlines()
  assert [line.split()[0] for line in lines] == [
    "dataset", "lists", "read", "buckets", "high", "medium", "low", "summary",
  ]  # fmt: skip
  assert lines[0] == f"dataset   {out['path']}"
  for name, row in out["buckets"].items():  # each bucket's queries and frequency range
    assert (
      f"  {name:<8}{row['queries']:>6,} queries  frequency "
      f"{row['min_frequency']:g}..{row['max_frequency']:g}\n"
    ) in printed
  assert store.open_split(out["path"], "train").metadata["bucket_ranges"] == {
    name: {"queries": r["queries"], "min": r["min_frequency"], "max": r["max_frequency"]}
    for name, r in out["buckets"].items()
  }
  out_json, printed, _ = _prepare(capsys, *args, "--output", tmp_path / "b", "--json")
  assert json.loads(printed) == json.loads(json.dumps(out_json)) and printed.count("\n") == 1


def test_thin_buckets_warn_with_the_reason_on_a_log_of_once_issued_queries(tmp_path, capsys):
  """A synthetic log whose queries are nearly all issued once, as TREC Session's: the quantile
  buckets leave medium empty and high tiny, and `prepare` says so, why, and what to try."""
  records = [
    {"session_id": f"s{i}", "query_id": f"q{i % 60}", "doc_ids": ["a", "b"], "ranks": [1, 2],
     "clicks": [1, 0]}
    for i in range(62)
  ]  # fmt: skip
  with open(tmp_path / "log.jsonl", "w") as f:
    write_jsonl(records, f)
  out, printed, warnings = _prepare(
    capsys, "--format", "jsonl", tmp_path / "log.jsonl", "--output", tmp_path, "--name", "t"
  )
  warning = (
    "warning: frequency buckets high (2 queries, 3.3%), medium (0 queries) are empty or thin "
    "(under 5% of the 60 queries or under 10), so their metrics mean little. 58 of the 60 "
    "queries (96.7%) have the same frequency, 1, and a quantile cut never splits one frequency, "
    "so they share one bucket (queries nearly all issued once, as in TREC Session). Try "
    "thresholds that fit: --buckets threshold --high H --medium M."
  )
  assert warnings == [warning]
  assert out["warnings"] == [warning.removeprefix("warning: ")]
  assert "warnings  1, printed above" in printed
  assert "  high         2 queries  frequency 2..2" in printed
  assert "  medium       0 queries  -" in printed


def test_the_readme_trec_prepare_warns_and_suggests_topic_frequency(shared_data, tmp_path, capsys):
  d = shared_data("trec_session_2012_2013")
  readme = (ROOT / "README.md").read_text()
  command = (
    "rankjax data prepare --format trec-session "
    "../shared/data/trec_session_2012_2013/sessiontrack2013.xml \\\n"
    "    --labels ../shared/data/trec_session_2012_2013/relevance2013.txt "
    "--output /tmp/rankjax_data --name trec2013"
  )
  assert command in readme
  args = ["--format", "trec-session", d / "sessiontrack2013.xml", "--labels"]
  args += [d / "relevance2013.txt", "--output", tmp_path, "--name", "trec2013"]
  out, _, warnings = _prepare(capsys, *args)
  assert [out["buckets"][b]["queries"] for b in ("high", "medium", "low")] == [4, 0, 376]
  assert warnings == [
    "warning: frequency buckets high (4 queries, 1.1%), medium (0 queries) are empty or thin "
    "(under 5% of the 380 queries or under 10), so their metrics mean little. 376 of the 380 "
    "queries (98.9%) have the same frequency, 1, and a quantile cut never splits one frequency, "
    "so they share one bucket (queries nearly all issued once, as in TREC Session). Try "
    "--freq-by topic (the sessions of the query's topic)."
  ]
  out, _, warnings = _prepare(capsys, *args[:-1], "trec2013_topic", "--freq-by", "topic")
  assert warnings == [] and out["warnings"] == []
  assert [out["buckets"][b]["queries"] for b in ("high", "medium", "low")] == [52, 158, 170]


@pytest.mark.parametrize("logger", ["fixed-noisy-label", "noisy-label"])
def test_fit_says_whether_the_log_identifies_the_propensities(logger, tmp_path, capsys):
  """A fixed logging ranker shows every pair at one rank: the fit warns, and its propensities are
  far from the simulator's. Per-session noise moves documents between ranks: no warning, and PBM
  EM recovers theta_k = 1 / k within 0.03 at every rank."""
  sim = _simulated_log(
    tmp_path / "log.jsonl",
    _lists(30),
    sessions=20000,
    eta=1.0,
    logger=logger,
    logger_noise=2.0,
    zipf=0.5,
    seed=0,
  )
  out = clicks_cli.fit(
    ["--model", "pbm", "--format", "jsonl", str(tmp_path / "log.jsonl"), "--quiet"]
  )  # no bars: stderr holds the warning alone
  printed = capsys.readouterr()
  assert json.loads(printed.out) == out
  ident = out["identification"]
  error = np.abs(np.array(out["propensities"]) - sim.truth["theta"]).max()
  if logger == "fixed-noisy-label":
    assert printed.err.startswith(
      "warning: the PBM propensities of ranks 2-10 are not identified by this log: 0 of its 300 "
      "(query, document) pairs are seen at more than one rank"
    )
    assert not ident["identified"] and ident["unidentified_ranks"] == list(range(2, 11))
    assert set(ident["pairs_shared_with_rank_1"].values()) == {0} and error > 0.1
  else:
    assert printed.err == "" and ident["identified"] and ident["pairs_at_several_ranks"] == 300
    assert min(ident["pairs_shared_adjacent"].values()) > 200
    assert error < 0.03


def test_a_log_too_small_to_hold_out_validation_says_so(tmp_path, capsys):
  record = {"session_id": "s", "query_id": "q", "doc_ids": ["a"], "ranks": [1], "clicks": [1]}
  with open(tmp_path / "log.jsonl", "w") as f:
    write_jsonl([record], f)
  args = ["--format", "jsonl", tmp_path / "log.jsonl", "--output", tmp_path, "--name", "t"]
  out, _, warnings = _prepare(capsys, *args, "--test-fraction", "0")
  assert out["lists"] == {"train": 1, "validation": 0, "test": 0}
  assert warnings[-1] == (
    "warning: no validation split: 1 training and 0 test queries leave none to hold out; configs "
    "that evaluate on validation will not run on it"
  )
