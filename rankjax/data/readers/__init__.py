"""Streaming click-log readers, by format name.

Each reader yields `Session`s one at a time (constant memory), skips and counts bad records in a
`ReadSummary`, and never stops on one bad record.

>>> sorted(FORMATS)
['baidu-ultr', 'baidu-ultr-annotations', 'jsonl', 'parquet', 'sogou', 'tiangong-st', 'trec-session']
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Iterator

from rankjax.data.readers.baidu import read_baidu_ultr, read_baidu_ultr_annotations
from rankjax.data.readers.common import Interaction, ReadSummary, Session
from rankjax.data.readers.generic import read_jsonl, read_parquet
from rankjax.data.readers.sogou import read_sogou
from rankjax.data.readers.tiangong import read_tiangong_st
from rankjax.data.readers.trec import read_trec_session

FORMATS = {
    "trec-session": read_trec_session,
    "tiangong-st": read_tiangong_st,
    "baidu-ultr": read_baidu_ultr,
    "baidu-ultr-annotations": read_baidu_ultr_annotations,
    "sogou": read_sogou,
    "jsonl": read_jsonl,
    "parquet": read_parquet,
}

__all__ = ["FORMATS", "Interaction", "ReadSummary", "Session", "read_sessions", "reader_options"]


def reader_options(fmt: str) -> list[str]:
  """The keyword options a format's reader takes (e.g. `labels`, `queries`, `encoding`)."""
  return [n for n, p in inspect.signature(_reader(fmt)).parameters.items() if p.kind is p.KEYWORD_ONLY]


def _reader(fmt: str):
  if fmt not in FORMATS:
    raise ValueError(f"unknown log format {fmt!r}; known: {sorted(FORMATS)}")
  return FORMATS[fmt]


def read_sessions(fmt: str, paths: str | os.PathLike | Iterable[str | os.PathLike],
                  summary: ReadSummary | None = None, **options) -> Iterator[Session]:
  """Streams the sessions of one or more log files of format `fmt`, in order.

  Args:
    fmt: a name in `FORMATS`.
    paths: one file or several.
    summary: receives read counts and counted skips (a fresh one if None; pass one to read it).
    **options: reader options (see `reader_options(fmt)`); one the reader does not take is an error.
  """
  reader = _reader(fmt)
  known = reader_options(fmt)
  unknown = sorted(set(options) - set(known))
  if unknown:
    raise ValueError(f"format {fmt!r} takes options {known}, not {unknown}")
  summary = ReadSummary() if summary is None else summary
  if isinstance(paths, (str, os.PathLike)):
    paths = [paths]
  for path in paths:
    yield from reader(path, summary, **options)
