"""Command-line entry points end on a missing input with one line naming it, not a traceback."""

import subprocess
import sys

import pytest

from rankjax import cli

from train_helpers import ROOT


def test_missing_file_is_one_line_and_exit_status_1():
  def main():
    open("/nonexistent/log.xml")  # pylint: disable=consider-using-with,unspecified-encoding

  with pytest.raises(SystemExit) as exit_info:
    cli.one_line_errors(main)()
  assert str(exit_info.value) == (
      "error: [Errno 2] No such file or directory: '/nonexistent/log.xml'")
  assert exit_info.value.__suppress_context__  # no chained traceback


def test_other_errors_keep_their_traceback():
  def main():
    raise ValueError("a bug")

  with pytest.raises(ValueError, match="a bug"):
    cli.one_line_errors(main)()


@pytest.mark.parametrize("command,message", [
    (["-m", "rankjax.data", "prepare", "--format", "trec-session", "{tmp}/log.xml",
      "--output", "{tmp}/out", "--name", "x"],
     "error: [Errno 2] No such file or directory: '{tmp}/log.xml'"),
    (["tools/score.py", "--workdir={tmp}/run"],
     "error: {tmp}/run: not a training run's directory (no config.json)"),
])
def test_entry_points(command, message, tmp_path):
  proc = subprocess.run([sys.executable, *(c.format(tmp=tmp_path) for c in command)], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == message.format(tmp=tmp_path)
  assert "Traceback" not in proc.stderr
