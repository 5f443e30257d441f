"""What every click-log reader shares: the session record it yields, the accounting of skipped
records, and the format record (`LogFormat`) it is registered with.

A log is a stream of `Session`s; a session is a sequence of `Interaction`s (one query and the result
list shown for it, with the clicks on it). Readers never stop on one bad record: they skip it (or
the part of it that is broken), count it in a `ReadSummary` under a reason, and remember where it
was (file and line or byte offset) for the first few of each reason. A format is its reader and
the options the reader takes, registered in `FORMATS` where the reader is defined (`log_format`),
so that commands build their flags from the records.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gzip
import inspect
import json
import logging
import math
import operator
import os
import weakref
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from rankjax import registry
from rankjax.data.readers.errors import InputError
from rankjax.data.readers.record import FieldError

NAN = math.nan
MAX_EXAMPLES = 5  # locations remembered per skip reason


@dataclasses.dataclass
class Interaction:
  """One query and its result list, as shown, with the clicks on it.

  Attributes:
    query_id: the query's id (the query text where the log has no ids).
    doc_ids: shown documents, sorted by rank, each once.
    ranks: 1-based shown rank of each document.
    clicks: number of clicks on each document.
    click_ranks: ranks of the clicks in time order (the last one is the last click).
    dwell: total dwell seconds over each document's clicks; NaN where the log has none.
    query: query text, or None.
    doc_texts: title / snippet per document, or None.
    labels: human relevance label per document (NaN unknown), or None.
    freq_bucket: the dataset's own query-frequency bucket (Baidu-ULTR 0-9), or None.
    topic: the search task the query belongs to (TREC topics; their qrels are per topic), or None.
    shown: False where `ranks` are only the file order of an annotated list, not shown ranks.
  """

  query_id: str
  doc_ids: list[str]
  ranks: list[int]
  clicks: list[int]
  click_ranks: list[int] = dataclasses.field(default_factory=list)
  dwell: list[float] | None = None
  query: str | None = None
  doc_texts: list[str] | None = None
  labels: list[float] | None = None
  freq_bucket: int | None = None
  topic: str | None = None
  shown: bool = True

  @property
  def num_clicks(self) -> int:
    return sum(self.clicks)


@dataclasses.dataclass
class Session:
  """A user's search session: its interactions in time order, and where it came from."""

  session_id: str
  interactions: list[Interaction]
  source: str = ""  # "file:line" or "file@byte" of the session's start


# Skips per session read from which a log is taken to be in another format (`mostly_skipped`).
WRONG_FORMAT_SKIPS = 10


