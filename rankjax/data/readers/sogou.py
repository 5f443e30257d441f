"""The Sogou click-log layout of THUIR's PSCM sample (GBK encoded).

`train_data` / `test_data`: one query impression per line, 10 tab-separated fields: query id, then
space-separated lists of 10 values each: url ids, clicks (1/0), click times (Unix seconds, -1 = no
click) and six mouse-movement features. Each line becomes a session of one interaction; the click
order (hence the last click) comes from the click times. `query_id`: `text <TAB> id <TAB> sessions
<TAB> sessions with a click` gives the query texts and the log's own query frequency.

What is read (`record`): a line with fewer than 4 fields, or lists of unequal lengths, is
`bad_line`; a click other than 0 / 1 is `bad_field:clicks`; a click time that is not a finite
number >= 0 for a clicked url, or not -1 for an unclicked one, is `bad_field:click_times`. In the
query file, a session count that is not a non-negative integer is `bad_field:sessions`.

The GBK files hold a few UTF-8 lines (two in the sample's `query_id`); such lines are read as UTF-8
and counted as repaired. (The sample's `*.utf8` copies were converted from GBK wholesale, which
garbled exactly those lines: read the GBK originals.) A line in neither is `bad_encoding`; a file
where most are (e.g. a GBK file read with `--encoding utf-8`) is an error naming it and the
`--encoding` to use.
"""

from __future__ import annotations

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

ENCODING = "gbk"
FALLBACK = "utf-8"
CLICKS = {"0", "1"}
CLICK_TIME = Range(0, float("inf"))  # Unix seconds, finite
SESSIONS = Range(0, float("inf"))  # a query's session count in the query file


def load_sogou_queries(
  path, encoding: str = ENCODING, summary: ReadSummary | None = None
) -> tuple[dict[str, str], dict[str, float]]:
  """The `query_id` file -> ({query id: text}, {query id: number of sessions with the query}).

  Bad lines are counted in `summary` (`ReadSummary.absorb`: `bad_line`, `bad_field:sessions`,
  `bad_encoding`).
  """
  texts, freq = {}, {}
  own = ReadSummary()  # the side file's bytes are not the log's
  for where, line in iter_text(path, own, encoding, FALLBACK, usual=ENCODING):
    cols = line.split("\t")
    if len(cols) < 3 or not cols[1]:
      own.skip("bad_line", where, f"not a `text, id, sessions, clicked` line: {line[:40]!r}")
      continue
    try:
      freq[cols[1]] = float(record.parse_count("sessions", cols[2], SESSIONS))
    except FieldError as e:
      own.bad_field(where, e)
      continue
    texts[cols[1]] = cols[0]
  if summary is not None:
    summary.absorb(own)
  return texts, freq


def _clicks(clicks: list[str], times: list[str]) -> list[int]:
  """The ranks clicked, in the order of their click times."""
  if not set(clicks) <= CLICKS:
    bad = next(c for c in clicks if c not in CLICKS)
    raise FieldError("clicks", f"{bad!r} is not 0 or 1")
  clicked = []
  for r, (c, t) in enumerate(zip(clicks, times), 1):
    if c == "1":
      clicked.append((record.parse_number("click_times", t, CLICK_TIME), r))
    elif t != "-1":
      raise FieldError("click_times", f"{t!r} for the unclicked url at rank {r}, not -1")
  return [r for _, r in sorted(clicked)]


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
    queries = load_sogou_queries(queries, encoding, summary)[0]
  for where, line in iter_text(path, summary, encoding, FALLBACK, usual=ENCODING):
    cols = line.split("\t")
    if len(cols) < 4:
      summary.skip("bad_line", where, f"expected at least 4 tab-separated fields, got {len(cols)}")
      continue
    qid, urls, clicks, times = cols[0], cols[1].split(), cols[2].split(), cols[3].split()
    if not qid or not len(urls) == len(clicks) == len(times):
      summary.skip(
        "bad_line",
        where,
        f"query id {qid!r}, {len(urls)} urls, {len(clicks)} clicks, {len(times)} click times",
      )
      continue
    try:
      clicked = _clicks(clicks, times)
    except FieldError as e:
      summary.bad_field(where, e)
      continue
    it = Interaction(
      qid, urls, list(range(1, len(urls) + 1)), [], query=queries.get(qid) if queries else None
    )
    it = finish_interaction(it, summary, where, [(r, None, NAN) for r in clicked])
    if it is not None:
      yield summary.count(Session(where.rsplit(":", 1)[1], [it], source=where))
