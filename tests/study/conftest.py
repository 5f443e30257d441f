"""Fixtures shared by the study's tests."""

import pytest

from rankjax.data import store
from rankjax.sim import world as demo_world


@pytest.fixture(scope="session")
def world_split(tmp_path_factory):
  cfg = demo_world.WorldConfig(num_queries=120, num_docs=500, sessions=2000, seed=3)
  path, meta = demo_world.build(tmp_path_factory.mktemp("world"), cfg)
  return path, meta, store.open_split(path, "test")