class ReadSummary:
  """Counts what was read and what was skipped, by reason, with example locations.

  Its memory is constant in the number of records except for the set of distinct query ids
  (`unique_queries`).

  >>> s = ReadSummary()
  >>> s.skip("empty_session", "log.xml:12", "session 3 has no interaction")
  >>> s.skipped, s.reasons["empty_session"]
  (1, 1)
  """

  def __init__(self):
    self.sessions = 0
    self.interactions = 0
    self.results = 0
    self.clicks = 0
    self.files = 0
    self.bytes = 0
    self.queries: set[str] = set()
    self.reasons: collections.Counter[str] = collections.Counter()
    self.examples: dict[str, list[str]] = collections.defaultdict(list)
    # Records read, but not as the layout says (`repair`).
    self.repaired: collections.Counter[str] = collections.Counter()
    # (bytes of the log files read to their end as stored, the file being read or None): one
    # value, replaced whole, as `position` may be read from another thread (a progress bar).
    self._stored = (0, None)

  @property
  def skipped(self) -> int:
    return sum(self.reasons.values())

  def position(self) -> int:
    """How far the read is, in bytes of the log files as stored (compressed, for a .gz, where
    `bytes` counts the decompressed ones): against the files' sizes, the progress of a read.
    From another thread it may raise ValueError: the file closed as it was asked."""
    done, reading = self._stored
    return done + (reading.tell() if reading is not None else 0)

  @contextlib.contextmanager
  def reading(self, path: str):
    """The open log file `path` (binary, as stored), its position counted in `position` while it
    is open and its size once it closes."""
    with open(path, "rb") as f:
      done = self._stored[0]
      self._stored = (done, f)
      try:
        yield f
      finally:
        self._stored = (done + os.fstat(f.fileno()).st_size, None)

  def mostly_skipped(self) -> bool:
    """Whether the reader skipped at least `WRONG_FORMAT_SKIPS` records (or parts of records) per
    session it read, and at least one: a log in the format asked has a few bad records, or a few
    duplicate documents and empty interactions per session, not that many, so the files are most
    likely in another format.

    >>> s = ReadSummary()
    >>> s.sessions = 1
    >>> for i in range(WRONG_FORMAT_SKIPS):
    ...   s.skip("bad_json", f"log.jsonl:{i + 1}", "not JSON")
    >>> s.mostly_skipped()
    True
    """
    return self.skipped > 0 and self.skipped >= WRONG_FORMAT_SKIPS * self.sessions

  def skip(self, reason: str, where: str, message: str) -> None:
    """Records one skipped record (or part of a record) at `where`."""
    self.reasons[reason] += 1
    if len(self.examples[reason]) < MAX_EXAMPLES:
      self.examples[reason].append(f"{where}: {message}")
      logging.debug("skipped (%s) %s: %s", reason, where, message)

  def bad_field(self, where: str, error: FieldError) -> None:
    """Records a record skipped because one of its fields failed its check (`record`), under the
    reason `bad_field:<field>`."""
    self.skip(f"bad_field:{error.field}", where, str(error))

  def repair(self, reason: str, where: str, message: str) -> None:
    """Records a record that was read after a fix-up (e.g. a line in a fallback encoding)."""
    self.repaired[reason] += 1
    if len(self.examples[reason]) < MAX_EXAMPLES:
      self.examples[reason].append(f"{where}: {message}")

  def absorb(self, side: ReadSummary) -> None:
    """Adds the skips and repairs of a side file's reading (a query or label file), not its file
    and byte counts, which are the logs'."""
    self.reasons.update(side.reasons)
    self.repaired.update(side.repaired)
    for reason, examples in side.examples.items():
      self.examples[reason].extend(examples[: MAX_EXAMPLES - len(self.examples[reason])])

  def count(self, session: Session) -> Session:
    """Adds a session that is being yielded to the totals, and returns it."""
    self.sessions += 1
    for it in session.interactions:
      self.interactions += 1
      self.results += len(it.doc_ids)
      self.clicks += it.num_clicks
      self.queries.add(it.query_id)
    return session

  def as_dict(self) -> dict:
    return {
      "files": self.files,
      "bytes": self.bytes,
      "sessions": self.sessions,
      "interactions": self.interactions,
      "results": self.results,
      "clicks": self.clicks,
      "unique_queries": len(self.queries),
      "skipped": self.skipped,
      "skipped_by_reason": dict(sorted(self.reasons.items())),
      "repaired": dict(sorted(self.repaired.items())),
      "skip_examples": {k: v for k, v in sorted(self.examples.items())},
    }

  def __str__(self) -> str:
    return json.dumps(self.as_dict(), ensure_ascii=False)


def _drop_duplicates(it: Interaction, summary: ReadSummary, where: str) -> None:
  """Sorts the results by rank and drops a second result at a rank or a document shown again."""
  order = sorted(range(len(it.doc_ids)), key=lambda i: it.ranks[i])
  seen_docs: set[str] = set()
  seen_ranks: set[int] = set()
  keep = []
  for i in order:
    d, r = it.doc_ids[i], it.ranks[i]
    if r in seen_ranks:
      summary.skip(
        "duplicate_rank", where, f"query {it.query_id!r}: two results at rank {r}; kept the first"
      )
      continue
    if d in seen_docs:
      summary.skip(
        "duplicate_doc",
        where,
        f"query {it.query_id!r}: document {d!r} shown again at rank {r}; kept the first",
      )
      continue
    seen_docs.add(d)
    seen_ranks.add(r)
    keep.append(i)
  pick = lambda xs: None if xs is None else [xs[i] for i in keep]  # noqa: E731
  it.doc_ids, it.ranks = pick(it.doc_ids), pick(it.ranks)
  it.doc_texts, it.labels = pick(it.doc_texts), pick(it.labels)


