"""Tests for the input pipeline: padding, masks, determinism, resumable iterator, host slices,
token widths and length-grouped order."""

import shutil

import numpy as np
import pytest
from flax import traverse_util
from train_helpers import tiny_lists

from rankjax.data import pipeline, schema, store, text


@pytest.fixture(scope="module")
def split(tmp_path_factory):
  path = store.write_dataset(
    tmp_path_factory.mktemp("data"), name="tiny", splits={"train": tiny_lists()}
  )
  return store.open_split(path, "train")


def test_make_batch_pads_and_masks(split):
  rec = split[0]
  n = len(rec["doc_ids"])
  batch = pipeline.make_batch([rec], batch_size=2, list_size=32, layout=split.layout)
  assert set(batch) == {
    "mask",
    "features",
    "position",
    "query_freq",
    "bucket",
    "list_valid",
    "label_click",
    "mask_click",
    "label_human",
    "mask_human",
  }
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
  batch = pipeline.make_batch(
    [rec], batch_size=1, list_size=4, layout=split.layout, rng=np.random.default_rng(0)
  )
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
  parts = [
    next(iter(pipeline.train_dataset(split, process_index=p, process_count=2, **kwargs)))
    for p in range(2)
  ]
  for k in whole:
    np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k])


@pytest.mark.parametrize("list_sizes", [(5, 10, 20), (20, 5), (8,)])
def test_list_size_for_is_the_smallest_that_holds_the_list(list_sizes):
  lengths = np.arange(0, 25)
  expected = [min([s for s in list_sizes if s >= n] or [max(list_sizes)]) for n in lengths]
  assert pipeline.list_size_for(lengths, list_sizes).tolist() == expected
  assert [pipeline.list_size_for(int(n), list_sizes) for n in lengths] == expected


def test_eval_batches_cover_each_list_once(split):
  got, sizes = [], []
  for batch, indices in pipeline.eval_batches(split, batch_size=4, list_sizes=(8, 16, 32)):
    assert batch["mask"].shape[0] == 4
    assert batch["list_valid"].tolist() == (indices >= 0).tolist()
    real = indices[indices >= 0]
    assert batch["mask"].sum(1)[: len(real)].tolist() == split.lengths[real].tolist()
    got += indices[indices >= 0].tolist()
    sizes.append(batch["mask"].shape[1])
  assert sorted(got) == list(range(len(split)))
  assert sizes == sorted(sizes)  # lists sorted by padded size: few padding documents
  with pytest.raises(ValueError, match="more than the largest list size 8; add a larger size"):
    list(pipeline.eval_batches(split, batch_size=4, list_sizes=(8,)))


STORED_TOKENS = 48


def token_lists(num_lists=40, seed=0):
  """Lists of pairs with real tokens then padding, lists' longest pairs spread up to 48."""
  rng = np.random.default_rng(seed)
  out = []
  for i in range(num_lists):
    n = int(rng.integers(1, 12))
    cap = (8, 14, 22, STORED_TOKENS)[i % 4]
    lengths = rng.integers(4, cap + 1, n)
    tokens = np.where(
      np.arange(STORED_TOKENS) < lengths[:, None], rng.integers(1, 512, (n, STORED_TOKENS)), 0
    ).astype(np.int32)
    types = ((np.arange(STORED_TOKENS) >= 3) & (tokens != 0)).astype(np.int32)
    out.append(
      schema.RankingList(
        qid=f"q{i}",
        doc_ids=[f"d{i}_{j}" for j in range(n)],
        labels={"click": rng.integers(0, 2, n)},
        positions=np.arange(1, n + 1),
        query_freq=float(i),
        tokens=tokens,
        token_types=types,
      )
    )
  return out


@pytest.fixture(scope="module")
def token_split(tmp_path_factory):
  path = store.write_dataset(
    tmp_path_factory.mktemp("data"),
    name="tok",
    splits={"train": token_lists(), "test": token_lists(9, seed=1)},
  )
  return store.open_split(path, "train")


def _longest(batch):
  return int(text.pair_lengths(batch["tokens"]).max(initial=0))


