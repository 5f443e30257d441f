"""TianGong-ST (Sogou session search, 2020) XML logs, query dictionary and human labels.

The published XML (`sogousessiontrack2020.xml`) has `<session num>` / `<interaction num>` with a
`<query_id>` ("q123"), results with `<docid>` ("d456"), `<vtype>`, title, url and six click-model
relevance estimates, and clicks by `<rank>`. The query texts also come as a JSON dictionary
{id: text}; ids are looked up as written and without their "q". Human labels for the last query of
2,000 sessions are a whitespace-separated file `id session query_id docid relevance` (0-4).

What is read: the XML as `xml_sessions` reads it (ranks integers >= 1). A label row with fewer
than 5 columns is `bad_line`, a relevance that is not a finite number in 0..4 `bad_field:labels`
(each skips the row). A query dictionary that is not a JSON object of strings, in UTF-8, is an
error naming the file and the position.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

from rankjax.data.readers import record
from rankjax.data.readers.common import (
  LogError,
  Option,
  ReadSummary,
  Session,
  iter_text,
  log_format,
)
from rankjax.data.readers.record import FieldError, Range
from rankjax.data.readers.xml_sessions import TIANGONG, read_xml_sessions

LABELS = Range(0, 4)


def load_tiangong_labels(
  path, summary: ReadSummary | None = None
) -> dict[tuple[str, str], dict[str, float]]:
  """Human labels `id session query_id docid relevance` -> {(session, query): {doc: grade}}; bad
  rows are counted in `summary` (`ReadSummary.absorb`)."""
  out: dict[tuple[str, str], dict[str, float]] = {}
  own = ReadSummary()  # the side file's bytes are not the log's
  for where, line in iter_text(path, own, "utf-8"):
    cols = line.split()
    if len(cols) < 5:
      own.skip("bad_line", where, f"expected 5 columns, got {line.strip()[:60]!r}")
      continue
    try:
      grade = record.parse_number("labels", cols[4], LABELS)
    except FieldError as e:
      own.bad_field(where, e)
      continue
    out.setdefault((cols[1], cols[2]), {})[cols[3]] = grade
  if summary is not None:
    summary.absorb(own)
  return out


def load_json_dictionary(path, what: str = "query dictionary") -> dict[str, str]:
  """A JSON object {id: text} in UTF-8 (the query dictionary `qid_query.json`, the vertical types
  `vid_vtype.json`); `LogError` naming the file, the position of what is not one, and `what` the
  file is."""
  path = os.fspath(path)
  if os.path.isdir(path):
    raise LogError(f"{path}: is a directory, not a {what}")
  with open(path, "rb") as f:
    raw = f.read()
  try:
    out = json.loads(raw.decode("utf-8"))
  except UnicodeDecodeError as e:
    raise LogError(f"{path}: not UTF-8 at byte {e.start}; the {what} is JSON") from None
  except json.JSONDecodeError as e:
    raise LogError(f"{path}:{e.lineno}:{e.colno}: the {what} is not JSON ({e.msg})") from None
  except ValueError as e:  # an integer of more digits than Python converts
    raise LogError(f"{path}: the {what} is not JSON that Python reads ({e})") from None
  except RecursionError:
    raise LogError(f"{path}: the {what} is nested too deep to be one") from None
  if not isinstance(out, dict):
    raise LogError(f"{path}: the {what} is a JSON {type(out).__name__}, not object")
  bad = next((k for k, v in out.items() if type(v) is not str), None)
  if bad is not None:
    raise LogError(f"{path}: {bad!r} has text {out[bad]!r} in the {what}, not a string")
  return out


@log_format(
  "tiangong-st",
  labels=Option("the human-label file, `id session query_id docid relevance` rows"),
  queries=Option("the query dictionary, a JSON file {query id: text}"),
)
def read_tiangong_st(path, summary: ReadSummary, *, labels=None, queries=None) -> Iterator[Session]:
  """Sessions of one TianGong-ST XML file.

  Args:
    path: the XML file.
    summary: receives counts and skips.
    labels: the human-label file or its `load_tiangong_labels` dict.
    queries: a JSON file {query id: text} or the dict, for interactions without `<query>` text.
  """
  if labels is not None and not isinstance(labels, dict):
    labels = load_tiangong_labels(labels, summary)
  if queries is not None and not isinstance(queries, dict):
    queries = load_json_dictionary(queries)
  return read_xml_sessions(path, summary, TIANGONG, labels=labels, queries=queries)
