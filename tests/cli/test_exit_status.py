"""The program's exit statuses (0 finished, 1 error, 75 stopped by SIGTERM and resumable) and its
one-line errors for config mistakes, found before any data is read or anything compiled; SIGTERM
anywhere in train, study or annotate run is 75 with a line saying what a rerun does."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from train_helpers import CACHE_ENV, ROOT, flag_overrides, tiny_config, tiny_dataset, unpinned

from rankjax import cli
from rankjax.annotate import runner
from rankjax.cli import train as train_cli
from rankjax.engine import checkpoint, train

CONFIG = "--config=configs/mslr_mlp.py:local"
LOSSES = "approx_ndcg, lambda, listmle, mse, pairwise_hinge, pairwise_logistic, sigmoid, softmax"


@pytest.fixture(autouse=True)
def _forget_overrides():
  """ml_collections defines a flag per `--config.` override it parses; absl refuses a second
  definition, so each in-process run of the program starts without the last one's."""
  yield
  from absl import flags  # pylint: disable=g-import-not-at-top

  for name in [n for n in flags.FLAGS if n.startswith("config.")]:
    delattr(flags.FLAGS, name)


def _env():
  return {**os.environ, **CACHE_ENV, "JAX_PLATFORMS": "cpu"}


def _rankjax(*args, timeout=300):
  return subprocess.run(
    [sys.executable, "-m", "rankjax.cli", *args],
    cwd=ROOT,
    env=_env(),
    capture_output=True,
    text=True,
    timeout=timeout,
  )


@pytest.mark.parametrize(
  "override,message",
  [
    (
      "--config.loss.name=softmx",
      f"error: config.loss.name='softmx': unknown loss; known: {LOSSES}",
    ),
    (
      "--config.supervision.objective=singel",
      "error: config.supervision.objective='singel': unknown objective; known: data_schedule, "
      "dla, freq_multi_objective, regression_em, single, two_tower",
    ),
    (
      "--config.supervision.source=clicks",
      "error: config.supervision.source='clicks': unknown label source; known: click, human, llm",
    ),
    (
      "--config.model.name=mlpp",
      "error: config.model.name='mlpp': unknown model; known: cross_encoder, mlp",
    ),
    (
      "--config.eval.metrics=('ndcg@10','ndcg@x')",
      "error: config.eval.metrics[1]='ndcg@x': the cutoff after '@' must be a positive integer "
      "(a spec is <metric> or <metric>@<k>, <metric> one of dcg, err, mrr, ndcg, pnr, precision)",
    ),
    (
      "--config.checkpoint.best_metric=validation/ndcg@20/all",
      "error: config.checkpoint.best_metric='validation/ndcg@20/all': '' or "
      "<split>/<metric>/<bucket>, <split> one of config.eval.splits ('validation', 'test'), "
      "<metric> one of config.eval.metrics ('ndcg@1', 'ndcg@3', 'ndcg@5', 'ndcg@10', 'err@10', "
      "'pnr'), <bucket> one of all, high, low, medium",
    ),
    ("--config.total_steps=-5", "error: config.total_steps=-5: an integer >= 1"),
    (
      "--config.data.list_sizes=0",
      "error: config.data.list_sizes=(0,): each value an integer >= 1 (not at position 0)",
    ),
  ],
)
def test_a_config_mistake_is_one_line_before_any_work(override, message, tmp_path, monkeypatch):
  workdir = tmp_path / "run"
  argv = ["train", CONFIG, f"--workdir={workdir}", override]
  monkeypatch.setattr(sys, "argv", ["rankjax", *argv])  # where ml_collections finds overrides
  with pytest.raises(SystemExit) as exit_info:
    cli.main(argv)
  # A message: the interpreter prints it and exits with 1.
  assert unpinned((exit_info.value.code,)) == unpinned(
    (message,)
  )  # a message: the interpreter prints it, exits with 1
  assert exit_info.value.__suppress_context__  # no chained traceback
  assert not workdir.exists()  # nothing prepared, written or compiled


def test_every_config_mistake_is_reported_at_once(tmp_path, monkeypatch):
  argv = ["train", CONFIG, f"--workdir={tmp_path}/run", "--config.total_steps=-5"]
  argv.append("--config.data.list_sizes=0")
  monkeypatch.setattr(sys, "argv", ["rankjax", *argv])
  with pytest.raises(SystemExit) as exit_info:
    cli.main(argv)
  assert exit_info.value.code == (
    "error: config.total_steps=-5: an integer >= 1\n"
    "error: config.data.list_sizes=(0,): each value an integer >= 1 (not at position 0)"
  )


def test_a_missing_config_file_is_one_line_with_status_1(tmp_path):
  proc = _rankjax("train", f"--config={tmp_path}/nope.py:local", f"--workdir={tmp_path}/run")
  assert proc.returncode == 1
  assert proc.stderr.strip() == f"error: --config={tmp_path}/nope.py:local: no such file " + repr(
    f"{tmp_path}/nope.py"
  )


def test_a_usage_error_exits_1(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["train", CONFIG, f"--workdir={tmp_path}", "extra"])
  assert exit_info.value.code == 1
  assert "unexpected arguments: ['extra']" in capsys.readouterr().err


def _saved_steps(workdir):
  ckpts = workdir / "checkpoints"
  return [p.name for p in ckpts.iterdir() if p.name.isdigit()] if ckpts.exists() else []


