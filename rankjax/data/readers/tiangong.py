"""TianGong-ST (Sogou session search, 2020) XML logs, query dictionary and human labels.

The published XML (`sogousessiontrack2020.xml`) has `<session num>` / `<interaction num>` with a
`<query_id>` ("q123"), results with `<docid>` ("d456"), `<vtype>`, title, url and six click-model
relevance estimates, and clicks by `<rank>`. The query texts also come as a JSON dictionary
{id: text}; ids are looked up as written and without their "q". Human labels for the last query of
2,000 sessions are a whitespace-separated file `id session query_id docid relevance` (0-4).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from rankjax.data.readers.common import Option, ReadSummary, Session, log_format
from rankjax.data.readers.xml_sessions import TIANGONG, read_label_rows, read_xml_sessions


def load_tiangong_labels(path) -> dict[tuple[str, str], dict[str, float]]:
  """Human labels `id session query_id docid relevance` -> {(session, query): {doc: grade}}."""
  out: dict[tuple[str, str], dict[str, float]] = {}
  for where, cols in read_label_rows(path, 5):
    try:
      out.setdefault((cols[1], cols[2]), {})[cols[3]] = float(cols[4])
    except ValueError as e:
      raise ValueError(f"{where}: relevance {cols[4]!r} is not a number") from e
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
    labels = load_tiangong_labels(labels)
  if queries is not None and not isinstance(queries, dict):
    with open(queries, encoding="utf-8") as f:
      queries = json.load(f)
  return read_xml_sessions(path, summary, TIANGONG, labels=labels, queries=queries)
