"""LETOR / svmlight ranking files (MSLR-WEB10K/30K, Yahoo LTR, Istella) -> `RankingList`s.

One line per (query, document): `<label> qid:<id> <index>:<value> ... [# comment]`, feature
indices 1-based, lines of one query contiguous. LightGBM's layout without `qid:` is read with a
`.query` file of group sizes. A LETOR 4.0 comment `#docid = X` names the document; otherwise a
document is named `<qid>-<k>` by its 0-based place in its list.

The labels are graded human judgments, stored as label source `label_source` ("human").

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

import os
import pathlib
import re
from collections.abc import Callable, Iterator

import numpy as np

from rankjax import registry
from rankjax.data import paths, schema

_DOCID = re.compile(r"docid\s*=\s*(\S+)")


class SvmlightError(ValueError):
  """A malformed svmlight file; the message names the file and 1-based line number."""


def _parse_line(line: str, where: str):
  body, _, comment = line.partition("#")
  tokens = body.split()
  if not tokens:
    return None
  try:
    label = float(tokens[0])
  except ValueError:
    raise SvmlightError(f"{where}: label {tokens[0]!r} is not a number") from None
  qid = None
  feats = {}
  for tok in tokens[1:]:
    key, sep, value = tok.partition(":")
    if not sep:
      raise SvmlightError(f"{where}: token {tok!r} is not <index>:<value>")
    if key == "qid":
      qid = value
      continue
    try:
      index, val = int(key), float(value)
    except ValueError:
      raise SvmlightError(f"{where}: token {tok!r} is not <int index>:<number>") from None
    if index < 1:
      raise SvmlightError(f"{where}: feature index {index} < 1 (indices are 1-based)")
    feats[index] = val
  m = _DOCID.search(comment)
  return label, qid, feats, (m.group(1) if m else None)


def read_svmlight(
  path: str | os.PathLike,
  *,
  num_features: int | None = None,
  query_file: str | os.PathLike | None = None,
  label_source: str = "human",
) -> list[schema.RankingList]:
  """Reads a LETOR/svmlight ranking file into one `RankingList` per query.

  Args:
    path: the svmlight file.
    num_features: F, the width of `features`; default the largest index in the file.
    query_file: LightGBM `.query` group sizes (one integer per line) for files without `qid:`;
      default `<path>.query` when the file has no `qid:` and that file exists.
    label_source: the label source the graded labels are stored as.

  Returns:
    The lists in file order, `features` float32 [n, F] (absent features are 0).

  Raises:
    SvmlightError: a malformed line, a query whose lines are not contiguous, lines without `qid:`
      and no group file, or group sizes that do not add up; the message names file and line.
  """
  path = pathlib.Path(path)
  rows = []  # (lineno, label, qid, feats, docid)
  with open(path) as f:
    for lineno, line in enumerate(f, 1):
      parsed = _parse_line(line, f"{path}:{lineno}")
      if parsed is not None:
        rows.append((lineno, *parsed))
  if not rows:
    raise SvmlightError(f"{path}: no data lines")
  has_qid = [r[2] is not None for r in rows]
  if any(has_qid) and not all(has_qid):
    lineno = rows[has_qid.index(False)][0]
    raise SvmlightError(f"{path}:{lineno}: line without qid: in a file that uses qid:")
  if not any(has_qid):
    query_file = pathlib.Path(query_file or f"{path}.query")
    if not query_file.exists():
      raise SvmlightError(f"{path}:{rows[0][0]}: no qid: and no group file {query_file}")
    sizes = [int(s) for s in query_file.read_text().split()]
    if sum(sizes) != len(rows):
      raise SvmlightError(
        f"{query_file}: group sizes add up to {sum(sizes)}, {path} has {len(rows)} lines"
      )
    qids = np.repeat(np.arange(len(sizes)), sizes).astype(str)
    rows = [(r[0], r[1], q, r[3], r[4]) for r, q in zip(rows, qids)]

  width = num_features or max((max(r[3], default=0) for r in rows), default=0)
  groups: dict[str, list] = {}
  last = None
  for row in rows:
    lineno, _, qid, feats, _ = row
    if qid != last and qid in groups:
      raise SvmlightError(
        f"{path}:{lineno}: qid {qid} appears again after other queries "
        "(lines of one query must be contiguous)"
      )
    if feats and max(feats) > width:
      raise SvmlightError(f"{path}:{lineno}: feature index {max(feats)} > num_features {width}")
    groups.setdefault(qid, []).append(row)
    last = qid

  lists = []
  for qid, group in groups.items():
    features = np.zeros((len(group), width), np.float32)
    for k, (_, _, _, feats, _) in enumerate(group):
      if feats:
        features[k, np.fromiter(feats, int) - 1] = np.fromiter(feats.values(), float)
    doc_ids = [r[4] if r[4] is not None else f"{qid}-{k}" for k, r in enumerate(group)]
    labels = np.array([r[1] for r in group], np.float32)
    lists.append(
      schema.RankingList(qid=qid, doc_ids=doc_ids, labels={label_source: labels}, features=features)
    )
  return lists


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

  Raises:
    SvmlightError: as `read_svmlight`, naming the file and line.
  """
  path = pathlib.Path(path)
  sizes = None  # group sizes left, for a file without qid:
  group: list = []  # rows (lineno, label, qid, feats, docid) of the current query
  seen: set[str] = set()
  lines = 0

  def finish():
    qid = group[0][2]
    features = np.zeros((len(group), num_features), np.float32)
    for k, (_, _, _, feats, _) in enumerate(group):
      if feats:
        features[k, np.fromiter(feats, int) - 1] = np.fromiter(feats.values(), float)
    return schema.RankingList(
      qid=qid,
      doc_ids=[r[4] if r[4] is not None else f"{qid}-{k}" for k, r in enumerate(group)],
      labels={label_source: np.array([r[1] for r in group], np.float32)},
      features=features,
    )

  with open(path) as f:
    for lineno, line in enumerate(f, 1):
      where = f"{path}:{lineno}"
      parsed = _parse_line(line, where)
      if parsed is None:
        continue
      label, qid, feats, docid = parsed
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
      if feats and max(feats) > num_features:
        raise SvmlightError(
          f"{where}: feature index {max(feats)} > {num_features}, the number of features expected"
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
      group.append((lineno, label, qid, feats, docid))
      lines += 1
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
