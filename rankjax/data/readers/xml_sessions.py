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

libxml2 (through lxml's pull parser) builds one `<session>` element at a time: the parser reports
only the end of a session (a tag filter in C), the reader walks that session's elements, then
clears it and drops the sessions before it, so memory stays constant however large the file. The
walk is in C (`_xml_fields.pyx`, built at install where there is a C compiler) for a session with
nothing to skip, and in Python, which counts each skip at its line, for the others. The
parser is hardened: entities are never substituted, no DTD or external entity is loaded, nothing is
fetched from the network, and libxml2's size limits stay on (no `huge_tree`); a file that declares
a DOCTYPE at all is refused (`hostile_xml`) before any of its sessions is read. Each skipped record
is reported with its file and line. A file that is not well-formed (truncated, wrong encoding)
yields every session before the error and counts the rest of the file as one `xml_error` skip; a
`.gz` whose stream ends early yields every session completed before the break (`truncated_gzip`).

A field is taken only from a direct child of its session / interaction / result / click, so e.g.
the `<query>` of a TREC `<currentquery>` is not an interaction's query; results and clicks are the
grandchildren of an interaction (inside `<results>` / `<clicked>`). A field's text is the text of
its element up to its first child element, stripped.

What is read (`record`): a result rank or click rank that is not an integer >= 1 (in ASCII digits)
skips that result (`bad_field:ranks`) or click (`bad_field:click_ranks`); a result without a
document id is `missing_doc_id`, an interaction without a query `missing_query`, a click naming
neither a rank nor a document `bad_click`, a click that ends before it starts keeps the click with
its dwell unknown (repaired: `negative_dwell`).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterator

from lxml import etree

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

# Bytes handed to libxml2 at a time; the sessions completed in a block are read before the next.
CHUNK = 1 << 16
# Blocks held while the prolog is checked for a DOCTYPE before parsing (`_read_prolog`).
PROLOG_BLOCKS = 16

# Parser options: no entity substitution, DTD loading or network access, libxml2's limits on (no
# `huge_tree`); whitespace between elements, comments and processing instructions are not built
# into the tree, which makes parsing faster and leaves one text node per field.
PARSER_OPTIONS = dict(
  resolve_entities=False,
  no_network=True,
  load_dtd=False,
  huge_tree=False,
  remove_blank_text=True,
  remove_comments=True,
  remove_pis=True,
  collect_ids=False,
)


class HostileXML(ValueError):
  """The XML declares a DTD or entities, which session logs never need."""


@dataclasses.dataclass(frozen=True)
class Dialect:
  """Which tags carry what in one XML session-log family."""

  doc_tags: tuple[str, ...]  # child of <result> (and of <click>) holding the document id
  query_id_tag: str | None = (
    None  # child of <interaction> with the query id; None: the text is the id
  )


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


class _RootStarted(Exception):
  """The prolog ended without a DOCTYPE."""


class _Prolog:
  """A parser target that refuses a DOCTYPE and stops at the root element.

  libxml2 reports the DOCTYPE before it parses the declarations inside it, so a refused file has
  none of its entities parsed (lxml calls only the target methods that exist).
  """

  def doctype(self, *_):
    raise HostileXML("DOCTYPE declarations are not allowed in a session log")

  def start(self, *_):
    raise _RootStarted

  def close(self):
    pass


def _read_prolog(blocks: Iterator[bytes], read: list[bytes]) -> None:
  """Appends to `read` the blocks up to the root element's start tag (at most `PROLOG_BLOCKS`),
  read by a parser that raises `HostileXML` at a DOCTYPE. A prolog longer than that is checked
  after parsing starts (`_refuse_doctype`); a syntax error is left to the parse, which counts it."""
  parser = etree.XMLParser(target=_Prolog(), **PARSER_OPTIONS)
  for block in blocks:
    read.append(block)
    try:
      if block:
        parser.feed(block)
      else:
        parser.close()
    except (_RootStarted, etree.XMLSyntaxError):
      break
    if not block or len(read) >= PROLOG_BLOCKS:
      break


def _refuse_doctype(tree) -> None:
  info = tree.docinfo
  if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
    raise HostileXML("DOCTYPE declarations are not allowed in a session log")


def _doctype_line(blocks: list[bytes]) -> int:
  """The line of the DOCTYPE in the first blocks of the file (1 where it is not ASCII-encoded)."""
  head = b"".join(blocks)
  at = head.find(b"<!DOCTYPE")
  return head.count(b"\n", 0, at) + 1 if at >= 0 else 1


def _text(el) -> str:
  text = el.text
  return text.strip() if text else ""


def _doc_texts(titles: list[str | None], snippets: list[str | None]) -> list[str]:
  """Each result's title and snippet, stripped, joined by a space where both are there."""
  try:  # the usual list, every result with a title and a snippet, in C
    titles, snippets = list(map(str.strip, titles)), list(map(str.strip, snippets))
  except TypeError:  # a result without one (None)
    titles = [t.strip() if t else "" for t in titles]
    snippets = [t.strip() if t else "" for t in snippets]
  else:
    if "" not in titles and "" not in snippets:
      return list(map(" ".join, zip(titles, snippets)))
  return [f"{t} {s}" if t and s else t or s for t, s in zip(titles, snippets)]


# The fast path's walk of a session's elements in C (`_xml_fields.pyx`), built at install where a
# C compiler is found; without it the reader walks them in Python, with the same records.
try:
  from rankjax.data.readers import _xml_fields
except ImportError:
  _xml_fields = None


class _Unclean(Exception):
  """The fast path met something to skip or repair: the session is read again with its locations."""


class _Strict:
  """The summary of the fast path: it reads only sessions with nothing to skip or repair, so their
  locations (an lxml element each) are never needed."""

  def skip(self, *_):
    raise _Unclean

  repair = bad_field = skip


_STRICT = _Strict()


class _SessionReader:
  """Turns one parsed `<session>` element into a `Session` (or counted skips).

  The walk (`_fields` in Python, or `_xml_fields.session_fields` in C) reads each interaction's
  fields and checks the ranks and document ids of its whole list at once (`record.parse_counts`);
  `_interaction` makes the records. A list where any result fails that check is read again result
  by result (`_careful_results`), which counts each bad one with its line; both give the same
  interaction for a list that passes. The C walk does not keep the elements, so a session it reads
  is taken only if nothing in it is skipped or repaired (`_STRICT`); otherwise the Python walk reads
  it again and counts each skip at its line.
  """

  def __init__(
    self,
    path: str,
    dialect: Dialect,
    summary: ReadSummary,
    labels: dict | None,
    queries: dict | None,
  ):
    self.path, self.d, self.summary = path, dialect, summary
    self.labels, self.queries = labels, queries
    self.doc_tags = frozenset(dialect.doc_tags)

  def _where(self, el) -> str:
    """The file and line of `el`; "" for None, an element the C walk did not keep, whose skip is
    never recorded (`_STRICT` raises instead)."""
    return "" if el is None else f"{self.path}:{el.sourceline}"

  def session(self, el) -> Session | None:
    if _xml_fields is not None:
      fields = _xml_fields.session_fields(el, self.d.doc_tags, self.d.query_id_tag, record.RANKS.hi)
      if fields is not None:
        try:
          return self._session(el, fields, _STRICT)
        except _Unclean:
          pass
    return self._session(el, self._fields(el), self.summary)

  def _session(self, el, interactions: list[tuple], summary) -> Session | None:
    num = el.get("num", "")
    inters = [it for fields in interactions if (it := self._interaction(fields, num, summary))]
    where = self._where(el)
    if not inters:
      summary.skip("empty_session", where, f"session {num!r} has no usable interaction")
      return None
    return Session(session_id=num, interactions=inters, source=where)

  def _fields(self, session) -> list[tuple]:
    """(element, topic, query, query id, ranks, documents, texts, clicks) of each interaction: the
    query and query id stripped ("" where the field is empty, None where there is none); the ranks
    (`record.parse_counts`) and stripped document ids, each None where a result fails its check
    (`_careful_results` reads the list again); each result's title and snippet (`_doc_texts`); a
    click as (element, rank, document, start, end), its rank and document stripped."""
    out = []
    topic = None
    doc_tags, qid_tag = self.doc_tags, self.d.query_id_tag
    for el in session:
      tag = el.tag
      if tag == "topic":
        topic = el.get("num")
      if tag != "interaction":
        continue
      query = qid = None
      docs, ranks, titles, snippets, clicks = [], [], [], [], []
      # `el[:]` lists the children in C, which is faster here than iterating over `el`.
      for child in el[:]:
        tag = child.tag
        if tag == "query":
          query = _text(child)
        elif tag == qid_tag:
          qid = _text(child)
        else:
          for item in child[:]:
            tag = item.tag
            if tag == "result":
              doc = title = snippet = None
              for field in item[:]:
                tag = field.tag
                if tag in doc_tags:
                  doc = field.text
                elif tag == "title":
                  title = field.text
                elif tag == "snippet":
                  snippet = field.text
              ranks.append(item.get("rank"))
              docs.append(doc)
              titles.append(title)
              snippets.append(snippet)
            elif tag == "click":
              clicks.append(self._click_fields(item))
      docs = list(map(str.strip, docs)) if None not in docs else []
      docs = docs if docs and "" not in docs else None
      ranks = record.parse_counts(ranks, record.RANKS)
      out.append((el, topic, query, qid, ranks, docs, _doc_texts(titles, snippets), clicks))
    return out

  def _click_fields(self, el) -> tuple:
    rank = doc = None
    for child in el[:]:
      tag = child.tag
      if tag == "rank":
        rank = _text(child)
      elif tag in self.doc_tags:
        doc = _text(child)
    return el, rank, doc, el.get("starttime"), el.get("endtime")

  def _interaction(self, fields: tuple, session_num: str, summary) -> Interaction | None:
    el, topic, query, qid, ranks, docs, texts, clicks = fields
    where = self._where(el)
    if self.d.query_id_tag is None:
      qid = query
    if not qid:
      summary.skip("missing_query", where, "interaction without a query")
      return None
    if not query and self.queries:
      query = self.queries.get(qid) or self.queries.get(qid.lstrip("q"))
    if ranks is None or docs is None:  # only from the Python walk, which keeps the elements
      docs, ranks, texts = self._careful_results(el)
    it = Interaction(
      query_id=qid,
      doc_ids=docs,
      ranks=ranks,
      clicks=[],
      query=query or None,
      doc_texts=texts if any(texts) else None,
      topic=topic,
    )
    if self.labels is not None:
      grades = self.labels.get(topic if self.d.query_id_tag is None else (session_num, qid))
      if grades:
        it.labels = [grades.get(d, NAN) for d in docs]
    raw_clicks = [c for fields in clicks if (c := self._click(fields, summary))]
    return finish_interaction(it, summary, where, raw_clicks)

  def _careful_results(self, el) -> tuple[list[str], list[int], list[str]]:
    """(documents, ranks, texts) of an interaction's results, result by result: a result whose rank
    is not an integer >= 1 or that has no document id is a counted skip at its line."""
    docs, ranks, titles, snippets = [], [], [], []
    for child in el:
      for item in child:
        if item.tag != "result":
          continue
        doc = title = snippet = None
        for field in item:
          tag = field.tag
          if tag in self.doc_tags:
            doc = _text(field)
          elif tag == "title":
            title = field.text
          elif tag == "snippet":
            snippet = field.text
        where = self._where(item)
        try:
          rank = record.parse_count("ranks", item.get("rank"), record.RANKS)
        except FieldError as e:
          self.summary.bad_field(where, e)
          continue
        if not doc:
          self.summary.skip("missing_doc_id", where, f"result at rank {rank} has no document id")
          continue
        docs.append(doc)
        ranks.append(rank)
        titles.append(title)
        snippets.append(snippet)
    return docs, ranks, _doc_texts(titles, snippets)

  def _click(self, fields: tuple, summary) -> tuple[int | None, str | None, float] | None:
    """(rank, document, dwell) of a click, or None with a counted skip (its location is formatted
    only then)."""
    el, rank, doc, start, end = fields
    if rank is not None:
      try:
        rank = record.parse_count("click_ranks", rank, record.RANKS)
      except FieldError as e:
        summary.bad_field(self._where(el), e)
        return None
    if rank is None and not doc:
      summary.skip("bad_click", self._where(el), "click names neither a rank nor a document")
      return None
    try:  # the usual plain seconds without two calls; + 0.0: `parse_seconds` reads "-0" as 0.0
      dwell = float(end) + 0.0 - float(start)
    except (TypeError, ValueError):
      dwell = parse_seconds(end) - parse_seconds(start)
    if dwell < 0:
      summary.repair(
        "negative_dwell",
        self._where(el),
        f"click ends before it starts ({dwell:.1f} s); dwell unknown",
      )
      dwell = NAN
    return rank, doc, dwell


class _Completed:
  """The sessions a pull parser has completed so far, each read and then freed."""

  def __init__(self, parser, reader: _SessionReader, summary: ReadSummary):
    self.parser, self.reader, self.summary = parser, reader, summary
    self.checked = False  # the DOCTYPE check, done on the first session's tree
    self.line = 1  # of the last session, for a skip

  def sessions(self) -> Iterator[Session]:
    for _, el in self.parser.read_events():
      self.line = el.sourceline
      if not self.checked:
        _refuse_doctype(el.getroottree())
        self.checked = True
      session = self.reader.session(el)
      # Constant memory: the session's subtree and the sessions before it are freed.
      el.clear(keep_tail=False)
      parent = el.getparent()
      if parent is not None:
        while el.getprevious() is not None:
          del parent[0]
      if session is not None:
        yield self.summary.count(session)


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
    path: the XML file (any encoding libxml2 knows, declared in its XML declaration),
      gzip-compressed if it ends in `.gz`.
    summary: receives counts and skips.
    dialect: tag names of the log family.
    labels: TREC: topic -> {doc: grade}; TianGong-ST: (session num, query id) -> {doc: grade}.
    queries: query id -> text, for logs that carry only ids.
  """
  path = os.fspath(path)
  reader = _SessionReader(path, dialect, summary, labels, queries)
  blocks = iter_blocks(path, summary, CHUNK)
  first: list[bytes] = []
  try:
    _read_prolog(blocks, first)
  except HostileXML as e:
    summary.skip("hostile_xml", f"{path}:{_doctype_line(first)}", f"{e}; file skipped")
    return
  # A pull parser, not `iterparse`: the sessions completed before a fatal error are read from its
  # event queue after the error on every lxml version (lxml 6.2's `iterparse` drops them).
  parser = etree.XMLPullParser(events=("end",), tag="session", **PARSER_OPTIONS)
  completed = _Completed(parser, reader, summary)
  # `iter_blocks` ends with b"" unless a compressed stream broke (counted there): then the sessions
  # completed before the break are all there is.
  for block in itertools.chain(first, blocks):
    error = None
    try:
      if block:
        parser.feed(block)
      else:
        root = parser.close()
    except etree.XMLSyntaxError as e:
      error = e
    try:
      yield from completed.sessions()
      if not (block or completed.checked or error):
        _refuse_doctype(root.getroottree())
    except HostileXML as e:
      summary.skip("hostile_xml", f"{path}:{completed.line}", f"{e}; file skipped")
      return
    if error is not None:
      # libxml2's record of the error that stopped it: the exception's own message and position
      # are lxml's ("no element found", line 0) when the input ends after a fatal error.
      last = error.error_log.last_error
      where = (last.line, last.column, last.message) if last else (*error.position, error.msg)
      line, column, message = where
      summary.skip("xml_error", f"{path}:{line}:{column}", f"{message}; rest of the file skipped")
      return
    if not block:
      return
