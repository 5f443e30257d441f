"""Tests for the input pipeline: padding, masks, determinism, resumable iterator, host slices."""

import numpy as np
import pytest

from rankjax.data import pipeline, schema, store


def tiny_lists(num_lists=13, max_len=20, num_features=4, seed=0):
  """Random lists of varying length with click labels everywhere and human labels on some."""
  rng = np.random.default_rng(seed)
  out = []
  for i in range(num_lists):
    n = int(rng.integers(1, max_len + 1))
    human = rng.integers(0, 5, n).astype(np.float32)
    human[rng.uniform(size=n) < 0.3] = np.nan
    out.append(schema.RankingList(
        qid=f"q{i}", doc_ids=[f"d{i}_{j}" for j in range(n)],
        labels={"click": rng.integers(0, 2, n), "human": human},
        positions=np.arange(1, n + 1), query_freq=float(i), bucket=i % 4 - 1,
        features=rng.normal(size=(n, num_features))))
  return out


@pytest.fixture(scope="module")
def split(tmp_path_factory):
  path = store.write_dataset(tmp_path_factory.mktemp("data"), name="tiny",
                             splits={"train": tiny_lists()})
  return store.open_split(path, "train")


def test_make_batch_pads_and_masks(split):
  rec = split[0]
  n = len(rec["doc_ids"])
  batch = pipeline.make_batch([rec], batch_size=2, list_size=32, layout=split.layout)
  assert set(batch) == {"mask", "features", "position", "query_freq", "bucket", "list_valid",
                        "label_click", "mask_click", "label_human", "mask_human"}
  assert set(schema.BATCH_KEYS) - {"tokens", "token_types"} <= set(batch)
  assert batch["features"].shape == (2, 32, 4)
  assert batch["mask"][0].sum() == n and not batch["mask"][1].any()
  assert batch["list_valid"].tolist() == [True, False]
  human = rec["label_human"]
  np.testing.assert_array_equal(batch["mask_human"][0, :n], ~np.isnan(human))
  np.testing.assert_array_equal(batch["label_human"][0, :n], np.nan_to_num(human, nan=0))
  assert not batch["mask_human"][0, n:].any() and batch["bucket"][1] == -1


def test_long_list_subsampled_only_with_rng(split):
  i = int(np.argmax(split.lengths))
  rec = split[i]
  with pytest.raises(ValueError, match="more than the largest list size 4"):
    pipeline.make_batch([rec], batch_size=1, list_size=4, layout=split.layout)
  batch = pipeline.make_batch([rec], batch_size=1, list_size=4, layout=split.layout,
                              rng=np.random.default_rng(0))
  assert batch["mask"].sum() == 4
  # The kept items are real rows of the list, in their original order.
  rows = [np.flatnonzero((rec["features"] == f).all(1))[0] for f in batch["features"][0]]
  assert rows == sorted(rows)


def test_train_stream_deterministic_bounded_shapes_and_resumable(split):
  kwargs = dict(batch_size=4, list_sizes=(8, 16, 32), seed=3, num_threads=0)
  it = iter(pipeline.train_dataset(split, **kwargs))
  first = [next(it) for _ in range(10)]
  assert {b["mask"].shape[1] for b in first} <= {8, 16, 32}
  again = iter(pipeline.train_dataset(split, **kwargs))
  for a, b in zip(first, [next(again) for _ in range(10)]):
    assert all(np.array_equal(a[k], b[k]) for k in a)
  it2 = iter(pipeline.train_dataset(split, **kwargs))
  for _ in range(6):
    next(it2)
  state = it2.get_state()
  resumed = iter(pipeline.train_dataset(split, **kwargs))
  resumed.set_state(state)
  for a in first[6:]:
    b = next(resumed)
    assert all(np.array_equal(a[k], b[k]) for k in a)
  # Each epoch (13 lists, 3.25 batches) is a permutation; different seeds differ.
  other = next(iter(pipeline.train_dataset(split, **{**kwargs, "seed": 4})))
  assert not np.array_equal(other["query_freq"], first[0]["query_freq"])
  seen = np.concatenate([b["query_freq"] for b in first[:3]])
  assert len(set(seen.tolist())) == 12


def test_hosts_split_each_global_batch(split):
  kwargs = dict(batch_size=4, list_sizes=(8, 16, 32), seed=1, num_threads=0)
  whole = next(iter(pipeline.train_dataset(split, **kwargs)))
  parts = [next(iter(pipeline.train_dataset(split, process_index=p, process_count=2, **kwargs)))
           for p in range(2)]
  for k in whole:
    np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k])


def test_eval_batches_cover_each_list_once(split):
  got = []
  for batch, indices in pipeline.eval_batches(split, batch_size=4, list_sizes=(8, 16, 32)):
    assert batch["mask"].shape[0] == 4
    assert batch["list_valid"].tolist() == (indices >= 0).tolist()
    got += indices[indices >= 0].tolist()
  assert got == list(range(len(split)))
  with pytest.raises(ValueError, match="more than the largest list size 8; add a larger size"):
    list(pipeline.eval_batches(split, batch_size=4, list_sizes=(8,)))
