"""LETOR / svmlight ranking files (MSLR-WEB10K/30K, Yahoo LTR, Istella) -> `RankingList`s.

One line per (query, document): `<label> qid:<id> <index>:<value> ... [# comment]`, feature
indices 1-based, lines of one query contiguous. LightGBM's layout without `qid:` is read with a
`.query` file of group sizes. A LETOR 4.0 comment `#docid = X` names the document; otherwise a
document is named `<qid>-<k>` by its 0-based place in its list.

The labels are graded human judgments, stored as label source `label_source` ("human").

Memory follows the data, never a number inside it: lines are read into sparse rows (`Rows`, the
indices and values each line gives) and made dense only per list, `num_features` wide. That count
is declared, or else the largest index in the file, which may be at most `MAX_FEATURES`; an index
past either is an error naming the file, the line and the index, raised where it is read.

What a line may hold, and what happens otherwise:

- label: a finite number in `LABELS` (0-4, the grades of MSLR, Yahoo, Istella and LightGBM's
  example); NaN, Inf or outside is a counted skip of the line (`nonfinite_label`,
  `label_out_of_range`).
- features: `<index>:<value>`, index a whole number from 1 to the feature count, each at most once,
  value a finite number; a NaN or Inf value is a counted skip of the line (`nonfinite_feature`).
  A token that is not `<index>:<value>`, a label or value that is no number, an index below 1,
  repeated or past the count is an error naming the file and line (the file is not svmlight, or
  not the one meant).
- text: `encoding` (UTF-8 by default). A line whose label and features do not decode, or whose
  docid does not, is a counted skip (`bad_encoding`); a comment that does not decode is not read
  (a counted repair, `comment_not_decoded`: nothing in it is used). When at least as many lines
  fail to decode as are read, the file is in another encoding: an error naming it and the flag to
  give its encoding with.

Skips go to a `readers.ReadSummary` (given, or else one whose counts are logged as a warning).

scikit-learn's `load_svmlight_file` is not used: it stops at the first bad line without naming
it, counts no skips, takes NaN and Inf as values, and does not read LETOR's docid comments.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "tiny.txt"
>>> _ = p.write_text("2 qid:7 1:0.5 3:1\\n0 qid:7 2:4\\n1 qid:9 1:1 # docid = d9\\n")
>>> lists = read_svmlight(p)
>>> [(l.qid, len(l), l.features.shape) for l in lists]
[('7', 2, (2, 3)), ('9', 1, (1, 3))]
>>> lists[0].labels["human"].tolist(), lists[1].doc_ids
([2.0, 0.0], ['d9'])
"""

from __future__ import annotations

import array
import dataclasses
import logging
import math
import os
import pathlib
import re
from collections.abc import Callable, Iterator

import numpy as np

from rankjax import registry
from rankjax.data import paths, schema
from rankjax.data.readers import errors
from rankjax.data.readers.common import ReadSummary

# The most features read without a declared count. The public sets have 46 (LETOR 4.0), 136
# (MSLR-WEB), 220 (Istella) and 700 (Yahoo LTR): 4,096 leaves room for any of them several times
# over, while a line (of a dozen bytes) can make its list cost at most 16 KiB of float32 per
# document, so a hostile index cannot make a small file take gigabytes.
MAX_FEATURES = 4096
LABELS = (0.0, 4.0)  # the graded labels read, inclusive
_DOCID = re.compile(r"docid\s*=\s*(\S+)")
_DOCID_BYTES = re.compile(rb"docid\s*=\s*(\S+)")


class SvmlightError(errors.InputError):
  """A malformed svmlight file; the message names the file and 1-based line number."""


@dataclasses.dataclass(frozen=True)
class _Skip:
  reason: str
  message: str


@dataclasses.dataclass(frozen=True)
class _Line:
  label: float
  qid: str | None
  indices: list[int]  # 0-based
  values: list[float]
  doc_id: str | None


