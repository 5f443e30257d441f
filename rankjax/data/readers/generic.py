"""The generic click-log layout for users' own logs: JSON lines or Parquet, one interaction a row.

Fields (only `query_id`, `doc_ids` and `clicks` are required)::

  session_id   str          consecutive rows with the same id form one session (default: the row)
  query_id     str
  query        str          query text
  doc_ids      [str]        shown documents
  ranks        [int]        their 1-based shown ranks (default 1..n in list order)
  clicks       [int]        clicks per document (0/1 or counts)
  click_ranks  [int]        ranks of the clicks in time order (default: rank order)
  dwell        [float]      dwell seconds per document (null / NaN unknown)
  labels       [float]      human relevance labels per document (null / NaN unknown)
  doc_texts    [str]
  freq_bucket  int          the dataset's own frequency bucket
  topic        str

`rankjax clicks simulate` writes this layout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator

from rankjax.data.readers.common import (
  NAN,
  Interaction,
  Option,
  ReadSummary,
  Session,
  decode,
  finish_interaction,
  iter_lines,
  log_format,
)

REQUIRED = ("query_id", "doc_ids", "clicks")


def _float(x) -> float:
  return NAN if x is None else float(x)


def record_to_interaction(rec: dict, summary: ReadSummary, where: str) -> Interaction | None:
  """One generic-layout record -> an `Interaction`, or None with a counted skip."""
  missing = [k for k in REQUIRED if rec.get(k) is None]
  if missing:
    summary.skip("missing_field", where, f"record lacks {missing}")
    return None
  try:
    docs = [str(d) for d in rec["doc_ids"]]
    n = len(docs)
    ranks = (
      [int(r) for r in rec["ranks"]] if rec.get("ranks") is not None else list(range(1, n + 1))
    )
    clicks = [int(c) for c in rec["clicks"]]
    dwell = [_float(x) for x in rec["dwell"]] if rec.get("dwell") is not None else [NAN] * n
    labels = [_float(x) for x in rec["labels"]] if rec.get("labels") is not None else None
    texts = [str(t) for t in rec["doc_texts"]] if rec.get("doc_texts") is not None else None
  except (TypeError, ValueError) as e:
    summary.skip("bad_field", where, f"a field does not have the layout's type: {e}")
    return None
  lengths = {"ranks": len(ranks), "clicks": len(clicks), "dwell": len(dwell)}
  lengths.update(
    {k: len(v) for k, v in (("labels", labels), ("doc_texts", texts)) if v is not None}
  )
  bad = {k: v for k, v in lengths.items() if v != n}
  if bad:
    summary.skip("bad_field", where, f"{n} doc_ids but lengths {bad}")
    return None
  if rec.get("click_ranks") is not None:
    rank_dwell = dict(zip(ranks, dwell))
    raw, seen = [], set()
    for r in rec["click_ranks"]:
      raw.append((int(r), None, NAN if r in seen else rank_dwell.get(int(r), NAN)))
      seen.add(r)
  else:
    raw = [
      (r, None, dw if k == 0 else NAN)
      for r, c, dw in sorted(zip(ranks, clicks, dwell))
      for k in range(c)
    ]
  bucket = rec.get("freq_bucket")
  it = Interaction(
    str(rec["query_id"]),
    docs,
    ranks,
    [],
    query=rec.get("query"),
    doc_texts=texts,
    labels=labels,
    freq_bucket=None if bucket is None else int(bucket),
    topic=None if rec.get("topic") is None else str(rec["topic"]),
  )
  return finish_interaction(it, summary, where, raw)


def group_sessions(rows: Iterable[tuple[str, dict]], summary: ReadSummary) -> Iterator[Session]:
  """Consecutive (location, record) rows with one `session_id` -> sessions."""
  cur_id, cur, cur_where = None, [], ""
  for where, rec in rows:
    sid = rec.get("session_id")
    sid = where if sid is None else str(sid)
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


@log_format("jsonl")
def read_jsonl(path, summary: ReadSummary) -> Iterator[Session]:
  """Sessions of a generic-layout JSON-lines file (plain or `.gz`)."""

  def rows():
    for n, raw in iter_lines(path, summary):
      where = f"{path}:{n}"
      line = decode(raw, "utf-8", summary, where)
      if line is None or not line.strip():
        continue
      try:
        rec = json.loads(line)
      except json.JSONDecodeError as e:
        summary.skip("bad_json", where, str(e))
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
    summary.files += 1
    summary.bytes += os.path.getsize(path)
    n = 0
    try:
      for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
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
