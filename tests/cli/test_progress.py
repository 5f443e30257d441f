"""What a command shows while it works, and how soon it stops on a mistyped command line: the
reading bar of every log-reading command (bytes, sessions, skips; off with --quiet), the bars and
compile lines of fitting and simulating, and argument errors before jax is imported."""

import gzip
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from train_helpers import CACHE_ENV, ROOT

from rankjax import cli, progress
from rankjax.cli import clicks as clicks_cli
from rankjax.cli import reader_flags
from rankjax.data import readers, schema
from rankjax.data.readers.generic import write_jsonl
from rankjax.sim import clicks as sim_lib

SAMPLE = ROOT / "tests" / "fixtures" / "logs" / "generic_sample.jsonl"  # 3 sessions, 5 skips
HEAVY = ("jax", "flax", "tensorflow", "orbax", "tensorflow_datasets")


def _last_bar(err: str, desc: str) -> str:
  """The last state tqdm drew of the bar named `desc` (states are separated by carriage returns)."""
  return [s for s in re.split(r"[\r\n]", err) if s.startswith(desc)][-1]


def _log(path, sessions=300, seed=0):
  rng = np.random.default_rng(seed)
  lists = [
    schema.RankingList(
      qid=f"q{i}",
      doc_ids=[f"d{i}-{k}" for k in range(5)],
      labels={"human": rng.integers(0, 5, 5).astype(np.float32)},
    )
    for i in range(20)
  ]
  opener = gzip.open if str(path).endswith(".gz") else open
  with opener(path, "wt") as f:
    write_jsonl(sim_lib.simulate(lists, sessions=sessions, list_size=5, seed=seed).records(), f)
  return path


@pytest.fixture
def bars_at_once(monkeypatch):
  """The reading bar shows from the start (it waits `DELAY_S` otherwise: these logs are small)."""
  monkeypatch.setattr(reader_flags, "DELAY_S", 0)


def test_data_stats_shows_bytes_sessions_and_skips_and_quiet_shows_nothing(bars_at_once, capsys):
  cli.main(["data", "stats", "--format", "jsonl", str(SAMPLE)])
  err = capsys.readouterr().err
  size = os.path.getsize(SAMPLE)
  assert _last_bar(err, "reading 1 file").startswith("reading 1 file: 100%")
  assert f"{size}/{size}" in err and "3 sessions, 5 skipped" in err
  cli.main(["data", "stats", "--format", "jsonl", str(SAMPLE), "--quiet"])
  assert capsys.readouterr().err == ""


def test_a_log_in_the_wrong_format_shows_its_skips(bars_at_once, capsys):
  """No session comes, the bar counts the skips (a thread refreshes it from the summary)."""
  xml = SAMPLE.with_name("tiangong_st_sample.xml")
  with pytest.raises(SystemExit, match="are these files in --format jsonl"):
    cli.main(["clicks", "harvest", "--format", "jsonl", str(xml)])
  lines = sum(1 for line in xml.read_text().splitlines() if line.strip())
  assert f"0 sessions, {lines} skipped" in _last_bar(capsys.readouterr().err, "reading 1 file")


def test_a_short_read_shows_no_bar(capsys):
  cli.main(["data", "stats", "--format", "jsonl", str(SAMPLE)])
  assert capsys.readouterr().err == ""


def test_a_gz_log_counts_its_compressed_bytes_against_their_total(tmp_path):
  """The bar's total is the files' sizes as stored; a .gz's position is the compressed one."""
  gz = _log(tmp_path / "log.jsonl.gz")
  plain = tmp_path / "log.jsonl"
  plain.write_bytes(gzip.decompress(gz.read_bytes()))
  stored, total = os.path.getsize(gz), os.path.getsize(gz) + os.path.getsize(plain)
  summary = readers.ReadSummary()
  positions = [summary.position() for _ in readers.read_sessions("jsonl", [gz, plain], summary)]
  assert positions == sorted(positions) and positions[0] <= stored  # the .gz, compressed
  assert any(stored < p < total for p in positions)  # then the plain file, as it is read
  assert summary.position() == total
  assert summary.bytes == 2 * os.path.getsize(plain)  # decompressed


def test_clicks_fit_shows_reading_compiling_and_fitting_with_the_log_likelihood(
  bars_at_once, tmp_path, capsys
):
  log = _log(tmp_path / "log.jsonl")
  out = clicks_cli.fit(["--format", "jsonl", str(log), "--iterations", "20"])
  err = capsys.readouterr().err
  assert f"{out['pages']:,} sessions, 0 skipped" in _last_bar(err, "reading 1 file")
  assert "compiling the pbm fit (em) ...\n" in err
  assert re.search(r"compiled the pbm fit \(em\) in \d+\.\d s\n", err)
  fitting = _last_bar(err, "fitting pbm (em)")
  assert "20/20" in fitting
  assert f"log_likelihood={out['train']['log_likelihood']:.5f}" in fitting
  quiet = clicks_cli.fit(["--format", "jsonl", str(log), "--iterations", "20", "--quiet"])
  assert capsys.readouterr().err == ""
  # The bar's fit runs in chunks of iterations: the same fit.
  assert quiet["train"]["log_likelihood"] == out["train"]["log_likelihood"]
  assert quiet["propensities"] == out["propensities"]