def test_token_lengths_stored_and_recomputed_for_old_datasets(token_split, tmp_path):
  longest = {l.qid: text.pair_lengths(l.tokens).max() for l in token_lists()}  # not from the store
  expected = [longest[token_split[i]["qid"].decode()] for i in range(len(token_split))]  # its order
  assert token_split.token_lengths.tolist() == expected
  old = tmp_path / "old" / store.VERSION
  shutil.copytree(token_split.path, old)
  (old / "token_lengths-train.npy").unlink()  # a dataset prepared before the file existed
  assert store.open_split(old, "train").token_lengths.tolist() == expected
  store.ensure_dataset(tmp_path, "old", make_splits=None)
  assert np.load(old / "token_lengths-train.npy").tolist() == expected


def test_token_widths(token_split, split):
  widths = pipeline.token_widths(token_split, 4)
  assert widths == tuple(sorted(widths)) and widths[-1] == STORED_TOKENS and len(widths) <= 5
  assert len(widths) >= 3  # most lists are short: the quantiles give smaller widths
  assert pipeline.token_widths(token_split, 1) is None and pipeline.token_widths(split, 4) is None
  with pytest.raises(ValueError, match="stores no tokens"):
    _ = split.token_lengths


def test_make_batch_refuses_to_cut_a_token(token_split):
  i = int(np.argmax(token_split.token_lengths))
  with pytest.raises(ValueError, match=f"list b'q{i}' has a pair longer than the token width 16"):
    pipeline.make_batch(
      [token_split[i]], batch_size=1, list_size=16, layout=token_split.layout, token_width=16
    )


def _assert_trimmed(cut, full, widths):
  """`cut` is `full` with tokens cut to the smallest width holding its longest pair."""
  w = cut["tokens"].shape[-1]
  assert w == text.width_for(_longest(full), widths)
  assert not full["tokens"][..., w:].any() and not full["token_types"][..., w:].any()
  for k in full:
    np.testing.assert_array_equal(cut[k], full[k][..., :w] if k.startswith("token") else full[k])


def test_trimmed_train_batches_equal_untrimmed(token_split):
  widths = pipeline.token_widths(token_split, 4)
  kwargs = dict(batch_size=4, list_sizes=(4, 8, 16), seed=2, num_threads=0)
  full = iter(pipeline.train_dataset(token_split, **kwargs))
  cut = iter(pipeline.train_dataset(token_split, token_widths=widths, **kwargs))
  seen = set()
  for _ in range(25):  # 2.5 epochs
    c = next(cut)
    _assert_trimmed(c, next(full), widths)
    seen.add(c["tokens"].shape[-1])
  assert len(seen) > 1


def test_hosts_choose_the_same_token_width(token_split):
  """The width follows the global batch: a host whose own lists are short still uses it."""
  widths = pipeline.token_widths(token_split, 4)
  kwargs = dict(batch_size=4, list_sizes=(4, 8, 16), seed=5, token_widths=widths, num_threads=0)
  whole = iter(pipeline.train_dataset(token_split, **kwargs))
  hosts = [
    iter(pipeline.train_dataset(token_split, process_index=p, process_count=2, **kwargs))
    for p in range(2)
  ]
  local_would_differ = 0
  for _ in range(20):
    w, parts = next(whole), [next(h) for h in hosts]
    for k in w:
      np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), w[k])
    local_would_differ += len({text.width_for(_longest(p), widths) for p in parts}) > 1
  assert local_would_differ  # so the test would catch widths picked from local records


def test_eval_batches_trimmed_cover_each_list_once_on_two_hosts(token_split):
  test = store.open_split(token_split.path, "test")
  widths = pipeline.token_widths(token_split, 4)  # the training split's, as train.py does
  kwargs = dict(batch_size=4, list_sizes=(16,))
  full = list(pipeline.eval_batches(test, **kwargs))
  hosts = [
    list(
      pipeline.eval_batches(test, token_widths=widths, process_index=p, process_count=2, **kwargs)
    )
    for p in range(2)
  ]
  got = []
  for (f, indices), *parts in zip(full, *hosts):
    cut = {k: np.concatenate([p[0][k] for p in parts]) for k in f}
    _assert_trimmed(cut, f, widths)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), indices)
    got += indices[indices >= 0].tolist()
  assert sorted(got) == list(range(len(test)))


