"""The README's commands stay true: CI runs the README's test command verbatim, the demo command
runs the program the install puts in the environment, and every command line names a command
the `rankjax` program has."""

import importlib
import re
import tomllib

from rankjax import cli
from rankjax.data import paths

README = paths.PROJECT_ROOT / "README.md"


def _commands():
  section = README.read_text().split("## Two commands", 1)[1].split("\n## ", 1)[0]
  return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def test_exactly_two_one_line_commands():
  commands = _commands()
  assert len(commands) == 2 and all("\n" not in c for c in commands), commands
  assert ".venv/bin/rankjax train --config=configs/demo.py --workdir=" in commands[0]
  assert "-m pytest" in commands[1]


def test_the_demo_command_installs_the_program_it_runs():
  install, run = _commands()[0].split(".venv/bin/rankjax ", 1)
  assert "pip install -q -e ." in install
  scripts = tomllib.loads((paths.PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
  assert scripts["rankjax"] == "rankjax.cli:main" and run.startswith("train ")


def test_ci_runs_the_readme_test_command():
  ci = (paths.PROJECT_ROOT / ".ci" / "run").read_text()
  assert _commands()[1] in ci.splitlines()


def test_every_command_line_names_a_command_of_the_program():
  code = "\n".join(re.findall(r"```bash\n(.*?)\n```", README.read_text(), flags=re.S))
  named = re.findall(r"(?:^|[\s;&(])(?:\.venv/bin/)?rankjax ([\w-]+)(?: ([\w-]+))?", code, re.M)
  assert len(named) > 10, named  # the pattern finds the README's command lines
  for command, sub in named:
    assert command in cli.COMMANDS, command
    subcommands = getattr(importlib.import_module(f"rankjax.cli.{command}"), "SUBCOMMANDS", None)
    assert subcommands is None or sub in subcommands, (command, sub)
  # The entry points that the program replaced are gone from the command lines (export_check is
  # not one: it loads an export with jax alone, so it stays outside the program).
  assert not re.findall(
    r"python -m rankjax\.(?!cli\b|export_check\b)|tools/(?!benchmarks/)\w+\.py", code
  )
