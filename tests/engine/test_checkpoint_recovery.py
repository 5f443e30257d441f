"""A damaged latest checkpoint: the run says which one and why, moves it aside into
`checkpoints/corrupt/`, resumes from the newest good one and ends exactly as a resume from there;
when none restores, `rankjax train` stops with one line and exit status 1."""

import os
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from train_helpers import CACHE_ENV, ROOT, flag_overrides, tiny_config, tiny_dataset

from rankjax.engine import checkpoint, train


def _files(directory, pattern="*"):
  return sorted(p for p in directory.rglob(pattern) if p.is_file())


def _truncate_arrays(step_dir):
  # The array bytes: OCDBT data files under state/ocdbt.process_<i>/d/.
  files = _files(step_dir / "state", "d/*")
  assert files, sorted(step_dir.rglob("*"))
  for path in files:
    os.truncate(path, path.stat().st_size // 2)


def _remove_state(step_dir):
  shutil.rmtree(step_dir / "state")


def _empty_metadata(step_dir):
  for path in [*_files(step_dir, "_METADATA"), *_files(step_dir, "_CHECKPOINT_METADATA")]:
    path.write_bytes(b"")


def _corrupt_iterator_state(step_dir):
  (step_dir / "data" / "metadata").write_text('{"next_index": ')


def _random_bytes(step_dir):
  rng = np.random.default_rng(0)
  for path in _files(step_dir):
    path.write_bytes(rng.bytes(max(path.stat().st_size, 64)))


# Each damage, and the exception (class: first words) the one-line report names for it.
DAMAGE = {
  "truncated array files": (_truncate_arrays, "ValueError: OUT_OF_RANGE: Error opening"),
  "missing state/": (_remove_state, """KeyError: 'Item "state" was not found in the checkpoint"""),
  "emptied metadata": (_empty_metadata, "JSONDecodeError: Expecting value: line 1 column 1"),
  "corrupt iterator state": (_corrupt_iterator_state, "JSONDecodeError: Expecting value"),
  "random bytes": (_random_bytes, "UnicodeDecodeError: 'utf-8' codec can't decode byte"),
}

# "checkpoint step <s> (<path>) does not restore: <class>: <why>; moved it to <path>"
REPORT = re.compile(r"checkpoint step (\d+) \((\S+)\) does not restore: (.+); moved it to (\S+)$")


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
  return tiny_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def finished(data_path, tmp_path_factory):
  """A finished 6-step run with checkpoints 3 and 6, and its final state and results."""
  workdir = tmp_path_factory.mktemp("finished")
  out = train.train_and_evaluate(tiny_config(data_path), workdir)
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["3", "6"]
  return workdir, jax.device_get(out["state"]), out["eval"]


def _copy_run(finished, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(finished[0], workdir)
  return workdir


@pytest.mark.slow
@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_latest_checkpoint_is_moved_aside_and_the_run_resumes_before_it(
  damage, data_path, finished, tmp_path, capsys
):
  workdir = _copy_run(finished, tmp_path)
  checkpoints = workdir / "checkpoints"
  damage_fn, error = DAMAGE[damage]
  damage_fn(checkpoints / "6")
  damaged = sorted(str(p.relative_to(checkpoints)) for p in checkpoints.rglob("*"))

  out = train.train_and_evaluate(tiny_config(data_path), workdir)

  printed = capsys.readouterr().out.splitlines()
  reports = [m for m in map(REPORT.match, printed) if m]
  assert len(reports) == 1, printed
  step, path, why, moved = reports[0].groups()
  assert (step, path) == ("6", str(checkpoints / "6")) and why.startswith(error), why
  (aside,) = (checkpoints / "corrupt").iterdir()
  assert moved == str(aside) and re.fullmatch(r"6-\d{8}-\d{6}", aside.name)
  # Moved whole, not deleted: every damaged file is there.
  assert sorted(
    str(p.relative_to(checkpoints)).replace(f"corrupt/{aside.name}", "6") for p in aside.rglob("*")
  ) == [d for d in damaged if d.startswith("6/")]
  assert f"resumed from step 3 in {checkpoints}" in printed
  # The same end as the uninterrupted run, which test_train shows a resume from 3 matches.
  for x, y in zip(jax.tree.leaves(finished[1]), jax.tree.leaves(out["state"]), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert out["step"] == 6 and out["eval"] == finished[2]
  assert sorted(p.name for p in checkpoints.iterdir()) == ["3", "6", "corrupt"]


def _rankjax_train(data_path, workdir, *args):
  return subprocess.run(
    [
      sys.executable,
      "-m",
      "rankjax.main",
      "--config=configs/mslr_mlp.py:local",
      f"--workdir={workdir}",
      *flag_overrides(data_path),
      *args,
    ],
    cwd=ROOT,
    env={**os.environ, **CACHE_ENV, "JAX_PLATFORMS": "cpu"},
    capture_output=True,
    text=True,
    timeout=600,
  )


@pytest.mark.slow
def test_when_no_checkpoint_restores_the_run_stops_with_one_line(data_path, finished, tmp_path):
  workdir = _copy_run(finished, tmp_path)
  checkpoints = workdir / "checkpoints"
  _truncate_arrays(checkpoints / "6")
  _remove_state(checkpoints / "3")

  proc = _rankjax_train(data_path, workdir)

  assert proc.returncode == 1, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  reports = [m for m in map(REPORT.match, proc.stdout.splitlines()) if m]
  assert [m.group(1) for m in reports] == ["6", "3"]
  aside = sorted((checkpoints / "corrupt").iterdir(), key=lambda p: int(p.name.split("-")[0]))
  assert [p.name.split("-")[0] for p in aside] == ["3", "6"]
  assert [m.group(4) for m in reports] == [str(aside[1]), str(aside[0])]
  assert proc.stderr.strip().splitlines()[-1] == (
    f"error: no checkpoint of {checkpoints} restores; moved aside in {checkpoints / 'corrupt'}: "
    f"{aside[0].name}, {aside[1].name}. Start the run over with --restart (moves the workdir's "
    "contents aside) or train in another --workdir"
  )
  # Nothing trained over them: a rerun refuses again.
  assert sorted(p.name for p in checkpoints.iterdir()) == ["corrupt"]
  with pytest.raises(checkpoint.NoGoodCheckpoint, match="no checkpoint of .* restores"):
    train.train_and_evaluate(tiny_config(data_path), workdir)


def _saved(workdir, steps, best_metric=""):
  """A Checkpointer with a small state saved at `steps` (step k holds arrays of k, and metric
  `best_metric` k when there is one)."""
  ckpt = checkpoint.Checkpointer(workdir, keep=len(steps), best_metric=best_metric)
  for step in steps:
    metrics = {best_metric: float(step)} if best_metric else None
    ckpt.save(step, {"w": np.full((3,), step, np.float32)}, {"next_index": step}, metrics)
  ckpt.wait()
  return ckpt


ABSTRACT = {"w": jax.ShapeDtypeStruct((3,), np.float32)}


def test_the_newest_checkpoint_that_restores_is_used(tmp_path, capsys):
  ckpt = _saved(tmp_path, [1, 2, 3])
  _remove_state(ckpt.directory / "3")
  seen = []
  state, data = ckpt.restore_newest_good(ABSTRACT, lambda s, d: seen.append(d))
  ckpt.close()
  np.testing.assert_array_equal(state["w"], [2, 2, 2])
  assert data == {"next_index": 2} and seen == [data]
  (aside,) = (ckpt.directory / "corrupt").iterdir()
  assert capsys.readouterr().out.splitlines() == [
    f'checkpoint step 3 ({ckpt.directory / "3"}) does not restore: KeyError: \'Item "state" '
    f"was not found in the checkpoint. Available items: [\\'data\\']'; moved it to {aside}"
  ]


def test_a_check_that_fails_moves_the_checkpoint_aside_too(tmp_path, capsys):
  ckpt = _saved(tmp_path, [1, 2])

  def check(state, data):
    if data["next_index"] == 2:
      raise ValueError("iterator state of another dataset\nsecond line")

  state, _ = ckpt.restore_newest_good(ABSTRACT, check)
  ckpt.close()
  np.testing.assert_array_equal(state["w"], [1, 1, 1])
  (report,) = capsys.readouterr().out.splitlines()
  assert ": ValueError: iterator state of another dataset; moved it to " in report


@pytest.mark.parametrize(
  "error", [MemoryError(), PermissionError("denied"), RuntimeError("RESOURCE_EXHAUSTED: oom")]
)
def test_running_out_of_memory_or_permission_is_no_sign_of_damage(error, tmp_path):
  ckpt = _saved(tmp_path, [1])

  def check(state, data):
    raise error

  with pytest.raises(type(error)):
    ckpt.restore_newest_good(ABSTRACT, check)
  ckpt.close()
  assert sorted(p.name for p in ckpt.directory.iterdir()) == ["1"]


def test_without_checkpoints_there_is_nothing_to_restore(tmp_path):
  ckpt = checkpoint.Checkpointer(tmp_path)
  assert ckpt.restore_newest_good(ABSTRACT, lambda s, d: None) is None
  ckpt.close()


@pytest.mark.parametrize(
  "metrics,why",
  [
    (b"\xd7\x00garbage", "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xd7 in position 0"),
    (b"", "JSONDecodeError: Expecting value: line 1 column 1 (char 0) (reading metrics/metrics)"),
    (b'{"other": 1.0}', "its metrics {'other': 1.0} lack 'm'"),
  ],
)
def test_metrics_that_do_not_read_move_the_checkpoint_aside_as_it_opens(
  metrics, why, tmp_path, capsys
):
  # orbax reads every checkpoint's metrics to build its manager when the best one is recorded.
  _saved(tmp_path, [1, 2, 3], best_metric="m").close()
  (tmp_path / "checkpoints" / "3" / "metrics" / "metrics").write_bytes(metrics)

  ckpt = checkpoint.Checkpointer(tmp_path, keep=3, best_metric="m")

  (aside,) = (ckpt.directory / "corrupt").iterdir()
  (report,) = capsys.readouterr().out.splitlines()
  match = REPORT.match(report)
  assert match.group(1, 2, 4) == ("3", str(ckpt.directory / "3"), str(aside)), report
  assert match.group(3).startswith(why), report
  assert ckpt.latest_step() == 2 and ckpt.best_step() == 2
  state, data = ckpt.restore_newest_good(ABSTRACT, lambda s, d: None)
  ckpt.close()
  np.testing.assert_array_equal(state["w"], [2, 2, 2])
  assert data == {"next_index": 2}


def test_a_read_only_checkpointer_names_metrics_that_do_not_read_and_moves_nothing(tmp_path):
  _saved(tmp_path, [1, 2], best_metric="m").close()
  (tmp_path / "checkpoints" / "2" / "metrics" / "metrics").write_bytes(b"{")
  directory = tmp_path.resolve() / "checkpoints"
  with pytest.raises(checkpoint.DamagedCheckpoint) as error:
    checkpoint.Checkpointer(tmp_path, best_metric="m", read_only=True)
  assert str(error.value) == (
    f"checkpoint step 2 ({directory / '2'}) does not read: JSONDecodeError: Expecting property "
    "name enclosed in double quotes: line 1 column 2 (char 1) (reading metrics/metrics). "
    f"Resuming the run (rankjax train) moves it into {directory / 'corrupt'}"
  )
  assert sorted(p.name for p in directory.iterdir()) == ["1", "2"]
