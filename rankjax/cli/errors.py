"""What the commands share about their input: one-line errors for missing inputs and config keys,
and the loader of experiment config files."""

import functools
import importlib.util
import pathlib

from absl import app

from rankjax.data.readers.errors import InputError


def one_line_errors(main):
  """`main` where a missing input file, or bad input (`rankjax.data.readers.errors.InputError`: a
  malformed labelled file, a file in another encoding, a log that cannot be read at all such as a
  directory or a `.gz` that is not gzip), ends the program with one line naming it, not a
  traceback.

  Exit status 1, message "error: <the exception's message>". Every other exception keeps its
  traceback. The `rankjax` dispatcher wraps each command where it calls it, so that tests calling
  a command's `main` still see the exception.
  """

  @functools.wraps(main)
  def wrapped(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except (FileNotFoundError, InputError) as e:
      raise SystemExit(f"error: {e}") from None

  return wrapped


def load_config(path, arg: str | None = None):
  """The config of an experiment file: its `get_config(arg)`, or `get_config()` when arg is None
  (the file's own default variant)."""
  spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config() if arg is None else module.get_config(arg)


def parse_config_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, where an override of a key the locked `--config` lacks is a flag error.

  ml_collections raises AttributeError (or KeyError, for a section) there, which absl would show
  as a traceback; this names the override and the keys its section has.
  """
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as e:
    raise SystemExit(f"FATAL Flags parsing error: {_missing_key_message(argv, e)}") from None


def _missing_key_message(argv: list[str], error: Exception) -> str:
  """Which `--config.` override names no key of the config, and the keys of its section."""
  file_arg = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
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
