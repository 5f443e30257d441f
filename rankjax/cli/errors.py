"""What the commands share about their input and their end: one-line errors for user errors
(missing inputs, a config that cannot run, unknown names, missing config keys), the exit statuses,
SIGTERM as "stopped, resumable", and the loader of experiment config files."""

import contextlib
import functools
import importlib.util
import pathlib
import signal
import sys
from collections.abc import Callable, Iterator, Sequence

from absl import app, flags

from rankjax.errors import UserError

# The exit statuses of the program (README, "Exit statuses and config errors").
FINISHED = 0
# A user error (one line each) or a usage error of the absl commands (train, study, score). A
# usage error of the argparse commands (data, clicks, annotate, an unknown command) exits 2,
# argparse's own status, kept as the convention of argparse programs.
ERROR = 1
# Stopped by SIGTERM (`sigterm_stops`); rerunning the same command resumes from what was saved.
# 75 is EX_TEMPFAIL of BSD's sysexits.h ("a temporary failure ... the user is invited to
# retry"), the established status for "try again later": not 0 (a scheduler would take the run
# as finished), not 1 (an error to fix first), not 128 + 15 = 143 (Python's default death, with
# no word of what was saved).
PREEMPTED = 75

# What the user can fix, so a line is all they need: a missing input file, and every
# `rankjax.errors.UserError`: a config that cannot run (`ConfigError`), an unknown name of a
# registry (a `--format`, a dataset), bad input (`InputError`: a malformed labelled file, a file in
# another encoding, a log that cannot be read at all such as a directory or a `.gz` that is not
# gzip), a workdir holding another config's run (`WorkdirInUse`), a workdir none of whose
# checkpoints restores (`NoGoodCheckpoint`).
USER_ERRORS = (FileNotFoundError, UserError)