@pytest.mark.slow
def test_sigterm_exits_75_and_the_same_command_resumes_to_0(tmp_path):
  data_path = tiny_dataset(tmp_path / "data")
  workdir = tmp_path / "run"
  command = [
    sys.executable,
    "-m",
    "rankjax.cli",
    "train",
    CONFIG,
    f"--workdir={workdir}",
    *flag_overrides(data_path, total_steps=100, **{"checkpoint.every": 5, "eval.every": 100}),
  ]
  proc = subprocess.Popen(
    command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
  )
  deadline = time.monotonic() + 300
  while not _saved_steps(workdir):
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    assert time.monotonic() < deadline
    time.sleep(0.01)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 75, err[-3000:]
  stopped = int(out.split("SIGTERM: saved step ")[1].split(",")[0])
  assert stopped < 100
  resumed = subprocess.run(
    command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300
  )
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"resumed from step {stopped}" in resumed.stdout
  assert json.loads((workdir / "results.json").read_text())["step"] == 100


def _sigterm_within(monkeypatch, owner, name):
  """`owner.name` sends this process SIGTERM as it is called: the handler runs there."""
  original = getattr(owner, name)

  def stopped(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return original(*args, **kwargs)

  monkeypatch.setattr(owner, name, stopped)


# SIGTERM during preparation, in a fresh process: `supervision.prepare` sends it.
SIGTERM_IN_PREPARATION = """
import os, signal, sys
from rankjax import cli, supervision
prepare = supervision.prepare
def stopped(*args, **kwargs):
  os.kill(os.getpid(), signal.SIGTERM)
  return prepare(*args, **kwargs)
supervision.prepare = stopped
sys.exit(cli.main())
"""


@pytest.mark.slow
def test_sigterm_before_any_checkpoint_exits_75_saying_nothing_was_saved(tmp_path):
  data_path = tiny_dataset(tmp_path / "data")
  workdir = tmp_path / "run"
  proc = subprocess.run(
    [sys.executable, "-c", SIGTERM_IN_PREPARATION, "train", CONFIG, f"--workdir={workdir}"]
    + flag_overrides(data_path),
    cwd=ROOT,
    env=_env(),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 75, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
    "rankjax train: stopped by SIGTERM; nothing saved; rerun starts over"
  )
  assert not (workdir / "checkpoints").exists()


@pytest.mark.slow
def test_sigterm_while_restoring_exits_75_and_leaves_the_checkpoint_in_place(
  tmp_path, monkeypatch, capsys
):
  data_path = tiny_dataset(tmp_path / "data")
  workdir = tmp_path / "run"
  train.train_and_evaluate(tiny_config(data_path), workdir)  # checkpoints 3 and 6
  capsys.readouterr()
  # Extended (a rerun key) and stopped while it restores step 6: no damage, nothing moved aside.
  _sigterm_within(monkeypatch, checkpoint.Checkpointer, "restore")
  argv = ["train", CONFIG, f"--workdir={workdir}", *flag_overrides(data_path, total_steps=12)]
  monkeypatch.setattr(sys, "argv", ["rankjax", *argv])
  with pytest.raises(SystemExit) as exit_info:
    cli.main(argv)
  assert exit_info.value.code == 75
  assert capsys.readouterr().err.splitlines()[-1] == (
    "rankjax train: stopped by SIGTERM; rerun the same command to resume from checkpoint step 6"
  )
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["3", "6"]
  assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the command's handler is gone


def test_sigterm_while_annotate_reads_the_log_exits_75(tmp_path, monkeypatch, capsys):
  log = tmp_path / "log.jsonl"
  log.write_text(
    json.dumps({"query_id": "q", "query": "q", "doc_ids": ["d"], "doc_texts": ["t"]}) + "\n"
  )
  _sigterm_within(monkeypatch, runner, "lists_from_sessions")
  argv = ["annotate", "run", str(log), "--format", "jsonl", "--store", str(tmp_path / "a.db")]
  argv += ["--backend", "openai_http", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
  with pytest.raises(SystemExit) as exit_info:
    cli.main(argv)
  assert exit_info.value.code == 75
  assert capsys.readouterr().err.splitlines()[-1] == (
    "rankjax annotate run: stopped by SIGTERM; rerun the same command to resume (stored labels "
    "are kept)"
  )
  assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_the_resume_note_says_what_a_rerun_resumes_from(tmp_path):
  assert train_cli.resume_note(None) == "stopped before it began; rerun the same command"
  assert train_cli.resume_note(tmp_path) == "nothing saved; rerun starts over"
  for run in ("runs/click/seed0", "runs/click/seed1", "runs/llm/seed0"):
    (tmp_path / run / "checkpoints" / "20").mkdir(parents=True)
  (tmp_path / "runs/llm/seed0/checkpoints/10").mkdir()
  (tmp_path / "runs/llm/seed1/checkpoints/corrupt").mkdir(parents=True)  # no checkpoint
  assert train_cli.resume_note(tmp_path) == (
    "rerun the same command to resume: 3 of the study's runs have checkpoints (finished runs "
    "are reused, the others resume from theirs)"
  )
  for step in ("3", "6", "corrupt"):
    (tmp_path / "checkpoints" / step).mkdir(parents=True)
  assert train_cli.resume_note(tmp_path) == (
    "rerun the same command to resume from checkpoint step 6"
  )
