"""Shared test fixtures."""

import pytest

from rankjax import paths


@pytest.fixture
def shared_data():
  """Returns a function giving a path under the data directory, skipping when absent."""

  def get(*parts: str):
    p = paths.data_path(*parts)
    if not p.exists():
      pytest.skip(f"real data not found at {p}: set RANKJAX_DATA to the shared data directory")
    return p

  return get
