"""Baidu-ULTR: the web-search session log and the expert-annotation file.

Texts are desensitized token ids joined by `\\x01`; readers give them as space-separated ids.

Session log (`part-*.gz`): a query line `qid <TAB> query [<TAB> reformulation]` followed by one line
per shown document: `pos, url_md5, title, abstract, multimedia_type, click, -, -, skip, ...` with
the dwell time in column 16. Each query line starts a new session of one interaction.

Annotations (`val_data.txt`, `test_data.txt`): `qid, query, title, abstract, label (0-4),
bucket (0-9)` per line, rows of one query consecutive. There are no clicks and no shown ranks: the
documents keep their file order (`shown=False`), their ids are a hash of title and abstract, the
label becomes the human label and the bucket the dataset's frequency bucket.

What is read (`record`): a position that is not an integer >= 1 is `bad_field:ranks`, a click
other than 0 / 1 `bad_field:clicks`, a clicked document's dwell that is not a finite number >= 0
`bad_field:dwell`, an empty url `bad_field:doc_ids` (each skips that document line); a label that
is not a finite number in 0..4 is `bad_field:labels`, a bucket that is not an integer in 0..9 (or
differs from the bucket of its query's first row) `bad_field:freq_bucket` (each skips that row).
Text is UTF-8 (`--encoding` for others).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from rankjax.data.readers import record
from rankjax.data.readers.common import (
  NAN,
  Interaction,
  Option,
  ReadSummary,
  Session,
  finish_interaction,
  iter_text,
  log_format,
)
from rankjax.data.readers.record import FieldError, Range

DWELL_COL = 16
CLICK = Range(0, 1)
LABELS = Range(0, 4)
ENCODING_OPTION = Option("text encoding of the file")


def _tokens(field: str) -> str:
  return field.replace("\x01", " ")


@log_format("baidu-ultr", encoding=ENCODING_OPTION)
def read_baidu_ultr(path, summary: ReadSummary, *, encoding: str = "utf-8") -> Iterator[Session]:
  """Sessions of one Baidu-ULTR session-log file (plain or `.gz`)."""
  cur = None  # [where, qid, query, docs, ranks, texts, clicks]

  def flush():
    where, qid, query, docs, ranks, texts, clicks = cur
    it = finish_interaction(
      Interaction(qid, docs, ranks, [], query=query, doc_texts=texts), summary, where, clicks
    )
    if it is not None:
      return summary.count(
        Session(session_id=where.rsplit(":", 1)[1], interactions=[it], source=where)
      )
    return None

  for where, line in iter_text(path, summary, encoding):
    cols = line.split("\t")
    if len(cols) <= 3:
      if cur is not None and (s := flush()) is not None:
        yield s
      cur = [where, cols[0], _tokens(cols[1]) if len(cols) > 1 else None, [], [], [], []]
      if not cols[0]:  # its document lines are then orphans
        summary.bad_field(where, FieldError("query_id", "empty query id"))
        cur = None
      continue
    if cur is None:
      summary.skip("orphan_result", where, "document line without a readable query line before it")
      continue
    if len(cols) < 6:
      summary.skip("bad_result", where, f"expected at least 6 tab-separated columns, got {cols!r}")
      continue
    try:
      rank = record.parse_count("ranks", cols[0], record.RANKS)
      click = record.parse_count("clicks", cols[5], CLICK)
      if not cols[1]:
        raise FieldError("doc_ids", "empty url")
      dwell = (
        record.parse_number("dwell", cols[DWELL_COL], record.SECONDS)
        if click and len(cols) > DWELL_COL
        else NAN
      )
    except FieldError as e:
      summary.bad_field(where, e)
      continue
    cur[3].append(cols[1])
    cur[4].append(rank)
    cur[5].append(f"{_tokens(cols[2])} {_tokens(cols[3])}")
    if click:
      cur[6].append((rank, None, dwell))
  if cur is not None and (s := flush()) is not None:
    yield s


@log_format("baidu-ultr-annotations", encoding=ENCODING_OPTION)
def read_baidu_ultr_annotations(
  path, summary: ReadSummary, *, encoding: str = "utf-8"
) -> Iterator[Session]:
  """One session per query of a Baidu-ULTR expert-annotation file, labels and bucket attached."""
  cur = None  # [where, qid, query, bucket, docs, texts, labels]

  def flush():
    where, qid, query, bucket, docs, texts, labels = cur
    it = Interaction(
      qid,
      docs,
      list(range(1, len(docs) + 1)),
      [],
      query=query,
      doc_texts=texts,
      labels=labels,
      freq_bucket=bucket,
      shown=False,
    )
    it = finish_interaction(it, summary, where, [])
    return None if it is None else summary.count(Session(qid, [it], source=where))

  for where, line in iter_text(path, summary, encoding):
    cols = line.split("\t")
    if len(cols) != 6 or not cols[0]:
      summary.skip(
        "bad_line", where, f"expected 6 tab-separated columns and a query id: {cols[:6]}"
      )
      continue
    qid, query, title, abstract, label, bucket = cols
    try:
      label = record.parse_number("labels", label, LABELS)
      bucket = record.parse_count("freq_bucket", bucket, record.BUCKETS)
      if cur is not None and cur[1] == qid and cur[3] != bucket:
        raise FieldError("freq_bucket", f"{bucket}, where the query's first row has {cur[3]}")
    except FieldError as e:
      summary.bad_field(where, e)
      continue
    if cur is not None and cur[1] != qid:
      if (s := flush()) is not None:
        yield s
      cur = None
    if cur is None:
      cur = [where, qid, _tokens(query), bucket, [], [], []]
    cur[4].append(hashlib.blake2b(f"{title}\t{abstract}".encode(), digest_size=8).hexdigest())
    cur[5].append(f"{_tokens(title)} {_tokens(abstract)}")
    cur[6].append(label)
  if cur is not None and (s := flush()) is not None:
    yield s