def one_line_errors(main):
  """`main` where a user error (`USER_ERRORS`) ends the program with one line per problem, not a
  traceback.

  Exit status 1, each line "error: <the line>" (a `ConfigError` has one per violation). Every
  other exception (a bug) keeps its traceback. The `rankjax` dispatcher wraps each command where
  it calls it, so that tests calling a command's `main` still see the exception.
  """

  @functools.wraps(main)
  def wrapped(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except USER_ERRORS as e:
      raise SystemExit("\n".join(f"error: {line}" for line in str(e).splitlines())) from None

  return wrapped


class _Terminated(BaseException):
  """SIGTERM where no part of the command stops on it by itself. A BaseException, as
  KeyboardInterrupt, so that no `except Exception` (the checkpoint recovery's) takes it for a
  fault of what it was doing."""


@contextlib.contextmanager
def sigterm_stops(prog: str, after: Callable[[], str]) -> Iterator[None]:
  """Within: SIGTERM ends the command with status `PREEMPTED` and one line on stderr,
  "<prog>: stopped by SIGTERM; <after()>", `after()` saying what a rerun does (from what was
  saved by then), instead of Python's default death (143, no word).

  Python runs the handler in the main thread between bytecodes (after a running XLA compilation
  returns); it raises, so `finally` blocks close what is open on the way out. The parts that stop
  cleanly on SIGTERM by themselves (training's loop saves a checkpoint first, the annotation
  runner finishes the requests in flight) install their own handler while they run and restore
  this one after.
  """

  def on_sigterm(signum, frame):
    del signum, frame
    raise _Terminated

  previous = signal.signal(signal.SIGTERM, on_sigterm)
  try:
    yield
  except _Terminated:
    print(f"{prog}: stopped by SIGTERM; {after()}", file=sys.stderr, flush=True)
    raise SystemExit(PREEMPTED) from None
  finally:
    signal.signal(signal.SIGTERM, previous)


def load_config(path, arg: str | None = None):
  """The config of an experiment file: its `get_config(arg)`, or `get_config()` when arg is None
  (the file's own default variant)."""
  spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config() if arg is None else module.get_config(arg)


def parse_config_flags(argv: list[str], required: Sequence[str] = ()) -> list[str]:
  """absl's flag parsing, where a missing `--config` file is a `FileNotFoundError` naming it, an
  override of a key the locked `--config` lacks is a flag error, and an unknown flag or a missing
  one of `required` is reported before the config file loads.

  ml_collections would report the missing file only when the config is first read, as chained
  tracebacks, and raise AttributeError (or KeyError, for a section) for the override, which absl
  would show as a traceback; this names the override and the keys its section has. absl parses
  `--config` (loading its file, which imports jax and flax: seconds, a minute under load) before
  it reports a mistyped flag or a missing one.
  """
  file_arg = _config_arg(argv)
  if file_arg is not None and not pathlib.Path(file_arg.partition(":")[0]).is_file():
    raise FileNotFoundError(f"--config={file_arg}: no such file {file_arg.partition(':')[0]!r}")
  given = {_flag_name(a) for a in _flag_args(argv[1:])}
  if not {"flagfile", "undefok"} & given:  # they change what is known: absl's to check
    unknown = _unknown_flag(argv[1:])
    if unknown is not None:
      app.parse_flags_with_usage(argv[:1] + [unknown])  # absl's own report of it; exits
    for name in required:
      if name not in given:  # absl's words
        raise SystemExit(
          f"FATAL Flags parsing error: flag --{name}=None: Flag --{name} must have a value "
          "other than None.\nPass --helpshort or --helpfull to see help on flags."
        )
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as e:
    raise SystemExit(f"FATAL Flags parsing error: {_missing_key_message(argv, e)}") from None


def _flag_args(args: Sequence[str]) -> list[str]:
  """The flags in `args` (a command line without the program), up to `--`."""
  args = list(args)
  return [a for a in args[: args.index("--") if "--" in args else None] if a[:1] == "-" != a]


def _flag_name(arg: str) -> str:
  return arg.lstrip("-").partition("=")[0]


def _unknown_flag(args: Sequence[str]) -> str | None:
  """The first flag in `args` (a command line without the program) that no defined absl flag
  takes; `--config.` overrides are left to absl (the config's keys are known once its file is
  loaded). A flag's value may be the next argument (`--workdir /tmp/x`, `--config.seed -1`).
  """
  known = flags.FLAGS
  args = list(args)
  i = 0
  while i < len(args) and args[i] != "--":
    arg, i = args[i], i + 1
    if arg[:1] != "-" or arg == "-":
      continue
    name, has_value = _flag_name(arg), "=" in arg
    if name.startswith("config."):
      takes_next = not has_value and i < len(args) and not args[i].startswith("--")
    elif name in known:
      takes_next = not has_value and not known[name].boolean
    elif name.startswith("no") and name[2:] in known and known[name[2:]].boolean:
      takes_next = False
    else:
      return arg
    i += takes_next
  return None


def _config_arg(argv: list[str]) -> str | None:
  """The value of `--config` in `argv` (`--config=FILE[:ARG]` or `--config FILE[:ARG]`)."""
  for i, arg in enumerate(argv):
    if arg == "--":
      break
    if arg.startswith("--config="):
      return arg.split("=", 1)[1]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _missing_key_message(argv: list[str], error: Exception) -> str:
  """Which `--config.` override names no key of the config, and the keys of its section."""
  file_arg = _config_arg(argv)
  if file_arg is None:
    return f"a --config. override names no key of the config ({error})"
  path, _, arg = file_arg.partition(":")
  config = load_config(path, arg or None)
  for override in (a for a in argv if a.startswith("--config.")):
    names = override[len("--config.") :].split("=", 1)[0].split(".")
    node = config
    for i, name in enumerate(names):
      owner = ".".join(["config", *names[:i]])
      if not hasattr(node, "keys"):
        return f"{override}: {owner} is a value ({node!r}), not a section"
      if name not in node:
        return f"{override}: {owner} has no key {name!r}; its keys: {sorted(node.keys())}"
      node = node[name]
  return f"a --config. override names no key of the config ({error})"