def test_clicks_simulate_shows_the_sampler_compile_and_its_sessions(tmp_path, capsys):
  svm = tmp_path / "lists.txt"
  svm.write_text("".join(f"{q % 3} qid:{q // 4} 1:{q}.5 # docid = d{q}\n" for q in range(40)))
  args = ["--svmlight", str(svm), "--sessions", "500", "--output", str(tmp_path / "sim.jsonl")]
  clicks_cli.simulate(args)
  err = capsys.readouterr().err
  assert "compiling the pbm click sampler (500 sessions) ..." in err
  assert "500/500" in _last_bar(err, "clicking (pbm)")
  assert "500/500" in _last_bar(err, "writing sim.jsonl")
  clicks_cli.simulate([*args, "--quiet"])
  assert capsys.readouterr().err == ""


def test_prepare_quiet_silences_tfds_bars_too(bars_at_once, tmp_path, capsys):
  log = _log(tmp_path / "log.jsonl")
  prepare = ["data", "prepare", "--format", "jsonl", str(log), "--name", "p", "--json"]
  cli.main([*prepare, "--output", str(tmp_path / "a")])
  err = capsys.readouterr().err
  assert "reading 1 file" in err and "%|" in err.split("writing dataset", 1)[1]  # tfds's own
  cli.main([*prepare, "--output", str(tmp_path / "b"), "--quiet"])
  assert "%|" not in capsys.readouterr().err


def test_announcing_says_each_new_shape_once_and_passes_attributes_on(capsys):
  double = progress.announcing(
    jax.jit(lambda x: 2 * x), "double", shapes=lambda x: f"{x.shape[0]} items"
  )
  for n in (3, 3, 5, 3):
    double(jnp.ones(n))
  lines = capsys.readouterr().err.splitlines()
  assert [line.split(" in ")[0] for line in lines] == [
    "compiling double (3 items) ...",
    "compiled double (3 items)",
    "compiling double (5 items) ...",
    "compiled double (5 items)",
  ]
  assert double._cache_size() == 2  # jit's own attribute  # pylint: disable=protected-access


def _heavy_imports(*argv: str) -> tuple[int, str, list[str]]:
  """(exit status, stderr, heavy modules imported) of `python -X importtime -m rankjax.cli`."""
  proc = subprocess.run(
    [sys.executable, "-X", "importtime", "-m", "rankjax.cli", *argv],
    cwd=ROOT,
    env={**os.environ, **CACHE_ENV},
    capture_output=True,
    text=True,
    timeout=120,
  )
  timed = [line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if "|" in line]
  said = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("import time"))
  return proc.returncode, said, sorted(set(timed) & set(HEAVY))


@pytest.mark.parametrize(
  "argv, status, says",
  [
    (["train", "--no-such-flag"], 1, "Unknown command line flag 'no-such-flag'"),
    (
      ["train", "--config=configs/demo.py", "--workdir=/tmp/w", "--restart", "--no-such-flag"],
      1,
      "Unknown command line flag 'no-such-flag'",
    ),
    (["train", "--config", "configs/demo.py"], 1, "Flag --workdir must have a value"),
    (["study", "--config=configs/demo.py", "--workdir", "/tmp/w", "--nope"], 1, "'nope'"),
    (["score", "--no-such-flag"], 1, "Unknown command line flag"),
    (["data", "prepare", "--format", "jsonl", "x.jsonl"], 2, "required: --output, --name"),
    (["clicks", "fit", "--format", "jsonl", "x.jsonl", "--model", "pbm", "--nope"], 2, "--nope"),
    (["clicks", "simulate", "--svmlight", "x.txt", "--model", "ubm"], 2, "required: --output"),
    (["annotate", "run", "--format", "jsonl", "x", "--nope"], 2, "required: --store, --backend"),
    (["export", "--workdir", "w"], 2, "required: --output"),
  ],
)
def test_argument_errors_come_before_jax_is_imported(argv, status, says):
  code, err, heavy = _heavy_imports(*argv)
  assert code == status, err[-2000:]
  assert says in err
  assert heavy == []


def test_a_wrong_click_model_is_named_after_the_rest_of_the_command_line_is_checked(capsys):
  """The click models' names live with jax: checked last (a missing argument first), listed."""
  with pytest.raises(SystemExit) as e:
    clicks_cli.fit(["x.jsonl", "--model", "pmb"])
  assert e.value.code == 2 and "required: --format" in capsys.readouterr().err
  with pytest.raises(SystemExit) as e:
    clicks_cli.fit(["--format", "jsonl", "x.jsonl", "--model", "pmb"])
  err = capsys.readouterr().err
  assert e.value.code == 2 and "--model: invalid choice: 'pmb' (choose from" in err
  assert "'pbm'" in err