def _assert_resumes(split, kwargs, steps=12, at=5):
  first = [next(it) for it in [iter(pipeline.train_dataset(split, **kwargs))] for _ in range(steps)]
  it = iter(pipeline.train_dataset(split, **kwargs))
  for _ in range(at):
    next(it)
  resumed = iter(pipeline.train_dataset(split, **kwargs))
  resumed.set_state(it.get_state())
  for a in first[at:]:
    b = next(resumed)
    assert all(np.array_equal(a[k], b[k]) for k in a)
  return first


def test_length_grouped_order_resumable_covers_epochs_and_cuts_waste(token_split):
  widths = pipeline.token_widths(token_split, 4)
  kwargs = dict(batch_size=4, list_sizes=(16,), seed=7, token_widths=widths, num_threads=0)
  grouped = _assert_resumes(token_split, {**kwargs, "length_grouped": True}, steps=30, at=13)
  for epoch in (grouped[:10], grouped[10:20], grouped[20:]):  # 40 lists = 10 batches of 4
    assert sorted(np.concatenate([b["query_freq"] for b in epoch]).tolist()) == list(range(40))
    for b in epoch:
      _assert_trimmed(
        b,
        {
          **b,
          "tokens": np.pad(b["tokens"], ((0, 0),) * 2 + ((0, 8),)),
          "token_types": np.pad(b["token_types"], ((0, 0),) * 2 + ((0, 8),)),
        },
        widths,
      )
  assert [b["query_freq"].tolist() for b in grouped[:10]] != [
    b["query_freq"].tolist() for b in grouped[10:20]
  ]  # a new order each epoch
  shuffled = [
    b
    for it in [iter(pipeline.train_dataset(token_split, **kwargs))]
    for b in (next(it) for _ in range(30))
  ]
  waste = lambda bs: np.mean([text.padding_waste(b["tokens"], b["mask"]) for b in bs])
  assert waste(grouped) < waste(shuffled)
  hosts = [
    iter(
      pipeline.train_dataset(
        token_split, process_index=p, process_count=2, length_grouped=True, **kwargs
      )
    )
    for p in range(2)
  ]
  for b in grouped[:10]:
    parts = [next(h) for h in hosts]
    for k in b:
      np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), b[k])


def test_length_grouped_batches_share_a_list_size(tmp_path):
  """Feature data too: lists of one padded list size go together, so batches pad few documents;
  every list still comes once per epoch, in a new order each epoch, and the order resumes."""
  path = store.write_dataset(tmp_path, name="tiny", splits={"train": tiny_lists(64, seed=5)})
  split = store.open_split(path, "train")
  kwargs = dict(batch_size=4, list_sizes=(5, 10, 20), seed=3, num_threads=0)
  grouped = _assert_resumes(split, {**kwargs, "length_grouped": True}, steps=32, at=11)
  for epoch in (grouped[:16], grouped[16:]):
    assert sorted(np.concatenate([b["query_freq"] for b in epoch]).tolist()) == list(range(64))
  assert [b["query_freq"].tolist() for b in grouped[:16]] != [
    b["query_freq"].tolist() for b in grouped[16:]
  ]
  sizes = lambda b: {pipeline.list_size_for(int(n), (5, 10, 20)) for n in b["mask"].sum(1)}
  assert sum(len(sizes(b)) > 1 for b in grouped) <= 2 * 2  # at most 2 mixed batches an epoch
  shuffled = [
    b
    for it in [iter(pipeline.train_dataset(split, **kwargs))]
    for b in (next(it) for _ in range(32))
  ]
  padding = lambda bs: 1 - sum(b["mask"].sum() for b in bs) / sum(b["mask"].size for b in bs)
  assert padding(grouped) < padding(shuffled) - 0.1


