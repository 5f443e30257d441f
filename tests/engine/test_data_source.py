"""Where a run's data comes from: `rankjax.engine.data_source.resolve` for every source."""

import pathlib

import pytest
from train_helpers import tiny_config

from rankjax import registry
from rankjax.configs import default as config_defaults
from rankjax.data import store, svmlight
from rankjax.engine import data_source
from rankjax.sim import world

SMALL_WORLD = {"num_queries": 60, "num_docs": 300, "sessions": 600}


def _world_config(cache_dir=""):
  config = config_defaults.default_config()
  config.data.name = data_source.WORLD
  config.data.cache_dir = str(cache_dir)
  config.data.world.update(SMALL_WORLD)
  return config


def test_the_demo_world_is_built_once_under_the_cache_with_its_metadata(tmp_path):
  path, meta = data_source.resolve(_world_config(), tmp_path / "run")
  assert path == tmp_path / "run" / "data" / data_source.WORLD / store.VERSION
  assert meta["world"] == {**config_defaults.default_config().data.world.to_dict(), **SMALL_WORLD}
  assert len(meta["propensities"]) == world.WorldConfig().docs_per_query
  assert set(store.open_split(path, "train").layout["sources"]) == {"click", "llm", "human"}
  # A second run with another workdir and the same cache reads what the first one built.
  shared = _world_config(tmp_path / "run" / "data")
  assert data_source.resolve(shared, tmp_path / "other") == (path, meta)
  assert not (tmp_path / "other").exists()


def test_a_prepared_path_wins_and_has_no_metadata(tmp_path):
  config = _world_config()
  config.data.path = str(tmp_path / "prepared")
  assert data_source.resolve(config, tmp_path) == (pathlib.Path(config.data.path), None)


def test_an_unknown_name_lists_the_sources(tmp_path):
  config = _world_config()
  config.data.name = "msrl_web10k"
  with pytest.raises(
    registry.UnknownName,
    match="'msrl_web10k' is not 'demo_world': unknown "
    f"svmlight dataset 'msrl_web10k'; known: .*{next(iter(svmlight.DATASETS))}",
  ):
    data_source.resolve(config, tmp_path)


@pytest.mark.slow
def test_one_training_run_trains_on_the_demo_world(tmp_path):
  from rankjax.engine import train  # pylint: disable=g-import-not-at-top  (slow import)

  config = tiny_config(
    "",
    total_steps=2,
    **{
      "eval.every": 2,
      "checkpoint.every": 2,
      "data.list_sizes": (10,),
      "data.name": data_source.WORLD,
    },
  )
  config.data.world.update(SMALL_WORLD)
  out = train.train_and_evaluate(config, tmp_path)
  assert out["step"] == 2 and 0 <= out["eval"]["test"]["ndcg@10"]["all"] <= 1
  assert (tmp_path / "data" / data_source.WORLD / store.VERSION).is_dir()
