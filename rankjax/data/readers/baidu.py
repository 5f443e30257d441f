"""Baidu-ULTR: the web-search session log and the expert-annotation file.

Texts are desensitized token ids joined by `\\x01`; readers give them as space-separated ids.

Session log (`part-*.gz`): a query line `qid <TAB> query [<TAB> reformulation]` followed by one line
per shown document: `pos, url_md5, title, abstract, multimedia_type, click, -, -, skip, ...` with
the dwell time in column 16. Each query line starts a new session of one interaction.

Annotations (`val_data.txt`, `test_data.txt`): `qid, query, title, abstract, label (0-4),
bucket (0-9)` per line, rows of one query consecutive. There are no clicks and no shown ranks: the
documents keep their file order (`shown=False`), their ids are a hash of title and abstract, the
label becomes the human label and the bucket the dataset's frequency bucket.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from rankjax.data.readers.common import (
  NAN,
  Interaction,
  ReadSummary,
  Session,
  decode,
  finish_interaction,
  iter_lines,
  log_format,
)

DWELL_COL = 16


def _tokens(field: str) -> str:
  return field.replace("\x01", " ")


@log_format("baidu-ultr")
def read_baidu_ultr(path, summary: ReadSummary) -> Iterator[Session]:
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

  for n, raw in iter_lines(path, summary):
    where = f"{path}:{n}"
    line = decode(raw, "utf-8", summary, where)
    if line is None or not line.strip():
      continue
    cols = line.split("\t")
    if len(cols) <= 3:
      if cur is not None and (s := flush()) is not None:
        yield s
      cur = [where, cols[0], _tokens(cols[1]) if len(cols) > 1 else None, [], [], [], []]
      continue
    if cur is None:
      summary.skip("orphan_result", where, "document line before any query line")
      continue
    try:
      rank, click = int(cols[0]), int(cols[5])
    except (ValueError, IndexError):
      summary.skip("bad_result", where, f"position / click not integers in {cols[:6]!r}")
      continue
    try:
      dwell = float(cols[DWELL_COL]) if click and len(cols) > DWELL_COL else NAN
    except ValueError:
      dwell = NAN
    cur[3].append(cols[1])
    cur[4].append(rank)
    cur[5].append(f"{_tokens(cols[2])} {_tokens(cols[3])}")
    if click:
      cur[6].append((rank, None, dwell))
  if cur is not None and (s := flush()) is not None:
    yield s


@log_format("baidu-ultr-annotations")
def read_baidu_ultr_annotations(path, summary: ReadSummary) -> Iterator[Session]:
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

  for n, raw in iter_lines(path, summary):
    where = f"{path}:{n}"
    line = decode(raw, "utf-8", summary, where)
    if line is None or not line.strip():
      continue
    cols = line.split("\t")
    if len(cols) != 6:
      summary.skip("bad_line", where, f"expected 6 tab-separated columns, got {len(cols)}")
      continue
    qid, query, title, abstract, label, bucket = cols
    try:
      label, bucket = float(label), int(bucket)
    except ValueError:
      summary.skip("bad_line", where, f"label {label!r} / bucket {bucket!r} not numbers")
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
