"""A tiny trained feature run shared by the serving tests (trained once per session)."""

import pytest
from train_helpers import tiny_config, tiny_dataset, tiny_lists

from rankjax.engine import train


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
