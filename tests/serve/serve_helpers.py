"""Helpers of the serving tests (not a test module)."""

import pathlib

import numpy as np


def write_svmlight(path: pathlib.Path, lists) -> pathlib.Path:
  """`lists` as an svmlight file (human labels, NaN as 0; doc ids in `#docid =` comments)."""
  with open(path, "w") as f:
    for lst in lists:
      labels = np.nan_to_num(lst.labels["human"])
      for doc, label, row in zip(lst.doc_ids, labels, lst.features):
        feats = " ".join(f"{k + 1}:{v!r}" for k, v in enumerate(row.tolist()))
        f.write(f"{label:g} qid:{lst.qid} {feats} #docid = {doc}\n")
  return path
