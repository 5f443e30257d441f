"""The `rankjax` program: every --help exits 0 importing no heavy library; input errors are one
line."""

import importlib
import json
import subprocess
import sys
import tomllib

import pytest
from train_helpers import ROOT

from rankjax import cli
from rankjax.cli import errors

# What no --help may import: each costs seconds, and only a command's run needs it.
HEAVY = ("tensorflow_datasets", "orbax", "matplotlib", "scipy", "transformers")

# The program's entry point as the `rankjax` script calls it, in a fresh interpreter; the last
# line printed is its exit status and the heavy modules it imported.
PROBE = f"""
import json, sys
from rankjax import cli
try:
  status = cli.main(sys.argv[1:])
except SystemExit as e:
  status = e.code
print(json.dumps({{"status": status, "imported": [m for m in {HEAVY + ("jax",)!r}
                                                   if m in sys.modules]}}))
"""


def _commands():
  """Every command, and every subcommand of a group, as read off the dispatch tables."""
  commands = [[]]
  for name in cli.COMMANDS:
    commands.append([name])
    module = importlib.import_module(f"rankjax.cli.{name}")
    commands += [[name, sub] for sub in getattr(module, "SUBCOMMANDS", ())]
  return commands


def _probe(args):
  proc = subprocess.run(
    [sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
  )
  assert proc.returncode == 0, proc.stderr
  *help_lines, last = proc.stdout.strip().splitlines()
  return json.loads(last), "\n".join(help_lines)


@pytest.mark.parametrize("command", _commands(), ids=lambda c: " ".join(c) or "rankjax")
def test_help_exits_0_without_heavy_imports(command):
  result, text = _probe([*command, "--help"])
  assert result["status"] == 0, text
  assert not set(result["imported"]) & set(HEAVY), result["imported"]
  assert f"usage: {' '.join(['rankjax', *command])}" in text
  if command in ([], ["train"]):  # the two a newcomer runs first do not even start JAX
    assert "jax" not in result["imported"]
  if command == ["train"]:
    assert "--config:" in text and "--workdir:" in text


def test_python_m_rankjax_main_is_rankjax_train():
  proc = subprocess.run(
    [sys.executable, "-m", "rankjax.main", "--help"],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 0, proc.stderr
  assert "usage: python -m rankjax.main" in proc.stdout
  assert "--config:" in proc.stdout and "--workdir:" in proc.stdout


def test_unknown_command_is_a_usage_error_naming_the_commands():
  proc = subprocess.run(
    [sys.executable, "-m", "rankjax.cli", "trian"],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 2
  assert "invalid choice: 'trian'" in proc.stderr and "'train'" in proc.stderr


def test_the_rankjax_script_is_the_dispatcher():
  scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
  module, _, function = scripts["rankjax"].partition(":")
  assert getattr(importlib.import_module(module), function) is cli.main


def test_missing_file_is_one_line_and_exit_status_1():
  def main():
    open("/nonexistent/log.xml")  # pylint: disable=consider-using-with,unspecified-encoding

  with pytest.raises(SystemExit) as exit_info:
    errors.one_line_errors(main)()
  assert str(exit_info.value) == (
    "error: [Errno 2] No such file or directory: '/nonexistent/log.xml'"
  )
  assert exit_info.value.__suppress_context__  # no chained traceback


def test_other_errors_keep_their_traceback():
  def main():
    raise ValueError("a bug")

  with pytest.raises(ValueError, match="a bug"):
    errors.one_line_errors(main)()


@pytest.mark.parametrize(
  "command,message",
  [
    (
      [
        "data",
        "prepare",
        "--format",
        "trec-session",
        "{tmp}/log.xml",
        "--output",
        "{tmp}/out",
        "--name",
        "x",
      ],
      "error: [Errno 2] No such file or directory: '{tmp}/log.xml'",
    ),
    (
      ["score", "--workdir={tmp}/run"],
      "error: {tmp}/run: not a training run's directory (no config.json)",
    ),
  ],
)
def test_entry_points(command, message, tmp_path):
  proc = subprocess.run(
    [sys.executable, "-m", "rankjax.cli", *(c.format(tmp=tmp_path) for c in command)],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == message.format(tmp=tmp_path)
  assert "Traceback" not in proc.stderr
