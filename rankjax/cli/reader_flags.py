"""Click-log reader flags, built from the format records (`rankjax.data.readers.FORMATS`), so a
reader's option is declared once, where the reader is defined, and every log-reading command
offers it."""

from __future__ import annotations

import argparse
import collections
from collections.abc import Sequence

from rankjax.data import readers


def _options_by_name() -> dict[str, list[tuple[str, readers.Option]]]:
  """Reader option name -> (format, option) of every registered format that takes it."""
  by_name = collections.defaultdict(list)
  for fmt in readers.FORMATS.values():
    for name, option in fmt.options.items():
      by_name[name].append((fmt.name, option))
  return dict(sorted(by_name.items()))


def _flag(name: str) -> str:
  return "--" + name.replace("_", "-")


def add(
  parser: argparse.ArgumentParser, files_help: str = "click log files", repeated: Sequence[str] = ()
) -> None:
  """Adds `--format`, the log files and one flag per reader option of the registered formats.

  A flag's help gathers what each format that takes the option says about it. Options named in
  `repeated` may be given several times (a list, e.g. one `--labels` per file).

  >>> p = argparse.ArgumentParser()
  >>> add(p)
  >>> args = p.parse_args(["--format", "sogou", "log.txt", "--encoding", "utf-8"])
  >>> args.files, options(args)
  (['log.txt'], {'encoding': 'utf-8'})
  """
  parser.add_argument("--format", required=True, choices=sorted(readers.FORMATS), help="log format")
  parser.add_argument("files", nargs="+", help=files_help)
  for name, uses in _options_by_name().items():
    types = {option.type for _, option in uses}
    if len(types) > 1:
      raise TypeError(
        f"reader option {name!r} has several types {sorted(map(str, types))} in "
        f"formats {[f for f, _ in uses]}; one name, one type"
      )
    helps = [
      f"{fmt}: {option.help}" + ("" if option.default is None else f" (default: {option.default})")
      for fmt, option in uses
    ]
    repeats = name in repeated
    parser.add_argument(
      _flag(name),
      type=types.pop(),
      action="append" if repeats else "store",
      help=("; ".join(helps) + (" (repeatable)" if repeats else "")).replace("%", "%%"),
    )


def options(args: argparse.Namespace) -> dict:
  """The reader options given on the command line (see `add`); one that `--format`'s reader
  does not take is an error naming those it takes."""
  given = {
    name: getattr(args, name) for name in _options_by_name() if getattr(args, name) is not None
  }
  known = readers.reader_options(args.format)
  unknown = sorted(set(given) - set(known))
  if unknown:
    raise SystemExit(
      f"--format {args.format} takes {[_flag(k) for k in known] or 'no options'}, "
      f"not {[_flag(k) for k in unknown]}"
    )
  return given


def check_format(summary: readers.ReadSummary, args: argparse.Namespace) -> None:
  """Ends the command (exit status 1) when most records failed to read (`mostly_skipped`),
  naming the format asked, the commonest skip reasons and one example, instead of going on with
  what little was read."""
  if not summary.mostly_skipped():
    return
  reasons = ", ".join(f"{n} {reason}" for reason, n in summary.reasons.most_common(3))
  example = next(e for examples in summary.examples.values() for e in examples)
  raise SystemExit(
    f"error: {summary.skipped} records skipped ({reasons}) against {summary.sessions} sessions "
    f"read: are these files in --format {args.format}? The first skip: {example}"
  )
