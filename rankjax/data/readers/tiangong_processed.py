"""TianGong-ST in the processed layouts click-model papers distribute (CACM's and NCM's code).

The processing numbers queries, documents and vertical types densely (qid, uid, vid, integers from
0) in the order it met them in the XML, and drops TianGong-ST's session numbers, titles and times.

Per session (`tiangong-session`: CACM's `train_per_session.txt`, `dev_...`, `test_...`): one line
per shown document, `[qids]<TAB>[previous]<TAB>[uid, rank, vid]<TAB>click`: the session's queries
up to this one (the last is the query the document was shown for), the previous line's
`[uid, rank, vid, click]` (`[]` on a session's first line, which is how a session starts; the blank
lines between sessions are not needed), the document with its rank and vertical type, and the click
(0 / 1). The labelled file (`human_label_for_CACM.txt`) adds the document's human label (0-4) as a
fifth column. Consecutive lines with one query sequence are one interaction. The layout has no
session ids: sessions are numbered from 1 in each file.

Per query (`tiangong-query`, NCM's layout): one interaction per line,
`sid<TAB>qid<TAB>[uids]<TAB>[vids]<TAB>[clicks]`, the documents in rank order, and in a labelled
file a sixth column `[labels]`; CACM's writer (`train_per_query.txt`) puts two columns of 0 after
the query id, and such lines are read too. Consecutive lines with one session id are one session.

Dictionaries (each optional): `queries` (`qid_query.json`, {qid: text}) gives the query texts;
`query_nodes` (`qid_nid.dict`), `doc_nodes` (`uid_nid.dict`; both Python dict literals
{id: graph node id}) and `verticals` (`vid_vtype.json`, {vid: vertical type}) hold the ids of the
processing that wrote the log, and an id outside one given is counted (`unknown_query` skips the
interaction, `unknown_doc` and `unknown_vertical` the document): a log read with the dictionaries of
another processing shows as such. A dictionary that is not in its layout is one `LogError` naming
the file and line.

Human labels: a labelled file in the format's layout given as `labels` joins its grades by (query
id, document id), since the layouts keep no session number to join by (a grade reaches every list
of its query that shows the document; a pair graded twice keeps its first grade, a different second
one is the skip `conflicting_label`). A labelled log keeps its own labels.

What is read (`record`): ids are integers >= 0, ranks integers >= 1, clicks 0 / 1, labels finite
numbers in 0..4; a line whose columns are not JSON values is `bad_json`, one with another number of
columns `bad_line`, a field of the wrong type, range or length `bad_field:<field>`, a per-session
line outside a session (its first line skipped) `orphan_line` (each skips the line). Text is UTF-8.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator

from rankjax.data.readers import record
from rankjax.data.readers.common import (
  Interaction,
  LogError,
  Option,
  ReadSummary,
  Session,
  finish_interaction,
  iter_text,
  log_format,
  once_per_read,
)
from rankjax.data.readers.record import FieldError, Range
from rankjax.data.readers.tiangong import load_json_dictionary

IDS = Range(0, 2**63 - 1)
CLICKS = Range(0, 1)
LABELS = Range(0, 4)

OPTIONS = dict(
  labels=Option("a labelled file in this layout, its grades joined by (query id, document id)"),
  queries=Option("the query dictionary, a JSON file {query id: text} (qid_query.json)"),
  query_nodes=Option("the query ids of the processing, qid_nid.dict; other ids are skipped"),
  doc_nodes=Option("the document ids of the processing, uid_nid.dict; other ids are skipped"),
  verticals=Option("the vertical types of the processing, vid_vtype.json; other vids are skipped"),
)

# The opening of a Python dict literal, and one `id: id` pair of it with the separator after it.
_OPEN = re.compile(r"\s*\{\s*")
_PAIR = re.compile(r"\s*(\d+)\s*:\s*(\d+)\s*([,}])")


def load_id_dictionary(path) -> frozenset[str]:
  """The keys of a dict literal {int: int, ...} (CACM's `qid_nid.dict`, `uid_nid.dict`), as
  strings; `LogError` naming the file, line and column of what is not one.

  Read with a pattern, pair by pair: `ast.literal_eval` would build a syntax tree of the whole
  file (hundreds of thousands of entries) to read a flat table of integers, and JSON has no
  integer keys.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    raise LogError(f"{path}: is a directory, not an id dictionary")
  with open(path, "rb") as f:
    raw = f.read()
  try:
    text = raw.decode("ascii")
  except UnicodeDecodeError as e:
    raise LogError(
      f"{path}: byte {e.start} is not ASCII; an id dictionary is {{int: int}}"
    ) from None
  keys = []
  opened = _OPEN.match(text)
  at, closed = (opened.end(), False) if opened else (0, False)
  if opened and text.startswith("}", at):  # {}
    at, closed = at + 1, True
  while opened and not closed and (m := _PAIR.match(text, at)):
    keys.append(m.group(1))
    at, closed = m.end(), m.group(3) == "}"
  if not closed or text[at:].strip():
    at += len(text[at:]) - len(text[at:].lstrip())  # point at what is there, not at a space
    line = text.count("\n", 0, at) + 1
    column = at - text.rfind("\n", 0, at)
    raise LogError(
      f"{path}:{line}:{column}: not an id dictionary {{int: int, ...}} (at {text[at : at + 20]!r})"
    )
  return frozenset(keys)


@dataclasses.dataclass
class _Reading:
  """What one read of a processed log joins and checks against, loaded from the options."""

  labels: dict[tuple[str, str], float] | None = None
  queries: dict[str, str] | None = None
  query_ids: frozenset[str] | None = None
  doc_ids: frozenset[str] | None = None
  verticals: frozenset[str] | None = None


def _reading(fmt: str, summary: ReadSummary, labels, queries, query_nodes, doc_nodes, verticals):
  """The options loaded, once per read (`once_per_read`) of several files."""
  key = (
    fmt,
    *(
      None if x is None or isinstance(x, dict) else os.fspath(x)
      for x in (labels, queries, query_nodes, doc_nodes, verticals)
    ),
  )
  return once_per_read(
    summary, key, lambda: _load(fmt, summary, labels, queries, query_nodes, doc_nodes, verticals)
  )


def _load(fmt: str, summary: ReadSummary, labels, queries, query_nodes, doc_nodes, verticals):
  if labels is not None and not isinstance(labels, dict):
    labels = load_labels(fmt, labels, summary)
  return _Reading(
    labels=labels,
    queries=None if queries is None else load_json_dictionary(queries),
    query_ids=None if query_nodes is None else load_id_dictionary(query_nodes),
    doc_ids=None if doc_nodes is None else load_id_dictionary(doc_nodes),
    verticals=(
      None if verticals is None else frozenset(load_json_dictionary(verticals, "vertical types"))
    ),
  )


def load_labels(fmt: str, path, summary: ReadSummary | None = None) -> dict[tuple[str, str], float]:
  """(query id, document id) -> human label of a labelled file of format `fmt`; its skips (and
  `conflicting_label`, a pair graded again differently; the first grade is kept) are counted in
  `summary`, its reading counts are not (`ReadSummary.absorb`)."""
  own = ReadSummary()
  out: dict[tuple[str, str], float] = {}
  read = _READERS[fmt]
  for session in read(path, own, _Reading()):
    for it in session.interactions:
      for doc, grade in zip(it.doc_ids, it.labels or ()):
        if grade != grade:  # NaN: no label
          continue
        first = out.setdefault((it.query_id, doc), grade)
        if first != grade:
          own.skip(
            "conflicting_label",
            session.source,
            f"query {it.query_id!r} document {doc!r} graded {grade:g}, first {first:g} (kept)",
          )
  if summary is not None:
    summary.absorb(own)
  return out


def _interaction(
  ctx: _Reading,
  summary: ReadSummary,
  where: str,
  qid: str,
  docs: list[tuple[str, int, str, int, float | None, str]],
) -> Interaction | None:
  """The interaction of query `qid` from its documents (uid, rank, vid, click, label or None,
  location), after the dictionary checks; None where nothing is left (counted)."""
  if ctx.query_ids is not None and qid not in ctx.query_ids:
    summary.skip("unknown_query", where, f"query {qid!r} is not in the query-node dictionary")
    return None
  kept = []
  for doc in docs:
    if ctx.doc_ids is not None and doc[0] not in ctx.doc_ids:
      summary.skip("unknown_doc", doc[5], f"document {doc[0]!r} is not in the doc-node dictionary")
    elif ctx.verticals is not None and doc[2] not in ctx.verticals:
      summary.skip("unknown_vertical", doc[5], f"vertical type {doc[2]!r} is not in the dictionary")
    else:
      kept.append(doc)
  uids = [d[0] for d in kept]
  inline = [d[4] for d in kept]
  if any(x is not None for x in inline):
    labels = [float("nan") if x is None else x for x in inline]
  elif ctx.labels is not None:
    labels = [ctx.labels.get((qid, u), float("nan")) for u in uids]
    labels = labels if any(x == x for x in labels) else None
  else:
    labels = None
  query = ctx.queries.get(qid) if ctx.queries is not None else None
  it = Interaction(qid, uids, [d[1] for d in kept], [], query=query or None, labels=labels)
  return finish_interaction(it, summary, where, [(d[1], None, float("nan")) for d in kept if d[3]])


def _json_columns(line: str, where: str, summary: ReadSummary) -> list | None:
  """The tab-separated columns of a line as JSON values; None with a counted skip."""
  cols = line.rstrip("\r").split("\t")
  try:
    values = json.loads(f"[{','.join(cols)}]")
  except ValueError as e:  # not JSON, or an integer of more digits than Python converts
    summary.skip("bad_json", where, f"columns are not JSON values: {e}")
    return None
  except RecursionError:
    summary.skip("too_deep", where, "JSON nested deeper than the parser's recursion limit")
    return None
  if len(values) != len(cols):  # a comma inside a column
    summary.skip("bad_line", where, f"{len(cols)} columns hold {len(values)} values")
    return None
  return values


def _label(values: list, n: int) -> list[float | None]:
  """The label column(s) of a line: None each where the layout has none."""
  if len(values) == n:
    return [None]
  return record.numbers("labels", values[n : n + 1], 1, LABELS)


def _read_session_layout(path, summary: ReadSummary, ctx: _Reading) -> Iterator[Session]:
  """Sessions of one per-session file (CACM)."""
  sessions = 0
  cur: dict | None = None  # the session being read
  inter: dict | None = None  # its interaction being read

  def close_interaction():
    if inter is not None and cur is not None:
      it = _interaction(ctx, summary, inter["where"], inter["qid"], inter["docs"])
      if it is not None:
        cur["inters"].append(it)

  def close_session():
    close_interaction()
    if cur is not None and cur["inters"]:
      return summary.count(Session(str(cur["num"]), cur["inters"], cur["where"]))
    return None

  for where, line in iter_text(path, summary, "utf-8"):
    values = _json_columns(line, where, summary)
    if values is None:
      continue
    if len(values) not in (4, 5):
      summary.skip("bad_line", where, f"{len(values)} columns, expected 4 (5 with a label)")
      continue
    seq, previous, doc, click = values[:4]
    try:
      record.ints("query_ids", seq, None, IDS)
      if not seq:
        raise FieldError("query_ids", "no query in the session's query sequence")
      record.ints("previous", previous, None, IDS)
      if len(previous) not in (0, 4):
        raise FieldError(
          "previous", f"{len(previous)} items, expected [] or [uid, rank, vid, click]"
        )
      record.ints("document", doc, 3, IDS)
      rank = record.integer("ranks", doc[1], record.RANKS)
      click = record.integer("clicks", click, CLICKS)
      (label,) = _label(values, 4)
    except FieldError as e:
      summary.bad_field(where, e)
      continue
    if not previous:  # a session's first line
      if (s := close_session()) is not None:
        yield s
      sessions += 1
      cur, inter = {"num": sessions, "where": where, "inters": []}, None
    elif cur is None or not (seq == inter["seq"] or seq[:-1] == inter["seq"]):
      # Not the session's query sequence, nor it and one more query: the session's first line was
      # skipped, or the file starts inside a session. Its lines are not joined to another session.
      if (s := close_session()) is not None:
        yield s
      cur = inter = None
      summary.skip(
        "orphan_line", where, "not in a session: its first line ([] previous) is missing"
      )
      continue
    if inter is None or inter["seq"] != seq:
      close_interaction()
      inter = {"seq": seq, "qid": str(seq[-1]), "where": where, "docs": []}
    inter["docs"].append((str(doc[0]), rank, str(doc[2]), click, label, where))
  if (s := close_session()) is not None:
    yield s


def _read_query_layout(path, summary: ReadSummary, ctx: _Reading) -> Iterator[Session]:
  """Sessions of one per-query file (NCM; CACM's writer's two columns of 0 allowed)."""
  cur: dict | None = None
  for where, line in iter_text(path, summary, "utf-8"):
    values = _json_columns(line, where, summary)
    if values is None:
      continue
    if len(values) == 7 and values[2:4] == [0, 0]:  # CACM's writer's placeholder columns
      del values[2:4]
    if len(values) not in (5, 6):
      summary.skip(
        "bad_line", where, f"{len(values)} columns, expected sid, qid, uids, vids, clicks[, labels]"
      )
      continue
    try:
      sid = str(record.integer("session_id", values[0], IDS))
      qid = str(record.integer("query_id", values[1], IDS))
      uids = record.ints("doc_ids", values[2], None, IDS)
      vids = record.ints("verticals", values[3], len(uids), IDS)
      clicks = record.ints("clicks", values[4], len(uids), CLICKS)
      labels = (
        record.numbers("labels", values[5], len(uids), LABELS)
        if len(values) == 6
        else [None] * len(uids)
      )
    except FieldError as e:
      summary.bad_field(where, e)
      continue
    if cur is not None and cur["sid"] != sid:
      if cur["inters"]:
        yield summary.count(Session(cur["sid"], cur["inters"], cur["where"]))
      cur = None
    if cur is None:
      cur = {"sid": sid, "where": where, "inters": []}
    docs = [
      (str(u), r, str(v), c, x, where)
      for r, (u, v, c, x) in enumerate(zip(uids, vids, clicks, labels), 1)
    ]
    it = _interaction(ctx, summary, where, qid, docs)
    if it is not None:
      cur["inters"].append(it)
  if cur is not None and cur["inters"]:
    yield summary.count(Session(cur["sid"], cur["inters"], cur["where"]))


_READERS = {"tiangong-session": _read_session_layout, "tiangong-query": _read_query_layout}


@log_format("tiangong-session", **OPTIONS)
def read_tiangong_session(
  path,
  summary: ReadSummary,
  *,
  labels=None,
  queries=None,
  query_nodes=None,
  doc_nodes=None,
  verticals=None,
) -> Iterator[Session]:
  """Sessions of one processed TianGong-ST file in the per-session layout (CACM).

  Args:
    path: the file (`train_per_session.txt`, `human_label_for_CACM.txt`, ...).
    summary: receives counts and skips.
    labels: a labelled per-session file, or its `load_labels` dict.
    queries, query_nodes, doc_nodes, verticals: the dictionaries (module docstring).
  """
  ctx = _reading("tiangong-session", summary, labels, queries, query_nodes, doc_nodes, verticals)
  return _read_session_layout(path, summary, ctx)


@log_format("tiangong-query", **OPTIONS)
def read_tiangong_query(
  path,
  summary: ReadSummary,
  *,
  labels=None,
  queries=None,
  query_nodes=None,
  doc_nodes=None,
  verticals=None,
) -> Iterator[Session]:
  """Sessions of one processed TianGong-ST file in the per-query layout (NCM).

  Args:
    path: the file (one interaction per line).
    summary: receives counts and skips.
    labels: a labelled per-query file, or its `load_labels` dict.
    queries, query_nodes, doc_nodes, verticals: the dictionaries (module docstring).
  """
  ctx = _reading("tiangong-query", summary, labels, queries, query_nodes, doc_nodes, verticals)
  return _read_query_layout(path, summary, ctx)
