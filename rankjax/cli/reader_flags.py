"""Click-log reader flags, built from the format records (`rankjax.data.readers.FORMATS`), so a
reader's option is declared once, where the reader is defined, and every log-reading command
offers it; and the progress bar of every command that reads logs (`sessions`, off with --quiet).
"""

from __future__ import annotations

import argparse
import collections
import os
import threading
from collections.abc import Iterable, Iterator, Sequence

from rankjax import progress as progress_lib
from rankjax.data import readers

# Seconds between updates of the reading bar (its counts are read off the summary), and before
# it shows: a read that ends (or fails) sooner shows none.
REFRESH_S = 0.2
DELAY_S = 1.0


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
  """Adds `--format`, the log files, one flag per reader option of the registered formats, and
  `--quiet` (no progress bars).

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
  parser.add_argument("--quiet", action="store_true", help="no progress bars on stderr")


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


def sessions(args: argparse.Namespace, summary: readers.ReadSummary) -> Iterator[readers.Session]:
  """The sessions of the command's log files in `--format` with its reader flags (`options`),
  counted in `summary`, with the reading bar (`progress`)."""
  read = readers.read_sessions(args.format, args.files, summary, **options(args))
  return progress(read, summary, args.files, quiet=args.quiet)


def progress(
  sessions: Iterable[readers.Session],
  summary: readers.ReadSummary,
  files: Sequence[str],
  *,
  quiet: bool = False,
) -> Iterator[readers.Session]:
  """`sessions` (read into `summary` from `files`) as they come, with a bar on stderr: the bytes
  read of the files' total size (for a .gz, the compressed bytes), the sessions read and the
  records skipped so far. No bar with `quiet`, nor for a read shorter than `DELAY_S`.

  A thread refreshes the bar every `REFRESH_S` from the summary, so it moves while no session
  comes (a log in the wrong format: every record skipped) and costs the reading nothing.
  """
  if quiet:
    yield from sessions
    return
  try:
    total = sum(os.path.getsize(f) for f in files)
  except OSError:  # a file that is not there: the reader names it
    total = None
  with progress_lib.bar(
    total=total,
    desc=f"reading {len(files)} file{'s' * (len(files) != 1)}",
    unit="B",
    unit_scale=True,
    unit_divisor=1024,
    delay=DELAY_S,
  ) as bar:

    def show():
      try:
        position, skipped = summary.position(), summary.skipped
      except (ValueError, RuntimeError):  # a file closed, a skip reason added as we looked
        return
      bar.set_postfix_str(f"{summary.sessions:,} sessions, {skipped:,} skipped", refresh=False)
      bar.update(position - bar.n)

    stop = threading.Event()

    def refresh():
      while not stop.wait(REFRESH_S):
        show()

    refresher = threading.Thread(target=refresh, name="reading-bar", daemon=True)
    refresher.start()
    try:
      yield from sessions
    finally:
      stop.set()
      refresher.join()
    show()
