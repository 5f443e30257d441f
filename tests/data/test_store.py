"""Tests for prepared datasets (tfds array_record, read without TensorFlow)."""

import importlib.util

import numpy as np
import pytest
import tensorflow_datasets as tfds

from rankjax.data import schema, store


def _lists(n=5, f=3):
  rng = np.random.default_rng(0)
  out = []
  for i in range(n):
    k = i + 1
    human = np.full(k, np.nan, np.float32)
    human[0] = 2
    out.append(
      schema.RankingList(
        qid=f"q{i}",
        doc_ids=[f"d{i}_{j}" for j in range(k)],
        labels={"click": rng.integers(0, 2, k), "human": human},
        positions=np.arange(1, k + 1),
        query_freq=float(i),
        bucket=i % 3,
        features=rng.normal(size=(k, f)),
        extras={"ctr": rng.uniform(size=k)},
      )
    )
  return out


def test_round_trip(tmp_path):
  lists = _lists()
  path = store.write_dataset(tmp_path, name="tiny", splits={"train": lists, "test": lists[:2]})
  assert importlib.util.find_spec("tensorflow") is None
  split = store.open_split(path, "train")
  assert len(split) == 5 and split.layout["sources"] == ["click", "human"]
  by_qid = {split[i]["qid"].decode(): (split[i], split.lengths[i]) for i in range(len(split))}
  for lst in lists:
    rec, n = by_qid[lst.qid]
    assert n == len(lst)
    assert [d.decode() for d in rec["doc_ids"]] == lst.doc_ids
    np.testing.assert_array_equal(rec["features"], lst.features)
    np.testing.assert_array_equal(rec["label_human"], lst.labels["human"])  # NaN kept
    np.testing.assert_array_equal(rec["extra_ctr"], lst.extras["ctr"])
    assert rec["bucket"] == lst.bucket and rec["query_freq"] == lst.query_freq
  # Plain tfds reads it too.
  assert len(tfds.data_source("tiny", data_dir=str(tmp_path))["test"]) == 2


def test_list_that_does_not_fit_names_it(tmp_path):
  lists = _lists()
  lists[3].features = lists[3].features[:, :2]
  with pytest.raises(ValueError, match="split 'train', list 'q3': features shape"):
    store.write_dataset(tmp_path, name="bad", splits={"train": lists})


def test_duplicate_qid_is_an_error(tmp_path):
  lists = _lists(2)
  with pytest.raises(ValueError, match="qid 'q1' occurs twice"):
    store.write_dataset(tmp_path, name="dup", splits={"train": lists + lists[1:]})


def test_ensure_dataset_writes_once(tmp_path):
  calls = []

  def make():
    calls.append(1)
    return {"train": _lists(2)}

  p1 = store.ensure_dataset(tmp_path, "once", make)
  p2 = store.ensure_dataset(tmp_path, "once", make)
  assert p1 == p2 and len(calls) == 1
  (p1 / "list_lengths-train.npy").unlink()  # killed before the lengths were written
  assert store.open_split(store.ensure_dataset(tmp_path, "once", make), "train").lengths.tolist()


def test_writing_leaves_no_temporary_directory(tmp_path, monkeypatch):
  scratch = tmp_path / "tmp"
  scratch.mkdir()
  monkeypatch.setattr("tempfile.tempdir", str(scratch))
  store.write_dataset(tmp_path / "data", name="tiny", splits={"train": _lists()})
  assert list(scratch.iterdir()) == []


def test_opening_a_directory_that_is_no_dataset_says_so(tmp_path):
  with pytest.raises(FileNotFoundError, match=f"{tmp_path}: not a prepared dataset"):
    store.open_split(tmp_path, "train")
