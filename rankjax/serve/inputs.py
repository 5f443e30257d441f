"""New data in the forms users hold it -> `RankingList`s a run can score, checked against the run.

A feature ranker (`kind="features"`, F features) takes
  - a numpy array f32 [n, F] of one query's documents, or [n, F] with `qids` [n] (a query's rows
    contiguous), or [Q, L, F] (Q lists of L documents each);
  - a pandas DataFrame with a `qid` column and the F feature columns (every other column except
    `docno` and `label`, in order; or `feature_columns`), optional `docno` and `label`;
  - an svmlight / LETOR file path (streamed one query at a time; its labels are kept).
A text ranker (`kind="text"`) takes
  - (query, document text) pairs, grouped into one list per query text;
  - a DataFrame with columns `qid`, `query`, `docno`, `text` (optional `label`);
  - a JSON Lines file path of such rows (`data.text_pairs`; streamed one query at a time),
and tokenizes them with the run's `text.PairTokenizer` (its tokenizer and truncation rules).
Either kind also takes a list of `schema.RankingList`s as the run's dataset stores them.
Anything else, or a form of the other kind, is a `ValueError` saying what the run expects.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from rankjax import errors
from rankjax.data import schema, svmlight, text_pairs

TEXT_COLUMNS = ("qid", "query", "docno", "text")
_NOT_FEATURES = ("qid", "docno", "label")


class InputError(errors.UserError, ValueError):
  """Input that does not fit the run; the message says what was expected."""


def expected(kind: str, num_features: int | None) -> str:
  """What a ranker of `kind` scores, in words (the tail of every `InputError`)."""
  if kind == "features":
    return (
      f"this ranker scores {num_features} features per document: a numpy array [n, "
      f"{num_features}] (with qids) or [Q, L, {num_features}], a DataFrame with a qid column and "
      f"{num_features} feature columns, or an svmlight file"
    )
  return (
    "this ranker scores text: (query, document text) pairs, or a DataFrame or JSON Lines file "
    "with columns " + ", ".join(TEXT_COLUMNS)
  )


def _is_frame(data) -> bool:
  return hasattr(data, "columns") and hasattr(data, "groupby")


def _groups(qids: np.ndarray) -> list[tuple[str, slice]]:
  """Contiguous runs of equal qids; a qid that comes back later is an error."""
  qids = np.asarray(qids).astype(str)
  starts = np.flatnonzero(np.r_[True, qids[1:] != qids[:-1]])
  ends = np.r_[starts[1:], len(qids)]
  names = qids[starts]
  if len(set(names)) != len(names):
    again = next(q for i, q in enumerate(names) if q in names[:i])
    raise InputError(
      f"qid {again!r} appears again after other queries; a query's rows must be contiguous"
    )
  return [(str(q), slice(int(s), int(e))) for q, s, e in zip(names, starts, ends)]


def _feature_lists(features, qids, doc_ids, labels, num_features: int):
  features = np.asarray(features, np.float32)
  if features.ndim == 3:
    if features.shape[-1] != num_features:
      raise InputError(f"features of shape {features.shape}: {expected('features', num_features)}")
    return [
      schema.RankingList(qid=str(q), doc_ids=[f"{q}-{k}" for k in range(len(f))], features=f)
      for q, f in enumerate(features)
    ]
  if features.ndim != 2 or features.shape[1] != num_features:
    raise InputError(f"features of shape {features.shape}: {expected('features', num_features)}")
  qids = np.zeros(len(features), int) if qids is None else np.asarray(qids)
  if len(qids) != len(features):
    raise InputError(f"{len(qids)} qids for {len(features)} rows of features")
  out = []
  for qid, rows in _groups(qids):
    n = rows.stop - rows.start
    out.append(
      schema.RankingList(
        qid=qid,
        doc_ids=[str(d) for d in doc_ids[rows]]
        if doc_ids is not None
        else [f"{qid}-{k}" for k in range(n)],
        labels={} if labels is None else {"human": np.asarray(labels[rows], np.float32)},
        features=features[rows],
      )
    )
  return out


def _frame_features(df, num_features: int, feature_columns: Sequence[str] | None):
  if "qid" not in df.columns:
    raise InputError(f"DataFrame has no 'qid' column: {expected('features', num_features)}")
  columns = list(feature_columns or [c for c in df.columns if c not in _NOT_FEATURES])
  missing = [c for c in columns if c not in df.columns]
  if missing:
    raise InputError(f"DataFrame has no column(s) {missing}")
  if len(columns) != num_features:
    raise InputError(
      f"DataFrame has {len(columns)} feature columns ({columns[:3]}...): "
      f"{expected('features', num_features)}"
    )
  return _feature_lists(
    df[columns].to_numpy(np.float32),
    df["qid"].to_numpy(),
    df["docno"].to_numpy() if "docno" in df.columns else None,
    df["label"].to_numpy() if "label" in df.columns else None,
    num_features,
  )


def _frame_text(df):
  missing = [c for c in TEXT_COLUMNS if c not in df.columns]
  if missing:
    raise InputError(f"DataFrame has no column(s) {missing}: {expected('text', None)}")
  out = []
  for qid, rows in _groups(df["qid"].to_numpy()):
    part = df.iloc[rows]
    queries = set(part["query"])
    if len(queries) != 1:
      raise InputError(f"qid {qid!r} has {len(queries)} different query texts")
    out.append(
      schema.RankingList(
        qid=qid,
        doc_ids=[str(d) for d in part["docno"]],
        labels={"human": part["label"].to_numpy(np.float32)} if "label" in part else {},
        query=str(part["query"].iloc[0]),
        doc_texts=[str(t) for t in part["text"]],
      )
    )
  return out


def _pairs(pairs) -> list[schema.RankingList]:
  by_query: dict[str, list[str]] = {}
  for k, pair in enumerate(pairs):
    if not (
      isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
    ):
      raise InputError(f"item {k} is {type(pair).__name__} {pair!r:.60}: {expected('text', None)}")
    by_query.setdefault(pair[0], []).append(pair[1])
  return [
    schema.RankingList(
      qid=str(i), doc_ids=[f"{i}-{k}" for k in range(len(d))], query=q, doc_texts=d
    )
    for i, (q, d) in enumerate(by_query.items())
  ]


def to_lists(
  data,
  *,
  kind: str,
  num_features: int | None = None,
  qids=None,
  doc_ids=None,
  labels=None,
  feature_columns: Sequence[str] | None = None,
) -> Iterable[schema.RankingList]:
  """`data` (module docstring) as ranking lists, untokenized; a file streams lazily.

  Raises:
    InputError: `data` is not a form the ranker of `kind` scores, or does not fit it (the feature
      count, missing columns), naming what was expected.
  """
  if isinstance(data, (str, os.PathLike)):
    if kind == "text":
      return text_pairs.iter_text_pairs(data)
    if str(data).endswith((".jsonl", ".json")):
      raise InputError(f"{data}: a JSON Lines file of text; {expected(kind, num_features)}")
    return svmlight.iter_svmlight(data, num_features=num_features)
  if _is_frame(data):
    if kind == "features":
      if set(TEXT_COLUMNS[1:]) <= set(data.columns):
        raise InputError(f"a DataFrame of text: {expected(kind, num_features)}")
      return _frame_features(data, num_features, feature_columns)
    return _frame_text(data)
  if isinstance(data, np.ndarray) or (kind == "features" and _is_array_like(data)):
    if kind != "features":
      raise InputError(f"an array of shape {np.shape(data)}: {expected(kind, num_features)}")
    return _feature_lists(
      data, qids, None if doc_ids is None else np.asarray(doc_ids), labels, num_features
    )
  if isinstance(data, (list, tuple)) and data and isinstance(data[0], schema.RankingList):
    return data
  if isinstance(data, (list, tuple)):
    if kind != "text":
      raise InputError(f"a {type(data).__name__} of pairs: {expected(kind, num_features)}")
    return _pairs(data)
  raise InputError(f"a {type(data).__name__}: {expected(kind, num_features)}")


def _is_array_like(data) -> bool:
  try:
    return np.asarray(data).dtype.kind in "fiu"
  except (ValueError, TypeError):
    return False


def chunks(lists: Iterable[schema.RankingList], size: int) -> Iterator[list[schema.RankingList]]:
  """`lists` in lists of `size` (the last shorter): what a stream is scored in at a time."""
  chunk = []
  for lst in lists:
    chunk.append(lst)
    if len(chunk) == size:
      yield chunk
      chunk = []
  if chunk:
    yield chunk
