"""A study's per-list analyses: separation (AUC), reliance on a signal (Spearman), term overlap.

`padded_split` reads the evaluation split into the arrays they work on, with the one label rule.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats

from rankjax import supervision
from rankjax.data.text import terms


def auc_per_list(scores, relevant, where) -> np.ndarray:
  """f64[N]: P(score of a relevant item > a non-relevant one), ties 1/2; NaN without both kinds.

  >>> auc_per_list(np.array([[3., 1., 2., 0.]]), np.array([[1, 0, 1, 0]], bool),
  ...              np.array([[1, 1, 1, 0]], bool)).tolist()
  [1.0]
  """
  s = np.asarray(scores, np.float64)
  pos = np.asarray(relevant) & where
  neg = ~np.asarray(relevant) & where
  diff = s[:, :, None] - s[:, None, :]
  pair = pos[:, :, None] & neg[:, None, :]
  wins = np.sum(pair * ((diff > 0) + 0.5 * (diff == 0)), axis=(1, 2))
  count = pair.sum(axis=(1, 2))
  return np.where(count > 0, wins / np.maximum(count, 1), np.nan)


def spearman_per_list(scores, signal, where) -> np.ndarray:
  """f64[N]: Spearman correlation within each list; NaN where either side is constant.

  >>> spearman_per_list(np.array([[1., 2., 3., 9.]]), np.array([[10., 20., 30., 0.]]),
  ...                   np.array([[1, 1, 1, 0]], bool)).tolist()
  [1.0]
  """
  out = np.full(len(scores), np.nan)
  for i, (s, x, m) in enumerate(zip(scores, signal, where)):
    if m.sum() > 2 and np.ptp(s[m]) > 0 and np.ptp(x[m]) > 0:
      out[i] = scipy_stats.spearmanr(s[m], x[m]).statistic
  return out


def term_overlap(query: str, doc: str) -> float:
  """Share of the query's distinct terms that occur in the document (lower case).

  >>> term_overlap("Jaguar car price", "the price of a jaguar")
  0.6666666666666666
  >>> term_overlap("北京天气", "天气预报")
  0.5
  """
  q = set(terms(query))
  return len(q & set(terms(doc))) / len(q) if q else 0.0


def _text(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


def available_signals(layout: dict) -> list[str]:
  """The per-item signals a split offers the analyses: its extras, and term_overlap with text."""
  return list(layout["extras"]) + (
    ["term_overlap"] if layout["query"] and layout["doc_texts"] else []
  )


def padded_split(split, extras=()) -> dict[str, np.ndarray]:
  """The evaluation split as arrays [N, Lmax]: human labels, where they count, bucket, signals.

  Where a label counts is the one label rule (`supervision.labels_and_where`) on the split padded
  as a batch; a stored label is missing where it is NaN. A signal is a per-item extra, or
  "term_overlap" computed from the query and document texts.
  """
  n, size = len(split), int(split.lengths.max())
  batch = {
    "label_human": np.zeros((n, size), np.float32),
    "mask": np.zeros((n, size), bool),
    "mask_human": np.zeros((n, size), bool),
    "list_valid": np.ones(n, bool),
  }
  out = {"bucket": np.zeros(n, np.int32), "qid": []}
  for e in extras:
    out[e] = np.zeros((n, size), np.float32)
  for i in range(n):
    rec = split[i]
    k = len(rec["doc_ids"])
    labels = rec["label_human"]
    batch["label_human"][i, :k] = np.nan_to_num(labels)
    batch["mask"][i, :k] = True
    batch["mask_human"][i, :k] = ~np.isnan(labels)
    out["bucket"][i] = rec["bucket"]
    out["qid"].append(_text(rec["qid"]))
    for e in extras:
      if e == "term_overlap" and "extra_term_overlap" not in rec:
        out[e][i, :k] = [term_overlap(_text(rec["query"]), _text(d)) for d in rec["doc_texts"]]
      else:
        out[e][i, :k] = rec[f"extra_{e}"]
  out["label"], out["where"] = supervision.labels_and_where(batch, "human", "the study")
  return out
