"""TREC Session Track 2011-2014 XML logs, with topic-level qrels as human labels.

Queries have no ids in these logs: the query text is the id. Results carry a `clueweb09id` or
`clueweb12id`; clicks name only the rank (and their start / end time, from which dwell is taken).
Sessions also hold a `currentquery` without results, which is not an interaction and is ignored.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

from rankjax.data.readers import errors
from rankjax.data.readers.common import Option, ReadSummary, Session, log_format, once_per_read
from rankjax.data.readers.xml_sessions import TREC, read_xml_sessions

# The grades a qrels row may carry, inclusive: TREC's scale from -2 (spam) to 4 (navigational),
# which the Session, Web and Deep Learning tracks' grades all fall in.
QRELS_GRADES = (-2.0, 4.0)
QRELS_COLUMNS = 4  # topic iteration docno grade


class QrelsError(errors.InputError):
  """A qrels file that cannot be read as one: most of it in another encoding, or no row."""


def _row(line: str) -> tuple[tuple[str, str, float] | None, str, str]:
  """(topic, docno, grade), or None with the skip reason and message."""
  cols = line.split()
  if len(cols) != QRELS_COLUMNS:
    return None, "qrels_columns", f"{len(cols)} columns, expected topic iteration docno grade"
  try:
    grade = float(cols[3])
  except ValueError:
    return None, "qrels_bad_grade", f"grade {cols[3]!r} is not a number"
  if not math.isfinite(grade):
    return None, "qrels_bad_grade", f"grade {cols[3]!r} is not finite"
  if not QRELS_GRADES[0] <= grade <= QRELS_GRADES[1]:
    low, high = QRELS_GRADES
    return None, "qrels_grade_out_of_range", f"grade {cols[3]!r} is outside {low:g} to {high:g}"
  return (cols[0], cols[2], grade), "", ""


def load_trec_qrels(
  path,
  summary: ReadSummary | None = None,
  *,
  encoding: str = "utf-8",
  encoding_flag: str = "--labels-encoding",
) -> dict[str, dict[str, float]]:
  """TREC qrels `topic iteration docno grade` -> {topic: {docno: grade}}.

  A row is four whitespace-separated columns, its grade a finite number in `QRELS_GRADES`
  (-2 to 4). Any other row is a counted skip in `summary` naming file:line: `qrels_columns`,
  `qrels_bad_grade` (not a number, NaN or Inf), `qrels_grade_out_of_range`,
  `qrels_duplicate` (a (topic, docno) judged again; the first grade is kept) and
  `qrels_bad_encoding` (a line that is not valid `encoding`).

  Args:
    path: the qrels file.
    summary: receives the skips (a fresh one if None).
    encoding: the file's text encoding.
    encoding_flag: the command's flag that gives `encoding`, named in the error of a file in
      another encoding.

  Raises:
    QrelsError: when at least as many lines fail to decode as are read (the file is in another
      encoding: the message names the flag), or no row is read.
  """
  summary = ReadSummary() if summary is None else summary
  out: dict[str, dict[str, float]] = {}
  read = undecodable = 0
  first_undecodable = None
  with open(path, "rb") as f:
    for n, raw in enumerate(f, 1):
      where, raw = f"{path}:{n}", raw.rstrip(b"\r\n")
      try:
        line = raw.decode(encoding)
      except UnicodeDecodeError as e:
        undecodable += 1
        first_undecodable = first_undecodable or n
        bad = raw[e.start : e.start + 8]
        summary.skip(
          "qrels_bad_encoding", where, f"not valid {encoding} at byte {e.start}: {bad!r}"
        )
        continue
      if not line.strip():
        continue
      row, reason, message = _row(line)
      if row is None:
        summary.skip(reason, where, message)
        continue
      topic, docno, grade = row
      grades = out.setdefault(topic, {})
      if docno in grades:
        summary.skip(
          "qrels_duplicate",
          where,
          f"topic {topic!r} document {docno!r} judged again; "
          f"kept the first grade {grades[docno]:g}",
        )
        continue
      grades[docno] = grade
      read += 1
  if undecodable and undecodable >= read:
    raise QrelsError(
      f"{path}: {undecodable} lines are not valid {encoding} (the first: line {first_undecodable})"
      f"; give the file's encoding with {encoding_flag}, e.g. latin-1"
    )
  if not read:
    raise QrelsError(f"{path}: no qrels row (topic iteration docno grade) read; {summary}")
  return out


@log_format(
  "trec-session",
  labels=Option("TREC qrels, grades per topic, as human labels"),
  labels_encoding=Option("the text encoding of the --labels file"),
)
def read_trec_session(
  path, summary: ReadSummary, *, labels=None, labels_encoding="utf-8"
) -> Iterator[Session]:
  """Sessions of one TREC Session Track XML file.

  Args:
    path: the XML file.
    summary: receives counts and skips.
    labels: a qrels file (grades per topic) or its `load_trec_qrels` dict; results get the grade of
      their session's topic, NaN where unjudged. A file is read once per `summary`, its skipped
      rows counted there.
    labels_encoding: the text encoding of the `labels` file.
  """
  if labels is not None and not isinstance(labels, dict):
    labels = once_per_read(
      summary,
      ("qrels", os.fspath(labels), labels_encoding),
      lambda: load_trec_qrels(labels, summary, encoding=labels_encoding),
    )
  return read_xml_sessions(path, summary, TREC, labels=labels)
