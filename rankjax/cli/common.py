"""What the commands share about their shape: dispatch to a command by name, and the help of the
commands whose flags are absl's (train, score, study)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence

HELP_FLAGS = ("-h", "--help", "--helpshort")


def asks_help(argv: Sequence[str]) -> bool:
  """Whether `argv` asks for help (`HELP_FLAGS` before any `--`)."""
  argv = list(argv)
  return bool(set(HELP_FLAGS) & set(argv[: argv.index("--")] if "--" in argv else argv))


def absl_help(argv: Sequence[str], *, prog: str, doc: str, flags_modules: Sequence[str]) -> bool:
  """Prints an absl command's help and returns True when `argv` asks for it.

  absl's own `--help` exits with status 1 and lists the flags of the `__main__` module, which
  under the `rankjax` program are none. Here `-h`, `--help` and `--helpshort` (before any `--`)
  print `prog`'s usage, its `doc` and the flags the `flags_modules` define, and the command returns
  (status 0) without importing what a run needs.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top

  if not asks_help(argv):
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


class Names:
  """The names of a registry that lives in a module importing jax (`module`'s `attribute`), as an
  argparse flag's `choices`, imported when first looked at; `parse_args` looks at them last. Give
  the flag a `metavar`: argparse lists the choices in usage lines otherwise (and when the flag is
  added), which would import them.

  >>> "jsonl" in Names("rankjax.data.readers", "FORMATS")
  True
  """

  def __init__(self, module: str, attribute: str):
    self.module, self.attribute = module, attribute

  @property
  def names(self) -> list[str]:
    """The registry's names now (entries registered later, a plugin's, count)."""
    return list(getattr(importlib.import_module(self.module), self.attribute))

  def __iter__(self) -> Iterator[str]:
    return iter(self.names)

  def __contains__(self, name) -> bool:
    return name in self.names


def positive_int(text: str) -> int:
  """An argparse type: a count of at least 1, refused with the usage line before any import."""
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r}: want a positive count") from None
  if value < 1:
    raise argparse.ArgumentTypeError(f"{value}: want a positive count")
  return value


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
  """`parser.parse_args(argv)`, where flags whose `choices` are `Names` are checked after the rest
  of the command line: an unknown flag or a missing argument is reported before their modules
  (jax: seconds, a minute under load) are imported. `--help` lists them.
  """
  if asks_help(argv):
    return parser.parse_args(argv)
  # argparse has no public list of a parser's arguments; `_actions` has been it since 2009.
  deferred = {a: a.choices for a in parser._actions if isinstance(a.choices, Names)}  # noqa: SLF001
  for action in deferred:
    action.choices = None
  try:
    args = parser.parse_args(argv)
  finally:
    for action, names in deferred.items():
      action.choices = names
  for action, names in deferred.items():
    value = getattr(args, action.dest)
    if value is not None and value not in names:
      parser.error(
        f"argument {'/'.join(action.option_strings)}: invalid choice: {value!r} "
        f"(choose from {', '.join(map(repr, names))})"
      )
  return args
