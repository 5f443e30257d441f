"""What the commands share about their shape: dispatch to a command by name, and the help of the
commands whose flags are absl's (train, score, study)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence

HELP_FLAGS = ("-h", "--help", "--helpshort")


def absl_help(argv: Sequence[str], *, prog: str, doc: str, flags_modules: Sequence[str]) -> bool:
  """Prints an absl command's help and returns True when `argv` asks for it.

  absl's own `--help` exits with status 1 and lists the flags of the `__main__` module, which
  under the `rankjax` program are none. Here `-h`, `--help` and `--helpshort` (before any `--`)
  print `prog`'s usage, its `doc` and the flags the `flags_modules` define, and the command returns
  (status 0) without importing what a run needs.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top

  flag_args = list(argv)[: list(argv).index("--")] if "--" in argv else argv
  if not set(HELP_FLAGS) & set(flag_args):
    return False
  listed = "\n".join(flags.FLAGS.module_help(m) for m in flags_modules)
  print(f"usage: {prog} [flags]\n\n{doc.strip()}\n{listed}")
  return True


def dispatch(
  argv: Sequence[str],
  *,
  prog: str,
  doc: str,
  helps: Mapping[str, str],
  resolve: Callable[[str], Callable],
):
  """Runs the command `argv[0]` names with the rest of `argv`; returns what the command returns.

  Only that command is resolved (`resolve(name)(argv[1:], prog=f"{prog} {name}")`), so what a
  command imports is paid only when it runs. `-h` / `--help` instead of a command prints `prog`'s
  usage and the commands with their `helps` (exit status 0); no command, or an unknown one, is a
  usage error (status 2).
  """
  parser = argparse.ArgumentParser(
    prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  commands = parser.add_subparsers(
    dest="command", title="commands", metavar="COMMAND", required=True
  )
  for name, help_line in helps.items():
    commands.add_parser(name, help=help_line, add_help=False)
  argv = list(argv)
  name = parser.parse_args(argv[:1]).command  # exits on -h, and without a known command
  return resolve(name)(argv[1:], prog=f"{prog} {name}")


def dispatch_to(functions: Mapping[str, Callable], argv: Sequence[str], *, prog: str, doc: str):
  """`dispatch` among the functions of a command group; a function's help is its docstring's
  first line."""
  return dispatch(
    argv,
    prog=prog,
    doc=doc,
    resolve=functions.__getitem__,
    helps={name: f.__doc__.split("\n")[0] for name, f in functions.items()},
  )


def quiet_library_logs() -> None:
  """absl logging at WARNING unless --verbosity was given: orbax logs every checkpoint save and
  restore at INFO (32 lines for one `rankjax score`)."""
  from absl import flags, logging  # pylint: disable=g-import-not-at-top

  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