def finish_interaction(
  it: Interaction,
  summary: ReadSummary,
  where: str,
  raw_clicks: list[tuple[int | None, str | None, float]],
) -> Interaction | None:
  """Sorts results by rank, drops duplicate documents and resolves clicks; None if nothing is left.

  Args:
    it: the interaction with `doc_ids` / `ranks` as read (clicks not yet filled in).
    summary: where skips are counted.
    where: location for skip messages.
    raw_clicks: (rank or None, doc id or None, dwell seconds or NaN) per click, in time order.
  """
  ranks, docs = it.ranks, it.doc_ids
  # The usual list, ranks rising and each document once, is kept as it is (checked in C).
  if not (all(map(operator.lt, ranks, ranks[1:])) and len(set(docs)) == len(docs)):
    _drop_duplicates(it, summary, where)
  if not it.doc_ids:
    summary.skip("empty_interaction", where, f"query {it.query_id!r} has no usable result")
    return None
  n = len(it.doc_ids)
  it.clicks = [0] * n
  dwell = [NAN] * n
  it.click_ranks = []
  it.dwell = dwell
  if not raw_clicks:
    return it
  by_rank = dict(zip(it.ranks, range(n)))
  by_doc = None  # built for the first click that names only its document
  for rank, doc, secs in raw_clicks:
    if rank is not None:
      j = by_rank.get(rank)
    else:
      by_doc = by_doc or dict(zip(it.doc_ids, range(n)))
      j = by_doc.get(doc)
    if j is None:
      summary.skip(
        "click_on_unshown_rank",
        where,
        f"query {it.query_id!r}: click on rank {rank} / doc {doc!r} that was not shown",
      )
      continue
    if doc is not None and rank is not None and it.doc_ids[j] != doc:
      summary.skip(
        "click_doc_mismatch",
        where,
        f"query {it.query_id!r}: click on rank {rank} names {doc!r}, shown was {it.doc_ids[j]!r}",
      )
      continue
    it.clicks[j] += 1
    it.click_ranks.append(it.ranks[j])
    if not math.isnan(secs):
      dwell[j] = secs if math.isnan(dwell[j]) else dwell[j] + secs
  return it


# Side files already read for a summary (one command's read of several logs), by key.
_READ_ONCE: weakref.WeakKeyDictionary[ReadSummary, dict] = weakref.WeakKeyDictionary()


def once_per_read(summary: ReadSummary, key, load: Callable[[], Any]):
  """`load()` the first time `key` is asked for with `summary`, its result after: a side file (a
  qrels or label file, a dictionary) given with several log files is read, and its skips counted
  in `summary`, once."""
  read = _READ_ONCE.setdefault(summary, {})
  if key not in read:
    read[key] = load()
  return read[key]


class LogError(InputError):
  """A file that cannot be read as a log at all (a directory, a `.gz` that is not gzip, text in
  another encoding, a side file that is not in its layout): the commands end with this one line,
  which names the file (and the option to use, where one would read it)."""


@contextlib.contextmanager
def _open(path: str, summary: ReadSummary):
  """The bytes of a log file, decompressed if `.gz`; the summary follows the read's position."""
  if os.path.isdir(path):
    raise LogError(f"{path}: is a directory, not a log file")
  with summary.reading(path) as f:
    if path.endswith(".gz"):
      with gzip.GzipFile(fileobj=f, mode="rb") as z:
        yield z
    else:
      yield f


def _broken_gzip(path: str, summary: ReadSummary, error: Exception, where: str, read: bool):
  """Counts a gzip stream that ends or breaks after `where`; the records before it are kept. A
  `.gz` file that is not gzip at all is a `LogError`."""
  if isinstance(error, gzip.BadGzipFile) and not read:
    raise LogError(f"{path}: not a gzip file, though its name ends in .gz ({error})")
  if isinstance(error, EOFError):
    summary.skip("truncated_gzip", where, f"the compressed file ends early ({error}); rest lost")
  else:
    summary.skip("bad_gzip", where, f"corrupt compressed data ({error}); rest of the file lost")


def iter_lines(path: str | os.PathLike, summary: ReadSummary) -> Iterator[tuple[int, bytes]]:
  """(line number, raw bytes without the newline) of a text file, gzip-compressed if `.gz`.

  A gzip file that is truncated or corrupt yields its lines up to the break, then counts the break
  (`truncated_gzip`, `bad_gzip`) at the line after the last one read.
  """
  path = os.fspath(path)
  summary.files += 1
  n = 0
  with _open(path, summary) as f:
    try:
      for n, line in enumerate(f, 1):  # noqa: B007 (n: the last line read, on a break)
        summary.bytes += len(line)
        yield n, line.rstrip(b"\r\n")
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
      _broken_gzip(path, summary, e, f"{path}:{n + 1}", n > 0)


def iter_blocks(path: str | os.PathLike, summary: ReadSummary, size: int) -> Iterator[bytes]:
  """The bytes of a file (gzip-compressed if `.gz`) in blocks of `size`, then an empty block when
  the file was read to its end. A broken gzip stream is counted as `iter_lines` counts it, at its
  decompressed byte offset (`file@byte`), and has no final empty block."""
  path = os.fspath(path)
  summary.files += 1
  start = summary.bytes
  with _open(path, summary) as f:
    try:
      while block := f.read1(size):  # read() would drop what it decompressed before a break
        summary.bytes += len(block)
        yield block
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
      offset = summary.bytes - start
      _broken_gzip(path, summary, e, f"{path}@{offset}", offset > 0)
      return
  yield b""