def _decode(raw: bytes, encoding: str, summary: ReadSummary, where: str) -> tuple[str, str] | _Skip:
  """(body, comment) of a line; a `_Skip` where what is read of it does not decode."""
  try:
    body, _, comment = raw.decode(encoding).partition("#")
    return body, comment
  except UnicodeDecodeError:
    pass
  body, _, comment = raw.partition(b"#")
  try:
    text = body.decode(encoding)
  except UnicodeDecodeError as e:
    return _Skip(
      "bad_encoding", f"not valid {encoding} at byte {e.start}: {body[e.start : e.start + 8]!r}"
    )
  m = _DOCID_BYTES.search(comment)
  if m:
    try:
      return text, f"docid = {m.group(1).decode(encoding)}"
    except UnicodeDecodeError:
      return _Skip("bad_encoding", f"docid {m.group(1)!r} is not valid {encoding}")
  summary.repair("comment_not_decoded", where, f"comment is not valid {encoding}; not read")
  return text, ""


def _parse_line(
  raw: bytes, where: str, width: int, declared: bool, encoding: str, summary: ReadSummary
) -> _Line | _Skip | None:
  """A data line, a `_Skip` of one, or None for a blank or comment line; raises `SvmlightError`
  where the line is malformed or an index is past `width`."""
  if not raw.partition(b"#")[0].strip():
    return None
  decoded = _decode(raw, encoding, summary, where)
  if isinstance(decoded, _Skip):
    return decoded
  body, comment = decoded
  tokens = body.split()
  if not tokens:
    return None
  try:
    label = float(tokens[0])
  except ValueError:
    raise SvmlightError(f"{where}: label {tokens[0]!r} is not a number") from None
  qid = None
  indices, values = [], []
  skip = None
  if not math.isfinite(label):
    skip = _Skip("nonfinite_label", f"label {tokens[0]!r} is not finite")
  elif not LABELS[0] <= label <= LABELS[1]:
    skip = _Skip(
      "label_out_of_range", f"label {tokens[0]!r} is outside {LABELS[0]:g}-{LABELS[1]:g}"
    )
  for tok in tokens[1:]:
    key, sep, value = tok.partition(":")
    if not sep:
      raise SvmlightError(f"{where}: token {tok!r} is not <index>:<value>")
    if key == "qid":
      qid = value
      continue
    try:
      if not key.isdigit():  # int() would take a sign, spaces and underscores
        raise ValueError(key)
      index, val = int(key), float(value)
    except ValueError:
      raise SvmlightError(f"{where}: token {tok!r} is not <int index>:<number>") from None
    if index < 1:
      raise SvmlightError(f"{where}: feature index {index} < 1 (indices are 1-based)")
    if index > width:
      if declared:
        raise SvmlightError(
          f"{where}: feature index {index} > num_features {width} "
          "(declare a larger count with --num-features)"
        )
      raise SvmlightError(
        f"{where}: feature index {index} > {MAX_FEATURES}, the most read without a declared "
        "feature count; declare the count with --num-features"
      )
    if skip is None and not math.isfinite(val):
      skip = _Skip("nonfinite_feature", f"feature {index} value {value!r} is not finite")
    indices.append(index - 1)
    values.append(val)
  if len(set(indices)) < len(indices):
    twice = next(i for k, i in enumerate(indices) if i in indices[:k])
    raise SvmlightError(f"{where}: feature index {twice + 1} given twice")
  if skip is not None:
    return skip
  m = _DOCID.search(comment)
  return _Line(label, qid, indices, values, m.group(1) if m else None)


@dataclasses.dataclass(frozen=True)
class Rows:
  """The lines read from an svmlight file, features sparse: line k's are the 0-based
  `indices[indptr[k]:indptr[k + 1]]` with their `values`.

  Attributes:
    path: the file.
    linenos: int64 [n], each row's 1-based line number.
    labels: float32 [n].
    qids: the n query ids (group numbers, from 0, where a group file gave them).
    doc_ids: the n document ids (`<qid>-<k>` where the line names none).
    indptr: int64 [n + 1].
    indices: int32, 0-based feature indices.
    values: float32.
    width: F, the feature count: declared, or the largest index read.
  """

  path: pathlib.Path
  linenos: np.ndarray
  labels: np.ndarray
  qids: list[str]
  doc_ids: list[str]
  indptr: np.ndarray
  indices: np.ndarray
  values: np.ndarray
  width: int

  def __len__(self) -> int:
    return len(self.qids)

  def dense(self, rows) -> np.ndarray:
    """float32 [len(rows), width], the features of `rows` (row numbers), absent ones 0."""
    return dense_rows(self.indptr, self.indices, self.values, self.width, rows)

  def groups(self) -> list[tuple[str, range]]:
    """(qid, its rows) per query, in file order (a query's rows are contiguous)."""
    out, start = [], 0
    for k in range(1, len(self.qids) + 1):
      if k == len(self.qids) or self.qids[k] != self.qids[start]:
        out.append((self.qids[start], range(start, k)))
        start = k
    return out


