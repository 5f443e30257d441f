"""(query, document text) pairs to score with a text ranker: a JSON Lines file -> `RankingList`s.

One JSON object per line, one line per (query, document):

  {"qid": "q1", "query": "cheap flights", "docno": "d7", "text": "Title. Snippet...", "label": 2}

`qid` and `docno` are strings or integers (kept as text), `query` and `text` strings; `label`
(optional) is a graded judgment, a finite number, NaN in the list where a line has none. The lines
of a query are contiguous and carry one query text. Blank lines are skipped; other fields are
ignored. JSON Lines rather than TSV: a document's text may hold tabs, newlines and quotes, which
JSON escapes.

The file is read one query at a time (constant memory, whatever its size). A line that breaks these
rules is an error naming the file, the line and the field.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "pairs.jsonl"
>>> _ = p.write_text('{"qid": 1, "query": "q", "docno": "a", "text": "x", "label": 1}\\n'
...                  '{"qid": 1, "query": "q", "docno": "b", "text": "y"}\\n')
>>> [(l.qid, l.doc_ids, l.doc_texts, l.labels["human"].tolist()) for l in iter_text_pairs(p)]
[('1', ['a', 'b'], ['x', 'y'], [1.0, nan])]
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from collections.abc import Iterator

import numpy as np

from rankjax.data import schema
from rankjax.data.readers import errors

FIELDS = ("qid", "query", "docno", "text")


class TextPairsError(errors.InputError):
  """A malformed pairs file; the message names the file, the 1-based line and the field."""


def _field(obj: dict, name: str, where: str) -> str:
  value = obj.get(name)
  if name not in obj:
    raise TextPairsError(f"{where}: no {name!r} field (a line needs {', '.join(FIELDS)})")
  ok = (str, int) if name in ("qid", "docno") else (str,)
  if not isinstance(value, ok) or isinstance(value, bool):
    what = "a string or an integer" if name in ("qid", "docno") else "a string"
    raise TextPairsError(f"{where}: field {name!r} is {json.dumps(value)[:40]}, not {what}")
  return str(value)


def _label(obj: dict, where: str) -> float:
  value = obj.get("label")
  if value is None:
    return math.nan
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
    raise TextPairsError(f"{where}: field 'label' is {json.dumps(value)[:40]}, not a finite number")
  return float(value)


def iter_text_pairs(
  path: str | os.PathLike, *, label_source: str = "human"
) -> Iterator[schema.RankingList]:
  """Streams a pairs file (module docstring) one query at a time, in file order.

  Yields:
    Untokenized `RankingList`s with `query` and `doc_texts`; labels under `label_source` when any
    line of the query has one.

  Raises:
    TextPairsError: a line is not a JSON object, lacks a field or has one of the wrong type, a
      query's lines are not contiguous or disagree on its text; naming the file and line.
  """
  path = pathlib.Path(path)
  group: list[tuple[str, str, float]] = []  # (docno, text, label) of the current query
  qid = query = None
  seen: set[str] = set()

  def finish() -> schema.RankingList:
    labels = np.array([g[2] for g in group], np.float32)
    return schema.RankingList(
      qid=qid,
      doc_ids=[g[0] for g in group],
      labels={} if np.isnan(labels).all() else {label_source: labels},
      query=query,
      doc_texts=[g[1] for g in group],
    )

  with open(path, "rb") as f:
    for lineno, raw in enumerate(f, 1):
      where = f"{path}:{lineno}"
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        raise TextPairsError(f"{where}: not valid UTF-8 at byte {e.start}") from None
      if not line.strip():
        continue
      try:
        obj = json.loads(line)
      except json.JSONDecodeError as e:
        raise TextPairsError(
          f"{where}: not JSON ({e.msg} at column {e.colno}); a line is an object with "
          + ", ".join(FIELDS)
        ) from None
      if not isinstance(obj, dict):
        raise TextPairsError(f"{where}: a JSON {type(obj).__name__}, not an object")
      q, text = _field(obj, "qid", where), _field(obj, "query", where)
      doc = (_field(obj, "docno", where), _field(obj, "text", where), _label(obj, where))
      if q != qid:
        if group:
          yield finish()
        if q in seen:
          raise TextPairsError(
            f"{where}: qid {q!r} appears again after other queries; a query's lines must be "
            "contiguous"
          )
        seen.add(q)
        qid, query, group = q, text, []
      elif text != query:
        raise TextPairsError(
          f"{where}: qid {q!r} has query {text[:40]!r}, its earlier lines {query[:40]!r}"
        )
      group.append(doc)
  if group:
    yield finish()