def decode(
  raw: bytes, encoding: str, summary: ReadSummary, where: str, fallback: str | None = None
) -> str | None:
  """The line decoded; else decoded with `fallback` (a counted repair); else None (counted skip)."""
  try:
    return raw.decode(encoding)
  except UnicodeDecodeError as e:
    if fallback is not None:
      try:
        line = raw.decode(fallback)
        summary.repair(f"{fallback}_line", where, f"not valid {encoding}, read as {fallback}")
        return line
      except UnicodeDecodeError:
        pass
    summary.skip(
      "bad_encoding",
      where,
      f"not valid {encoding} at byte {e.start}: {raw[e.start : e.start + 8]!r}",
    )
    return None


# A file whose lines fail to decode this often (at least `WRONG_ENCODING_LINES` of them, and more
# than half of its lines) is in another encoding, rather than holding a few broken lines.
WRONG_ENCODING_LINES = 3
# Encodings suggested for such a file, the first that decodes its undecodable lines.
SUGGESTED_ENCODINGS = ("utf-8", "gbk", "latin-1")


def iter_text(
  path: str | os.PathLike,
  summary: ReadSummary,
  encoding: str,
  fallback: str | None = None,
  usual: str | None = None,
) -> Iterator[tuple[str, str]]:
  """("file:line", text) of the non-blank lines of a text file (`iter_lines`), decoded (`decode`).

  A line that does not decode is a counted skip (`bad_encoding`); a file where most do is a
  `LogError` naming it and the `--encoding` to read it with (`usual`, the format's own encoding,
  when that is not the one used; else the first of `SUGGESTED_ENCODINGS` that decodes the lines).
  """
  path = os.fspath(path)
  n = bad = 0
  undecodable: list[bytes] = []
  for n, raw in iter_lines(path, summary):  # noqa: B007
    where = f"{path}:{n}"
    line = decode(raw, encoding, summary, where, fallback)
    if line is None:
      bad += 1
      if len(undecodable) < 10:
        undecodable.append(raw)
    elif line.strip():
      yield where, line
  if bad >= WRONG_ENCODING_LINES and 2 * bad > n:
    candidates = [usual] if usual and usual != encoding else []
    candidates += [e for e in SUGGESTED_ENCODINGS if e not in (encoding, usual)]
    fits = next(c for c in candidates if _decodes(undecodable, c))
    raise LogError(
      f"{path}: {bad} of {n} lines are not valid {encoding}: the file is in another encoding; "
      f"read it with --encoding {fits}" + (" (this format's usual one)" if fits == usual else "")
    )


def _decodes(lines: list[bytes], encoding: str) -> bool:
  try:
    for raw in lines:
      raw.decode(encoding)
    return True
  except UnicodeDecodeError:
    return False


@dataclasses.dataclass(frozen=True)
class Option:
  """A keyword option of a reader, which commands offer as the flag `--<name, "_" as "-">`.

  Attributes:
    help: what the option is, for the commands' help.
    type: turns the flag's text into the value (`str`, `int`, ...).
    default: the reader's own default, read off its signature when it is registered.
  """

  help: str
  type: Callable[[str], Any] = str
  default: Any = None


@dataclasses.dataclass(frozen=True)
class LogFormat:
  """A click-log format: its name, its reader and the options the reader takes.

  Attributes:
    name: the name commands take as `--format` and `read_sessions` as `fmt`.
    read: `read(path, summary, **options)` -> the `Session`s of one file.
    options: option name (the reader's keyword-only parameter) -> `Option`, in signature order.
  """

  name: str
  read: Callable[..., Iterator[Session]]
  options: Mapping[str, Option]


FORMATS: dict[str, LogFormat] = {}


def log_format(name: str, **options: Option):
  """A decorator registering a reader in `FORMATS` as `name`, with its keyword options declared.

  The options must be the reader's keyword-only parameters; each `Option`'s default is taken from
  the signature, so it is written once. The reader itself is returned unchanged.

  >>> formats = dict(FORMATS)
  >>> @log_format("lines", min_clicks=Option("sessions with fewer clicks are left out", int))
  ... def read_lines(path, summary, *, min_clicks=1):
  ...   return iter(())
  >>> FORMATS["lines"].options["min_clicks"]
  Option(help='sessions with fewer clicks are left out', type=<class 'int'>, default=1)
  >>> FORMATS.clear(); FORMATS.update(formats)  # the example leaves the registry as it was
  """

  def add(read):
    params = inspect.signature(read).parameters
    keyword = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY]
    if sorted(keyword) != sorted(options):
      raise ValueError(
        f"reader {read.__name__} of format {name!r} takes keyword options "
        f"{keyword}; declared: {sorted(options)}"
      )
    declared = {n: dataclasses.replace(options[n], default=params[n].default) for n in keyword}
    registry.register(FORMATS, name)(LogFormat(name, read, declared))
    return read

  return add
