"""The Sogou click-log layout of THUIR's PSCM sample (GBK encoded).

`train_data` / `test_data`: one query impression per line, 10 tab-separated fields: query id, then
space-separated lists of 10 values each: url ids, clicks (1/0), click times (Unix seconds, -1 = no
click) and six mouse-movement features. Each line becomes a session of one interaction; the click
order (hence the last click) comes from the click times. `query_id`: `text <TAB> id <TAB> sessions
<TAB> sessions with a click` gives the query texts and the log's own query frequency.

The GBK files hold a few UTF-8 lines (two in the sample's `query_id`); such lines are read as UTF-8
and counted as repaired. (The sample's `*.utf8` copies were converted from GBK wholesale, which
garbled exactly those lines: read the GBK originals.)
"""

from __future__ import annotations

from collections.abc import Iterator

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

ENCODING = "gbk"
FALLBACK = "utf-8"


def load_sogou_queries(path, encoding: str = ENCODING) -> tuple[dict[str, str], dict[str, float]]:
  """The `query_id` file -> ({query id: text}, {query id: number of sessions with the query})."""
  texts, freq = {}, {}
  summary = ReadSummary()
  for n, raw in iter_lines(path, summary):
    line = decode(raw, encoding, summary, f"{path}:{n}", FALLBACK)
    try:
      cols = line.split("\t")
      texts[cols[1]] = cols[0]
      freq[cols[1]] = float(cols[2])
    except (AttributeError, IndexError, ValueError) as e:
      raise ValueError(f"{path}:{n}: not a `text, id, sessions, clicked` line in {encoding}") from e
  return texts, freq


@log_format(
  "sogou",
  queries=Option("the `query_id` file, for query texts"),
  encoding=Option("text encoding of the log and the query file"),
)
def read_sogou(
  path, summary: ReadSummary, *, queries=None, encoding: str = ENCODING
) -> Iterator[Session]:
  """Sessions of one Sogou PSCM-layout log file.

  Args:
    path: a `train_data` / `test_data` file.
    summary: receives counts and skips.
    queries: the `query_id` file (or its {id: text} dict) for query texts.
    encoding: of the log lines and the query file.
  """
  if queries is not None and not isinstance(queries, dict):
    queries = load_sogou_queries(queries, encoding)[0]
  for n, raw in iter_lines(path, summary):
    where = f"{path}:{n}"
    line = decode(raw, encoding, summary, where, FALLBACK)
    if line is None or not line.strip():
      continue
    cols = line.split("\t")
    if len(cols) < 4:
      summary.skip("bad_line", where, f"expected at least 4 tab-separated fields, got {len(cols)}")
      continue
    qid, urls, clicks, times = cols[0], cols[1].split(), cols[2].split(), cols[3].split()
    if not len(urls) == len(clicks) == len(times):
      summary.skip(
        "bad_line", where, f"{len(urls)} urls, {len(clicks)} clicks, {len(times)} click times"
      )
      continue
    try:
      clicked = sorted((float(t), r) for r, (c, t) in enumerate(zip(clicks, times), 1) if int(c))
    except ValueError:
      summary.skip("bad_line", where, "clicks / click times are not numbers")
      continue
    it = Interaction(
      qid, urls, list(range(1, len(urls) + 1)), [], query=queries.get(qid) if queries else None
    )
    it = finish_interaction(it, summary, where, [(r, None, NAN) for _, r in clicked])
    if it is not None:
      yield summary.count(Session(str(n), [it], source=where))
