"""Safe, streaming parser for session logs in XML: session / interaction / results / clicked.

TREC Session Track and TianGong-ST share one structure::

  <session num=..>
    <topic num=..>..</topic>                         (TREC)
    <interaction num=..>
      <query>text</query> <query_id>q12</query_id>   (query_id: TianGong-ST)
      <results><result rank=..><docid>..</docid><title>..</title>..</result>..</results>
      <clicked><click starttime=.. endtime=..><rank>..</rank></click>..</clicked>
    </interaction>
  </session>

The parser drives expat with callbacks and keeps only the session being read, so memory stays
constant however large the file. It refuses any DOCTYPE (so no entity can be declared: a "billion
laughs" file fails on its first line), never loads external entities, and reports each skipped
record with its file and line. A file that is not well-formed (truncated, wrong encoding) yields
every session before the error and counts the rest of the file as one `xml_error` skip; a `.gz`
whose stream ends early yields every session completed before the break (`truncated_gzip`).

What is read (`record`): a result rank or click rank that is not an integer >= 1 (in ASCII digits)
skips that result (`bad_field:ranks`) or click (`bad_field:click_ranks`); a result without a
document id is `missing_doc_id`, an interaction without a query `missing_query`, a click naming
neither a rank nor a document `bad_click`, a click that ends before it starts keeps the click with
its dwell unknown (repaired: `negative_dwell`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from xml.parsers import expat

from rankjax.data.readers import record
from rankjax.data.readers.common import (
  NAN,
  Interaction,
  ReadSummary,
  Session,
  finish_interaction,
  iter_blocks,
)
from rankjax.data.readers.record import FieldError

CHUNK = 1 << 16  # small, since the sessions completed in a chunk are held until it is parsed


class HostileXML(ValueError):
  """The XML declares a DTD or entities, which session logs never need."""


@dataclasses.dataclass(frozen=True)
class Dialect:
  """Which tags carry what in one XML session-log family."""

  doc_tags: tuple[str, ...]  # child of <result> (and of <click>) holding the document id
  query_id_tag: str | None = (
    None  # child of <interaction> with the query id; None: the text is the id
  )
  text_tags: tuple[str, ...] = ("title", "snippet")


TREC = Dialect(doc_tags=("clueweb12id", "clueweb09id", "docno", "docid"))
TIANGONG = Dialect(doc_tags=("docid",), query_id_tag="query_id")


def parse_seconds(value: str | None) -> float:
  """Seconds from "12.5" or a clock time "09:54:42.63"; NaN when absent or unreadable."""
  if not value:
    return NAN
  try:
    secs = 0.0
    for part in value.split(":"):
      secs = secs * 60 + float(part)
    return secs
  except ValueError:
    return NAN


class _Handler:
  """expat callbacks that assemble one session at a time into `self.done`.

  Hot path: one dict lookup per element; a field is taken only from a direct child of the open
  session / interaction / result / click (tracked by depth), so e.g. the `<query>` of a TREC
  `<currentquery>` is not an interaction's query.
  """

  def __init__(
    self,
    parser,
    path: str,
    dialect: Dialect,
    summary: ReadSummary,
    labels: dict | None,
    queries: dict | None,
  ):
    self.p, self.path, self.d, self.summary = parser, path, dialect, summary
    self.labels, self.queries = labels, queries
    self.text: list[str] = []
    self.done: list[Session] = []
    self.session = self.inter = self.result = self.click = None
    self.depth = self.session_depth = self.inter_depth = self.result_depth = self.click_depth = 0
    self.starts = {
      "session": self._start_session,
      "topic": self._start_topic,
      "interaction": self._start_interaction,
      "result": self._start_result,
      "click": self._start_click,
    }
    self.ends = {
      "session": self._end_session,
      "interaction": self._end_interaction,
      "result": self._end_result,
      "click": self._end_click,
      "rank": self._end_click_rank,
      "query": self._end_query,
    }
    if dialect.query_id_tag:
      self.ends[dialect.query_id_tag] = self._end_query_id
    for tag in dialect.text_tags:
      self.ends[tag] = lambda tag=tag: self._end_result_text(tag)
    for tag in dialect.doc_tags:
      self.ends[tag] = self._end_doc

  def where(self) -> str:
    return f"{self.path}:{self.p.CurrentLineNumber}"

  def start(self, name, attrs):
    self.depth += 1
    self.text.clear()
    fn = self.starts.get(name)
    if fn is not None:
      fn(attrs)

  def end(self, name):
    fn = self.ends.get(name)
    if fn is not None:
      fn()
    self.depth -= 1

  def _text(self) -> str:
    return "".join(self.text).strip()

  def _start_session(self, attrs):
    self.session = {"num": attrs.get("num", ""), "where": self.where(), "topic": None, "inters": []}
    self.session_depth = self.depth

  def _start_topic(self, attrs):
    if self.session is not None and self.depth == self.session_depth + 1:
      self.session["topic"] = attrs.get("num")

  def _start_interaction(self, attrs):
    if self.session is not None and self.depth == self.session_depth + 1:
      self.inter = {
        "where": self.where(),
        "query": None,
        "qid": None,
        "docs": [],
        "ranks": [],
        "texts": [],
        "clicks": [],
      }
      self.inter_depth = self.depth

  def _start_result(self, attrs):  # interaction > results > result
    if self.inter is not None and self.depth == self.inter_depth + 2:
      self.result = {"rank": attrs.get("rank"), "doc": None, "where": self.where()}
      self.result_depth = self.depth

  def _start_click(self, attrs):  # interaction > clicked > click
    if self.inter is not None and self.depth == self.inter_depth + 2:
      dwell = parse_seconds(attrs.get("endtime")) - parse_seconds(attrs.get("starttime"))
      if dwell < 0:
        self.summary.repair(
          "negative_dwell",
          self.where(),
          f"click ends before it starts ({dwell:.1f} s); dwell unknown",
        )
        dwell = NAN
      self.click = {"rank": None, "doc": None, "dwell": dwell}
      self.click_depth = self.depth

  def _end_query(self):
    if self.inter is not None and self.depth == self.inter_depth + 1:
      self.inter["query"] = self._text()

  def _end_query_id(self):
    if self.inter is not None and self.depth == self.inter_depth + 1:
      self.inter["qid"] = self._text()

  def _end_result_text(self, tag):
    if self.result is not None and self.depth == self.result_depth + 1:
      self.result[tag] = self._text()

  def _end_doc(self):
    if self.result is not None and self.depth == self.result_depth + 1:
      self.result["doc"] = self._text()
    elif self.click is not None and self.depth == self.click_depth + 1:
      self.click["doc"] = self._text()

  def _end_click_rank(self):
    if self.click is not None and self.depth == self.click_depth + 1:
      self.click["rank"] = self._text()

  def _end_result(self):
    if self.result is None or self.depth != self.result_depth:
      return
    r, self.result = self.result, None
    try:
      rank = record.parse_count("ranks", r["rank"], record.RANKS)
    except FieldError as e:
      self.summary.bad_field(r["where"], e)
      return
    if not r["doc"]:
      self.summary.skip("missing_doc_id", r["where"], f"result at rank {rank} has no document id")
      return
    self.inter["docs"].append(r["doc"])
    self.inter["ranks"].append(rank)
    self.inter["texts"].append(" ".join(r[t] for t in self.d.text_tags if r.get(t)))

  def _end_click(self):
    if self.click is None or self.depth != self.click_depth:
      return
    c, self.click = self.click, None
    rank = None
    if c["rank"] is not None:
      try:
        rank = record.parse_count("click_ranks", c["rank"], record.RANKS)
      except FieldError as e:
        self.summary.bad_field(self.where(), e)
        return
    if rank is None and not c["doc"]:
      self.summary.skip("bad_click", self.where(), "click names neither a rank nor a document")
      return
    self.inter["clicks"].append((rank, c["doc"], c["dwell"]))

  def _end_interaction(self):
    if self.inter is None or self.depth != self.inter_depth:
      return
    i, self.inter = self.inter, None
    qid = i["qid"] if self.d.query_id_tag else i["query"]
    if not qid:
      self.summary.skip("missing_query", i["where"], "interaction without a query")
      return
    query = i["query"] or (
      self.queries and (self.queries.get(qid) or self.queries.get(qid.lstrip("q")))
    )
    it = Interaction(
      query_id=qid,
      doc_ids=i["docs"],
      ranks=i["ranks"],
      clicks=[],
      query=query or None,
      doc_texts=i["texts"] if any(i["texts"]) else None,
      topic=self.session["topic"],
    )
    if self.labels is not None:
      key = self.session["topic"] if self.d.query_id_tag is None else (self.session["num"], qid)
      grades = self.labels.get(key)
      if grades:
        it.labels = [grades.get(d, NAN) for d in it.doc_ids]
    it = finish_interaction(it, self.summary, i["where"], i["clicks"])
    if it is not None:
      self.session["inters"].append(it)

  def _end_session(self):
    if self.session is None or self.depth != self.session_depth:
      return
    s, self.session = self.session, None
    if not s["inters"]:
      self.summary.skip(
        "empty_session", s["where"], f"session {s['num']!r} has no usable interaction"
      )
      return
    self.done.append(Session(session_id=s["num"], interactions=s["inters"], source=s["where"]))


def _forbid(kind):
  def handler(*args):
    raise HostileXML(f"{kind} declarations are not allowed in a session log")

  return handler


def read_xml_sessions(
  path: str | os.PathLike,
  summary: ReadSummary,
  dialect: Dialect,
  *,
  labels: dict | None = None,
  queries: dict | None = None,
) -> Iterator[Session]:
  """Yields the sessions of one XML log file, in file order, with constant memory.

  Args:
    path: the XML file (any encoding expat knows, declared in its XML declaration), gzip-compressed
      if it ends in `.gz`.
    summary: receives counts and skips.
    dialect: tag names of the log family.
    labels: TREC: topic -> {doc: grade}; TianGong-ST: (session num, query id) -> {doc: grade}.
    queries: query id -> text, for logs that carry only ids.
  """
  path = os.fspath(path)
  p = expat.ParserCreate()
  p.buffer_text = True
  p.buffer_size = 1 << 16
  p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
  p.StartDoctypeDeclHandler = _forbid("DOCTYPE")
  p.EntityDeclHandler = _forbid("ENTITY")
  p.ExternalEntityRefHandler = _forbid("external entity")
  h = _Handler(p, path, dialect, summary, labels, queries)
  p.StartElementHandler, p.EndElementHandler, p.CharacterDataHandler = h.start, h.end, h.text.append
  # A stream that breaks (counted) has no final empty block: the session it broke in is dropped.
  for chunk in iter_blocks(path, summary, CHUNK):
    try:
      p.Parse(chunk, not chunk)
    except expat.ExpatError as e:
      yield from map(summary.count, h.done)
      summary.skip(
        "xml_error",
        f"{path}:{e.lineno}:{e.offset}",
        f"{expat.ErrorString(e.code)}; rest of the file skipped",
      )
      return
    except HostileXML as e:
      yield from map(summary.count, h.done)
      summary.skip("hostile_xml", f"{path}:{p.CurrentLineNumber}", f"{e}; file skipped")
      return
    yield from map(summary.count, h.done)
    h.done.clear()


def read_label_rows(path, min_cols: int) -> Iterator[tuple[str, list[str]]]:
  """Whitespace-separated rows of a label file, with their location; short rows are an error."""
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
      cols = line.split()
      if not cols:
        continue
      if len(cols) < min_cols:
        raise ValueError(f"{path}:{n}: expected {min_cols} columns, got {line.strip()!r}")
      yield f"{path}:{n}", cols
