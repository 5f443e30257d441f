"""The README's two commands stay true: CI runs the README's test command verbatim."""

import re

from rankjax.data import paths


def _commands():
  readme = (paths.PROJECT_ROOT / "README.md").read_text()
  section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
  return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def test_exactly_two_one_line_commands():
  commands = _commands()
  assert len(commands) == 2 and all("\n" not in c for c in commands), commands
  assert "-m rankjax.main --config=configs/demo.py --workdir=" in commands[0]
  assert "-m pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
  ci = (paths.PROJECT_ROOT / ".ci" / "run").read_text()
  assert _commands()[1] in ci.splitlines()
