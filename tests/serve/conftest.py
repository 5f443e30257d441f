"""A tiny trained feature run shared by the serving tests (trained once per session)."""

import pathlib

import numpy as np
import pytest
from train_helpers import tiny_config, tiny_dataset, tiny_lists

from rankjax.engine import train


def write_svmlight(path: pathlib.Path, lists) -> pathlib.Path:
  """`lists` as an svmlight file (human labels, NaN as 0; doc ids in `#docid =` comments)."""
  with open(path, "w") as f:
    for lst in lists:
      labels = np.nan_to_num(lst.labels["human"])
      for doc, label, row in zip(lst.doc_ids, labels, lst.features):
        feats = " ".join(f"{k + 1}:{v!r}" for k, v in enumerate(row.tolist()))
        f.write(f"{label:g} qid:{lst.qid} {feats} #docid = {doc}\n")
  return path


@pytest.fixture(scope="session")
def feature_run(tmp_path_factory):
  """(workdir, data path): 6 steps of the MLP on random lists, evaluated and saved at 3 and 6."""
  base = tmp_path_factory.mktemp("feature_run")
  data_path = tiny_dataset(base / "data")
  train.train_and_evaluate(tiny_config(data_path), base / "run")
  return base / "run", data_path


@pytest.fixture(scope="session")
def new_lists():
  """Lists the run never saw: other seed, lengths up to 40 (longer than its list sizes 16, 32)."""
  return tiny_lists(9, max_len=40, seed=7)
