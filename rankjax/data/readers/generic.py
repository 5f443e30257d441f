"""The generic click-log layout for users' own logs: JSON lines or Parquet, one interaction a row.

Fields (only `query_id`, `doc_ids` and `clicks` are required; others are ignored)::

  session_id   str | int    consecutive rows with the same id form one session (default: the row)
  query_id     str | int    non-empty
  query        str          query text
  doc_ids      [str]        shown documents, non-empty strings
  ranks        [int]        their 1-based shown ranks, 1..2^31-1 (default 1..n in list order)
  clicks       [int]        clicks per document, 0..1000 (0/1 or counts)
  click_ranks  [int]        ranks of the clicks in time order (default: rank order), >= 1; each
                            shown rank as many times as `clicks` gives (a click on a rank not
                            shown is the skip `click_on_unshown_rank`)
  dwell        [float]      dwell seconds per document, finite and >= 0 (null / NaN unknown)
  labels       [float]      human relevance labels per document, finite in -2..4 (null / NaN
                            unknown)
  doc_texts    [str]
  freq_bucket  int          the dataset's own frequency bucket, 0..9 (Baidu-ULTR's buckets)
  topic        str | int

The lists are as long as `doc_ids`. Every value is checked (`record`) and none converted: a
number where a string belongs, 1.7 or `true` where an integer belongs, `null` in `doc_texts`, a
string where a list belongs, or a value outside its range skips the row as `bad_field:<field>`.
JSON lines must be objects in UTF-8 (`--encoding` for others); a line that is not JSON is
`bad_json`, one nested too deep for the parser `too_deep`. `rankjax clicks simulate` writes this
layout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator

from rankjax.data.readers import record
from rankjax.data.readers.common import (
  NAN,
  Interaction,
  LogError,
  Option,
  ReadSummary,
  Session,
  finish_interaction,
  iter_text,
  log_format,
)
from rankjax.data.readers.record import FieldError, Range

REQUIRED = ("query_id", "doc_ids", "clicks")
LABELS = Range(-2, 4)  # the grade scales rankjax reads: TREC's -2..4, 0..4 elsewhere


def _click_order(ranks: list[int], clicks: list[int], click_ranks) -> list[int]:
  """`click_ranks`, checked against the clicks per shown document (a click on a rank that was not
  shown is left to `finish_interaction`, which counts it as every format does)."""
  record.ints("click_ranks", click_ranks, None, record.RANKS)
  if not click_ranks and not any(clicks):
    return click_ranks
  expected = dict(zip(ranks, clicks))
  if len(expected) < len(ranks):  # a rank shown twice (`finish_interaction` keeps the first)
    expected = {}
    for r, c in zip(ranks, clicks):
      expected[r] = expected.get(r, 0) + c
  for r in click_ranks:
    left = expected.get(r)
    if left is None:
      continue
    if left == 0:
      raise FieldError("click_ranks", f"more clicks on rank {r} than `clicks` gives")
    expected[r] = left - 1
  if any(expected.values()):
    raise FieldError("click_ranks", "fewer clicks than `clicks` gives")
  return click_ranks


def record_to_interaction(rec: dict, summary: ReadSummary, where: str) -> Interaction | None:
  """One generic-layout record -> an `Interaction`, or None with a counted skip."""
  missing = [k for k in REQUIRED if rec.get(k) is None]
  if missing:
    summary.skip("missing_field", where, f"record lacks {missing}")
    return None
  try:
    qid = record.identifier("query_id", rec["query_id"])
    docs = record.ids("doc_ids", rec["doc_ids"])
    n = len(docs)
    get = rec.get
    ranks = (
      list(range(1, n + 1))
      if get("ranks") is None
      else record.ints("ranks", rec["ranks"], n, record.RANKS)
    )
    clicks = record.ints("clicks", rec["clicks"], n, record.COUNTS)
    dwell = (
      [NAN] * n
      if get("dwell") is None
      else record.numbers("dwell", rec["dwell"], n, record.SECONDS)
    )
    labels = None if get("labels") is None else record.numbers("labels", rec["labels"], n, LABELS)
    texts = None if get("doc_texts") is None else record.texts("doc_texts", rec["doc_texts"], n)
    query = record.text("query", get("query"))
    bucket = get("freq_bucket")
    bucket = None if bucket is None else record.integer("freq_bucket", bucket, record.BUCKETS)
    topic = None if get("topic") is None else record.identifier("topic", rec["topic"])
    if get("click_ranks") is not None:
      rank_dwell = dict(zip(ranks, dwell))
      raw, seen = [], set()
      for r in _click_order(ranks, clicks, rec["click_ranks"]):
        raw.append((r, None, NAN if r in seen else rank_dwell.get(r, NAN)))
        seen.add(r)
    else:
      raw = [
        (r, None, dw if k == 0 else NAN)
        for r, c, dw in sorted(zip(ranks, clicks, dwell))
        for k in range(c)
      ]
  except FieldError as e:
    summary.bad_field(where, e)
    return None
  it = Interaction(
    qid,
    docs,
    ranks,
    [],
    query=query,
    doc_texts=texts,
    labels=labels,
    freq_bucket=bucket,
    topic=topic,
  )
  return finish_interaction(it, summary, where, raw)


def group_sessions(rows: Iterable[tuple[str, dict]], summary: ReadSummary) -> Iterator[Session]:
  """Consecutive (location, record) rows with one `session_id` -> sessions."""
  cur_id, cur, cur_where = None, [], ""
  for where, rec in rows:
    sid = rec.get("session_id")
    if sid is None:
      sid = where
    elif type(sid) is not str and type(sid) is not int:
      summary.bad_field(where, FieldError("session_id", f"{sid!r} is not a string or an integer"))
      continue
    else:
      sid = str(sid)
    if sid != cur_id and cur:
      yield summary.count(Session(cur_id, cur, cur_where))
      cur = []
    if sid != cur_id:
      cur_id, cur_where = sid, where
    it = record_to_interaction(rec, summary, where)
    if it is not None:
      cur.append(it)
  if cur:
    yield summary.count(Session(cur_id, cur, cur_where))


@log_format("jsonl", encoding=Option("text encoding of the log"))
def read_jsonl(path, summary: ReadSummary, *, encoding: str = "utf-8") -> Iterator[Session]:
  """Sessions of a generic-layout JSON-lines file (plain or `.gz`)."""

  def rows():
    for where, line in iter_text(path, summary, encoding):
      try:
        rec = json.loads(line)
      except ValueError as e:  # not JSON, or an integer of more digits than Python converts
        summary.skip("bad_json", where, str(e))
        continue
      except RecursionError:
        summary.skip("too_deep", where, "JSON nested deeper than the parser's recursion limit")
        continue
      if not isinstance(rec, dict):
        summary.skip("bad_json", where, f"a line is a JSON object, got {type(rec).__name__}")
        continue
      yield where, rec

  return group_sessions(rows(), summary)


@log_format("parquet", batch_rows=Option("rows read from the Parquet file at a time", int))
def read_parquet(path, summary: ReadSummary, *, batch_rows: int = 8192) -> Iterator[Session]:
  """Sessions of a generic-layout Parquet file, read a record batch at a time.

  A file that is not Parquet, or whose rest cannot be decoded, is a counted skip ("bad_parquet"),
  as a broken XML log is: the rows read before it are kept.
  """
  import pyarrow as pa
  import pyarrow.parquet as pq

  def rows():
    if os.path.isdir(path):
      raise LogError(f"{path}: is a directory, not a log file")
    summary.files += 1
    summary.bytes += os.path.getsize(path)
    n = 0
    with summary.reading(path) as f:  # pyarrow reads it through f: the position follows
      try:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_rows):
          for rec in batch.to_pylist():
            n += 1
            yield f"{path}#row{n}", rec
      except pa.ArrowInvalid as e:
        summary.skip("bad_parquet", f"{path}#row{n + 1}", f"not readable as Parquet: {e}")

  return group_sessions(rows(), summary)


def write_jsonl(records: Iterable[dict], f) -> int:
  """Writes generic-layout records to an open text file; returns how many."""
  n = 0
  for rec in records:
    f.write(json.dumps(rec, ensure_ascii=False, default=lambda x: x.tolist()) + "\n")
    n += 1
  return n
