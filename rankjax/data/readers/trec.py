"""TREC Session Track 2011-2014 XML logs, with topic-level qrels as human labels.

Queries have no ids in these logs: the query text is the id. Results carry a `clueweb09id` or
`clueweb12id`; clicks name only the rank (and their start / end time, from which dwell is taken).
Sessions also hold a `currentquery` without results, which is not an interaction and is ignored.
"""

from __future__ import annotations

from collections.abc import Iterator

from rankjax.data.readers.common import Option, ReadSummary, Session, log_format
from rankjax.data.readers.xml_sessions import TREC, read_label_rows, read_xml_sessions


def load_trec_qrels(path) -> dict[str, dict[str, float]]:
  """TREC qrels `topic iteration docno grade` -> {topic: {docno: grade}}."""
  out: dict[str, dict[str, float]] = {}
  for where, cols in read_label_rows(path, 4):
    try:
      out.setdefault(cols[0], {})[cols[2]] = float(cols[3])
    except ValueError as e:
      raise ValueError(f"{where}: grade {cols[3]!r} is not a number") from e
  return out


@log_format("trec-session", labels=Option("TREC qrels, grades per topic, as human labels"))
def read_trec_session(path, summary: ReadSummary, *, labels=None) -> Iterator[Session]:
  """Sessions of one TREC Session Track XML file.

  Args:
    path: the XML file.
    summary: receives counts and skips.
    labels: a qrels file (grades per topic) or its `load_trec_qrels` dict; results get the grade of
      their session's topic, NaN where unjudged.
  """
  if labels is not None and not isinstance(labels, dict):
    labels = load_trec_qrels(labels)
  return read_xml_sessions(path, summary, TREC, labels=labels)