def dense_rows(indptr, indices, values, width: int, rows) -> np.ndarray:
  """float32 [len(rows), width] of sparse rows `rows` (row k's features are
  `indices[indptr[k]:indptr[k + 1]]` with their `values`), absent ones 0."""
  rows = np.asarray(rows, np.int64)
  out = np.zeros((len(rows), width), np.float32)
  for k, r in enumerate(rows):
    lo, hi = indptr[r], indptr[r + 1]
    out[k, indices[lo:hi]] = values[lo:hi]
  return out


def read_rows(
  path: str | os.PathLike,
  *,
  num_features: int | None = None,
  query_file: str | os.PathLike | None = None,
  encoding: str = "utf-8",
  encoding_flag: str = "--encoding",
  summary: ReadSummary | None = None,
) -> Rows:
  """Reads an svmlight file into sparse `Rows`, skipping (and counting) lines it cannot use.

  Args:
    path: the svmlight file.
    num_features: F, the declared feature count; default the largest index in the file, at most
      `MAX_FEATURES`.
    query_file: LightGBM `.query` group sizes (one integer per line) for files without `qid:`;
      default `<path>.query` when the file has no `qid:` and that file exists.
    encoding: the file's text encoding.
    encoding_flag: the command's flag that gives `encoding`, named in the error of a file in
      another encoding.
    summary: receives the skips; default a fresh one whose counts are logged as a warning.

  Raises:
    SvmlightError: a malformed line, an index past the feature count, a query whose lines are not
      contiguous, lines without `qid:` and no group file, group sizes that do not add up, a file
      without a data line or one in another encoding; the message names file and line.
  """
  path = pathlib.Path(path)
  own_summary = summary is None
  summary = ReadSummary() if summary is None else summary
  skipped_before = summary.skipped
  width = num_features or MAX_FEATURES
  linenos, data_index, qids, doc_ids = [], [], [], []
  labels, values = array.array("f"), array.array("f")
  indices, indptr = array.array("i"), array.array("q", [0])
  seen_qids: set[str] = set()
  n_data = undecodable = 0
  first_undecodable = None
  largest = 0
  with open(path, "rb") as f:
    for lineno, raw in enumerate(f, 1):
      where = f"{path}:{lineno}"
      line = _parse_line(raw.rstrip(b"\r\n"), where, width, bool(num_features), encoding, summary)
      if line is None:
        continue
      n_data += 1
      if isinstance(line, _Skip):
        summary.skip(line.reason, where, line.message)
        if line.reason == "bad_encoding":
          undecodable += 1
          first_undecodable = first_undecodable or lineno
        continue
      if linenos and (line.qid is None) != (qids[-1] is None):
        raise SvmlightError(
          f"{where}: line without qid: in a file that uses qid:"
          if line.qid is None
          else f"{where}: line with qid: in a file whose first line has none"
        )
      if line.qid is not None and (not qids or line.qid != qids[-1]):
        if line.qid in seen_qids:
          raise SvmlightError(
            f"{where}: qid {line.qid} appears again after other queries "
            "(lines of one query must be contiguous)"
          )
        seen_qids.add(line.qid)
      linenos.append(lineno)
      data_index.append(n_data - 1)
      qids.append(line.qid)
      doc_ids.append(line.doc_id)
      labels.append(line.label)
      indices.extend(line.indices)
      values.extend(line.values)
      indptr.append(len(indices))
      largest = max(largest, max(line.indices, default=-1) + 1)
  if undecodable and undecodable >= len(linenos):
    raise SvmlightError(
      f"{path}: {undecodable} of {n_data} lines are not valid {encoding} (the first: line "
      f"{first_undecodable}); give the file's encoding with {encoding_flag}, e.g. latin-1"
    )
  if not linenos:
    raise SvmlightError(f"{path}: no data lines" + (f" read ({n_data} skipped)" if n_data else ""))
  if qids[0] is None:
    query_file = pathlib.Path(query_file or f"{path}.query")
    if not query_file.exists():
      raise SvmlightError(f"{path}:{linenos[0]}: no qid: and no group file {query_file}")
    sizes = [int(s) for s in query_file.read_text().split()]
    if sum(sizes) != n_data:
      raise SvmlightError(
        f"{query_file}: group sizes add up to {sum(sizes)}, {path} has {n_data} lines"
      )
    groups = np.repeat(np.arange(len(sizes)), sizes).astype(str)
    qids = [str(groups[i]) for i in data_index]
  place, last = 0, None
  for k, qid in enumerate(qids):
    place = place + 1 if qid == last else 0
    last = qid
    if doc_ids[k] is None:
      doc_ids[k] = f"{qid}-{place}"
  if own_summary and summary.skipped > skipped_before:
    logging.warning("%s: %d lines skipped: %s", path, summary.skipped, summary)
  return Rows(
    path=path,
    linenos=np.asarray(linenos, np.int64),
    labels=np.frombuffer(labels, np.float32),
    qids=qids,
    doc_ids=doc_ids,
    indptr=np.frombuffer(indptr, np.int64),
    indices=np.frombuffer(indices, np.int32),
    values=np.frombuffer(values, np.float32),
    width=num_features or largest,
  )


