"""Where a run's data comes from: `rankjax.engine.data_source.resolve` for every source."""

import pathlib

import numpy as np
import pytest
from train_helpers import tiny_config

from rankjax import registry
from rankjax.configs import default as config_defaults
from rankjax.data import schema, splits, store, svmlight
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
    match="config.data.name 'msrl_web10k' is not 'demo_world', nor a known svmlight dataset "
    f"\\(.*{next(iter(svmlight.DATASETS))}.*\\), nor a path to a prepared dataset directory or a "
    "LETOR / svmlight file",
  ):
    data_source.resolve(config, tmp_path)
  config.data.name = str(tmp_path / "nothing")
  with pytest.raises(FileNotFoundError, match="nothing': no such file or directory"):
    data_source.resolve(config, tmp_path)


def _lists(qids, width=3):
  rng = np.random.default_rng(0)
  return [
    schema.RankingList(
      qid=q,
      doc_ids=[f"{q}-{k}" for k in range(4)],
      labels={"human": rng.integers(0, 3, 4).astype(np.float32)},
      features=rng.random((4, width), dtype=np.float32),
    )
    for q in qids
  ]


def test_a_directory_holding_one_prepared_dataset_is_a_name(tmp_path):
  """`prepare --output DIR` as `config.data.name=DIR`: the one dataset in it, or it named."""
  config = _world_config()
  path = store.write_dataset(tmp_path / "out", name="mine", splits={"train": _lists(["a"])})
  for name in (tmp_path / "out", tmp_path / "out" / "mine", path):
    config.data.name = str(name)
    assert data_source.resolve(config, tmp_path / "run") == (path, None)
  store.write_dataset(tmp_path / "out", name="other", splits={"train": _lists(["b"])})
  config.data.name = str(tmp_path / "out")
  with pytest.raises(FileNotFoundError, match="holds several prepared datasets \\(mine, other\\)"):
    data_source.resolve(config, tmp_path / "run")


def _write_letor(path, lists):
  path.write_text(
    "".join(
      f"{int(y)} qid:{x.qid} "
      + " ".join(f"{j + 1}:{v:.3f}" for j, v in enumerate(row))
      + f" # docid = {d}\n"
      for x in lists
      for y, row, d in zip(x.labels["human"], x.features, x.doc_ids)
    )
  )


def test_a_letor_file_is_split_by_query_and_prepared_once(tmp_path):
  qids = [f"q{i}" for i in range(30)]
  _write_letor(tmp_path / "my.txt", _lists(qids))
  config = _world_config(tmp_path / "cache")
  config.data.name = str(tmp_path / "my.txt")
  path, meta = data_source.resolve(config, tmp_path / "run")
  assert meta is None and path.parent.parent == tmp_path / "cache"
  want = splits.by_unit({q: q for q in qids}, 0.2, 0.1)
  for name in ("train", "validation", "test"):
    split = store.open_split(path, name)
    got = sorted(split[i]["qid"].decode() for i in range(len(split)))
    assert got == sorted(q for q in qids if want[q] == name) and got, name
  assert data_source.resolve(config, tmp_path / "run") == (path, None)  # the cached one


def test_a_letor_fold_directory_gives_its_three_files(tmp_path):
  for name, qids in {"train.txt": ["a", "b"], "vali.txt": ["c"], "test.txt": ["d"]}.items():
    _write_letor(tmp_path / name, _lists(qids))
  config = _world_config(tmp_path / "cache")
  config.data.name = str(tmp_path)
  path, _ = data_source.resolve(config, tmp_path / "run")
  got = {s: store.open_split(path, s) for s in ("train", "validation", "test")}
  got = {s: sorted(x[i]["qid"].decode() for i in range(len(x))) for s, x in got.items()}
  assert got == {"train": ["a", "b"], "validation": ["c"], "test": ["d"]}
  (tmp_path / "test.txt").unlink()
  with pytest.raises(FileNotFoundError, match="not a LETOR fold directory \\(no test.txt\\)"):
    data_source.resolve(config, tmp_path / "run")


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