@pytest.mark.slow
def test_padding_waste_on_trec_session(shared_data, minilm_dir, tmp_path):
  """The real TREC Session 2012 + 2013 lists, prepared with MiniLM's tokenizer at 128 tokens, as
  configs/trec_cross_encoder.py reads them: token widths alone barely cut padding at 4 lists per
  batch (nearly every batch has a list with a 128-token pair), length-grouped batches do; and they
  cut the padding documents, which the encoder reads as well (one long list pads a whole batch)."""
  from rankjax.cli.data import main as data_main  # pylint: disable=g-import-not-at-top

  d = shared_data("trec_session_2012_2013")
  data_main(
    [
      "prepare",
      "--format",
      "trec-session",
      str(d / "sessiontrack2012.xml"),
      str(d / "sessiontrack2013.xml"),
      "--split-by",
      "topic",
      "--test-fraction",
      "0.3",
      "--validation-fraction",
      "0",
      "--tokenizer",
      minilm_dir,
      "--max-tokens",
      "128",
      "--max-query-tokens",
      "16",
      "--output",
      str(tmp_path),
      "--name",
      "trec",
      "--quiet",
    ]
  )
  train = store.open_split(tmp_path / "trec" / store.VERSION, "train")
  widths = pipeline.token_widths(train, 4)

  def waste(batch_size, **more):
    """(padding share of real documents' token slots, encoded sequences per list)."""
    it = iter(
      pipeline.train_dataset(
        train, batch_size=batch_size, list_sizes=(10, 20, 56), seed=0, num_threads=0, **more
      )
    )
    batches = [next(it) for _ in range(3 * len(train) // batch_size)]
    slots = sum(b["mask"].sum() * b["tokens"].shape[-1] for b in batches)
    tokens = 1 - sum(text.pair_lengths(b["tokens"])[b["mask"]].sum() for b in batches) / slots
    return tokens, sum(b["mask"].size for b in batches) / (len(batches) * batch_size)

  report = {
    (b, name): waste(b, **more)
    for b in (4, 16)
    for name, more in [
      ("width 128", {}),
      ("cut to widths", {"token_widths": widths}),
      ("length-grouped", {"token_widths": widths, "length_grouped": True}),
    ]
  }
  print(
    f"TREC train, {len(train)} lists ({train.lengths.mean():.2f} documents on average); "
    f"widths {widths}; (token padding of real documents, documents encoded per list): "
    + "; ".join(f"batch {b} {name} ({t:.1%}, {n:.1f})" for (b, name), (t, n) in report.items())
  )
  assert len(train) > 400 and widths[-1] == 128 and len(widths) > 1
  fixed, trimmed, grouped = (
    report[4, n][0] for n in ("width 128", "cut to widths", "length-grouped")
  )
  assert grouped < trimmed <= fixed and grouped < fixed - 0.05
  for b in (4, 16):  # far fewer padding documents, down to near the mean list length
    assert report[b, "length-grouped"][1] < 0.8 * report[b, "cut to widths"][1]
    assert report[b, "length-grouped"][1] < 1.3 * train.lengths.mean()


@pytest.mark.slow
def test_training_with_token_widths_matches_full_width(token_split, tmp_path):
  """`train_and_evaluate` with cut token arrays trains the same cross-encoder as at full width."""
  import jax  # pylint: disable=g-import-not-at-top
  from train_helpers import load_config  # pylint: disable=g-import-not-at-top

  from rankjax.engine import train  # pylint: disable=g-import-not-at-top

  config = load_config()
  config.data.path, config.data.list_sizes, config.data.batch_size = str(token_split.path), (16,), 4
  config.model = {"name": "cross_encoder", "size": "tiny", "dropout": 0.0}  # dropout masks: [.., T]
  config.supervision.source = config.eval.label_source = "click"
  config.total_steps = config.eval.every = config.checkpoint.every = 6
  config.eval.splits, config.checkpoint.best_metric = ("test",), ""
  out = {}
  for buckets in (0, 4):
    config.data.token_buckets = buckets
    out[buckets] = train.train_and_evaluate(config, tmp_path / str(buckets))
  assert out[4]["step"] == 6
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  # The softmax loss does not change when every score shifts, so the head bias's gradient is only
  # rounding noise (which depends on the array widths), and Adam turns noise into steps of about
  # lr: that one parameter is not compared.
  cut, full = (traverse_util.flatten_dict(out[b]["state"].params) for b in (4, 0))
  assert cut.pop(("classifier", "bias")).shape == full.pop(("classifier", "bias")).shape == (1,)
  jax.tree.map(close, cut, full)
  jax.tree.map(close, out[4]["eval"], out[0]["eval"])