def read_svmlight(
  path: str | os.PathLike,
  *,
  num_features: int | None = None,
  query_file: str | os.PathLike | None = None,
  label_source: str = "human",
  encoding: str = "utf-8",
  encoding_flag: str = "--encoding",
  summary: ReadSummary | None = None,
) -> list[schema.RankingList]:
  """Reads a LETOR/svmlight ranking file into one `RankingList` per query.

  Args:
    path, num_features, query_file, encoding, encoding_flag, summary: as `read_rows`.
    label_source: the label source the graded labels are stored as.

  Returns:
    The lists in file order, `features` float32 [n, F] (absent features are 0).

  Raises:
    SvmlightError: as `read_rows`.
  """
  rows = read_rows(
    path,
    num_features=num_features,
    query_file=query_file,
    encoding=encoding,
    encoding_flag=encoding_flag,
    summary=summary,
  )
  return [
    schema.RankingList(
      qid=qid,
      doc_ids=rows.doc_ids[k.start : k.stop],
      labels={label_source: rows.labels[k.start : k.stop]},
      features=rows.dense(k),
    )
    for qid, k in rows.groups()
  ]


def iter_svmlight(
  path: str | os.PathLike,
  *,
  num_features: int,
  query_file: str | os.PathLike | None = None,
  label_source: str = "human",
) -> Iterator[schema.RankingList]:
  """Streams a LETOR/svmlight file one query at a time, in constant memory (`read_svmlight` reads
  it whole).

  Args:
    path: the svmlight file.
    num_features: F, the width of `features`; a feature index above it is an error (a file made
      for another feature set).
    query_file: LightGBM `.query` group sizes for a file without `qid:`; default `<path>.query`.
    label_source: the label source the graded labels are stored as.

  Yields:
    One `RankingList` per query, in file order.

  Lines `read_svmlight` skips (a non-finite or out-of-range label or value, an undecodable line)
  are skipped here too, their counts logged as a warning at the end.

  Raises:
    SvmlightError: as `read_svmlight`, naming the file and line.
  """
  path = pathlib.Path(path)
  sizes = None  # group sizes left, for a file without qid:
  group: list = []  # rows (lineno, label, qid, line) of the current query
  seen: set[str] = set()
  lines = 0
  summary = ReadSummary()

  def finish():
    qid = group[0][2]
    features = np.zeros((len(group), num_features), np.float32)
    for k, (_, _, _, line) in enumerate(group):
      features[k, line.indices] = line.values
    return schema.RankingList(
      qid=qid,
      doc_ids=[r[3].doc_id or f"{qid}-{k}" for k, r in enumerate(group)],
      labels={label_source: np.array([r[1] for r in group], np.float32)},
      features=features,
    )

  # The index check is this reader's own (the run's feature count), after parsing without a limit.
  with open(path, "rb") as f:
    for lineno, raw in enumerate(f, 1):
      where = f"{path}:{lineno}"
      line = _parse_line(raw.rstrip(b"\r\n"), where, 2**31 - 1, False, "utf-8", summary)
      if line is None:
        continue
      if isinstance(line, _Skip):
        summary.skip(line.reason, where, line.message)
        continue
      label, qid = line.label, line.qid
      if lines == 0 and qid is None:
        query_file = pathlib.Path(query_file or f"{path}.query")
        if not query_file.exists():
          raise SvmlightError(f"{where}: no qid: and no group file {query_file}")
        sizes = iter([int(s) for s in query_file.read_text().split()])
        left, number = 0, -1
      if (qid is None) == (sizes is None):
        raise SvmlightError(
          f"{where}: line {'without' if qid is None else 'with'} qid: in a file that "
          f"{'uses' if qid is None else 'does not use'} qid:"
        )
      if sizes is not None:
        if left == 0:
          left, number = next(sizes, None), number + 1
          if left is None:
            raise SvmlightError(f"{query_file}: group sizes end before {where}")
        qid, left = str(number), left - 1
      if line.indices and max(line.indices) >= num_features:
        raise SvmlightError(
          f"{where}: feature index {max(line.indices) + 1} > {num_features}, the number of "
          "features expected"
        )
      if group and qid != group[0][2]:
        yield finish()
        group = []
      if not group:
        if qid in seen:
          raise SvmlightError(
            f"{where}: qid {qid} appears again after other queries "
            "(lines of one query must be contiguous)"
          )
        seen.add(qid)
      group.append((lineno, label, qid, line))
      lines += 1
  if summary.skipped:
    logging.warning("%s: %d lines skipped: %s", path, summary.skipped, summary)
  if not lines:
    raise SvmlightError(f"{path}: no data lines")
  if sizes is not None and (left or next(sizes, None) is not None):
    raise SvmlightError(
      f"{query_file}: group sizes add up to more than the {lines} lines of {path}"
    )
  yield finish()


