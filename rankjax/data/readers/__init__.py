"""Streaming click-log readers, one `LogFormat` record per format name in `FORMATS`.

Each reader yields `Session`s one at a time (constant memory), skips and counts bad records in a
`ReadSummary`, and never stops on one bad record. A format's record holds its reader and the
options the reader takes (type, help, default), declared once where the reader is defined
(`common.log_format`); the commands build their reader flags from the records.

>>> fmt = FORMATS["trec-session"]
>>> list(fmt.options), fmt.options["labels"].default
(['labels', 'labels_encoding'], None)
>>> reader_options("sogou")
['queries', 'encoding']
>>> read_sessions("trec_session", [])  # doctest: +ELLIPSIS
Traceback (most recent call last):
rankjax.registry.UnknownName: unknown log format 'trec_session'; known: ...
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from rankjax import registry

# Each reader module registers its formats in FORMATS when imported.
from rankjax.data.readers import (  # noqa: F401
  baidu,
  generic,
  sogou,
  tiangong,
  tiangong_processed,
  trec,
)
from rankjax.data.readers.common import (
  FORMATS,
  Interaction,
  LogFormat,
  Option,
  ReadSummary,
  Session,
)

__all__ = [
  "FORMATS",
  "Interaction",
  "LogFormat",
  "Option",
  "ReadSummary",
  "Session",
  "get_format",
  "read_sessions",
  "reader_options",
]


def get_format(fmt: str) -> LogFormat:
  """The record of format `fmt`; `registry.UnknownName` listing the known formats if none."""
  return registry.lookup(FORMATS, fmt, "log format")


def reader_options(fmt: str) -> list[str]:
  """The keyword options a format's reader takes (e.g. `labels`, `queries`, `encoding`)."""
  return list(get_format(fmt).options)


def read_sessions(
  fmt: str,
  paths: str | os.PathLike | Iterable[str | os.PathLike],
  summary: ReadSummary | None = None,
  **options,
) -> Iterator[Session]:
  """Streams the sessions of one or more log files of format `fmt`, in order.

  The format and the options are checked when this is called, the files read as it is iterated.

  Args:
    fmt: a name in `FORMATS`.
    paths: one file or several.
    summary: receives read counts and counted skips (a fresh one if None; pass one to read it).
    **options: reader options (see `reader_options(fmt)`); one the reader does not take is an error.
  """
  read = get_format(fmt).read
  known = reader_options(fmt)
  unknown = sorted(set(options) - set(known))
  if unknown:
    raise ValueError(f"format {fmt!r} takes options {known}, not {unknown}")
  summary = ReadSummary() if summary is None else summary
  if isinstance(paths, (str, os.PathLike)):
    paths = [paths]
  return (session for path in paths for session in read(path, summary, **options))