def split_off(lists: list[schema.RankingList], every: int):
  """Splits every `every`-th list off (deterministic validation split): (rest, split_off).

  >>> rest, val = split_off(list(range(10)), 5)
  >>> rest, val
  ([0, 1, 2, 3, 5, 6, 7, 8], [4, 9])
  """
  rest = [x for i, x in enumerate(lists) if (i + 1) % every]
  held = [x for i, x in enumerate(lists) if not (i + 1) % every]
  return rest, held


def _letor_folder(folder: str, train: str, test: str, num_features: int | None, every: int):
  def splits():
    base = paths.data_path(folder)
    train_lists = read_svmlight(base / train, num_features=num_features)
    width = train_lists[0].features.shape[1]
    rest, validation = split_off(train_lists, every)
    return {
      "train": rest,
      "validation": validation,
      "test": read_svmlight(base / test, num_features=width),
    }

  return splits


# Real svmlight data sets under the data directory, by name: name -> () -> {split: lists}, each
# entered with `registry.register` (`registry.lookup(DATASETS, name, ...)` finds one). The
# validation split is every 5th query of the training file.
DATASETS: dict[str, Callable[[], dict[str, list[schema.RankingList]]]] = {}
registry.register(DATASETS, "mslr_web10k_sample")(
  _letor_folder("mslr_web10k_sample", "msn1.fold1.train.5k.txt", "msn1.fold1.test.5k.txt", 136, 5)
)
registry.register(DATASETS, "lightgbm_lambdarank_example")(
  _letor_folder("lightgbm_lambdarank_example", "rank.train", "rank.test", None, 5)
)
