"""Pair tokenization rules, bucketing and measured padding waste."""

import numpy as np
import pytest
import transformers

from rankjax import text
from rankjax.data import schema

WORDS = ["cheap", "flights", "to", "paris", "hotel", "rome", "train", "ticket", "city", "guide"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
  """A local HF tokenizer directory: a 15-entry WordPiece vocabulary, saved and reloaded."""
  d = tmp_path_factory.mktemp("tok")
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
  transformers.BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(str(d))
  return d


def _ids(words):
  return [5 + WORDS.index(w) for w in words.split()]


def test_pair_layout_and_segments(tiny_dir):
  tok = text.PairTokenizer.from_dir(tiny_dir, max_query_tokens=4, max_tokens=12)
  tokens, types = tok.encode("cheap flights", ["paris hotel", "rome train ticket"])
  cls, sep = 2, 3
  np.testing.assert_array_equal(tokens, [
      [cls, *_ids("cheap flights"), sep, *_ids("paris hotel"), sep, 0, 0, 0, 0, 0],
      [cls, *_ids("cheap flights"), sep, *_ids("rome train ticket"), sep, 0, 0, 0, 0]])
  np.testing.assert_array_equal(types, [[0] * 4 + [1] * 3 + [0] * 5, [0] * 4 + [1] * 4 + [0] * 4])
  assert tok.counts == {"pairs": 2}


def test_truncation_rules_are_applied_and_counted(tiny_dir):
  tok = text.PairTokenizer.from_dir(tiny_dir, max_query_tokens=2, max_tokens=8)
  tokens, types = tok.encode("cheap flights to paris", ["hotel rome train ticket city guide", ""])
  # Query keeps 2 pieces; the document gets 8 - 3 - 2 = 3; an empty document is [CLS] q [SEP] [SEP].
  np.testing.assert_array_equal(tokens[0],
                                [2, *_ids("cheap flights"), 3, *_ids("hotel rome train"), 3])
  np.testing.assert_array_equal(tokens[1], [2, *_ids("cheap flights"), 3, 3, 0, 0, 0])
  np.testing.assert_array_equal(types[1], [0, 0, 0, 0, 1, 0, 0, 0])
  assert tok.counts == {"pairs": 2, "queries_truncated": 1, "docs_truncated": 1, "empty_docs": 1}


def test_ranking_list_gets_tokens(tiny_dir):
  tok = text.PairTokenizer.from_dir(tiny_dir, max_query_tokens=4, max_tokens=16)
  lst = schema.RankingList("q1", ["d1", "d2", "d3"], query="city guide",
                           doc_texts=["rome", "paris hotel", "train"])
  out = tok(lst)
  assert out.tokens.shape == out.token_types.shape == (3, 16)
  assert out.tokens.dtype == np.int32 and lst.tokens is None
  with pytest.raises(ValueError, match="list 'q2': no query text"):
    tok(schema.RankingList("q2", ["d1"], doc_texts=["rome"]))


def test_tokenizer_checks(tiny_dir):
  with pytest.raises(ValueError, match="no room"):
    text.PairTokenizer.from_dir(tiny_dir, max_query_tokens=8, max_tokens=10)
  bad = transformers.AutoTokenizer.from_pretrained(str(tiny_dir))
  bad.pad_token = "[MASK]"
  with pytest.raises(ValueError, match="padding id is 4"):
    text.PairTokenizer(bad)


def test_minilm_matches_hf_pair_encoding(minilm_dir):
  tok = text.PairTokenizer.from_dir(minilm_dir, max_query_tokens=32, max_tokens=64)
  query, doc = "what is a cross-encoder?", "A cross-encoder reads the query and document together."
  tokens, types = tok.encode(query, [doc])
  ref = tok.tokenizer(query, doc)
  n = len(ref["input_ids"])
  np.testing.assert_array_equal(tokens[0, :n], ref["input_ids"])
  np.testing.assert_array_equal(types[0, :n], ref["token_type_ids"])
  assert not tokens[0, n:].any()


def test_trim_to_bucket_keeps_every_token():
  rng = np.random.default_rng(0)
  lengths = rng.integers(5, 40, size=(3, 4))
  tokens = np.where(np.arange(64) < lengths[..., None], rng.integers(1, 99, (3, 4, 64)), 0)
  batch = {"tokens": tokens, "token_types": (tokens > 50).astype(np.int32), "mask": np.ones((3, 4))}
  out = text.trim_to_bucket(batch, (16, 40, 64))
  assert out["tokens"].shape[-1] == 40 and out["mask"] is batch["mask"]
  np.testing.assert_array_equal(out["tokens"], tokens[..., :40])
  with pytest.raises(ValueError, match="more than the largest bucket width 32"):
    text.trim_to_bucket(batch, (16, 32))


def test_length_grouped_batches_cover_all_and_reduce_waste():
  rng = np.random.default_rng(0)
  lengths = rng.integers(10, 129, size=1000)
  batches = text.length_grouped_batches(lengths, 16, seed=0)
  np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(1000))
  assert sorted(len(b) for b in batches)[1:] == [16] * (len(batches) - 1)
  widths = text.bucket_widths(lengths, num_buckets=8)
  width = lambda b: min(w for w in widths if w >= lengths[b].max())
  grouped = sum(width(b) * len(b) for b in batches)
  shuffled = sum(width(b) * len(b) for b in np.array_split(rng.permutation(1000), len(batches)))
  assert grouped < 0.75 * shuffled
  assert text.length_grouped_batches(lengths, 16, seed=0)[0].tolist() == batches[0].tolist()


@pytest.mark.slow
def test_padding_waste_on_trec_session_pairs(shared_data, minilm_dir):
  """Measured on the real TREC Session 2012 + 2013 result lists: bucketing cuts the padding."""
  from rankjax.data.readers.common import ReadSummary  # pylint: disable=g-import-not-at-top
  from rankjax.data.readers.trec import read_trec_session  # pylint: disable=g-import-not-at-top
  tok = text.PairTokenizer.from_dir(minilm_dir, max_query_tokens=16, max_tokens=128)
  lists = [tok.encode(it.query, it.doc_texts)[0] for year in (2012, 2013)
           for s in read_trec_session(shared_data("trec_session_2012_2013",
                                                  f"sessiontrack{year}.xml"), ReadSummary())
           for it in s.interactions if it.query and it.doc_texts]
  assert len(lists) > 500 and tok.counts["pairs"] > 6000
  list_len = np.array([text.pair_lengths(t).max() for t in lists])
  widths = text.bucket_widths(list_len)
  l = max(len(t) for t in lists)

  def waste(batch_indices, trim):
    slots = real = 0
    for b in batch_indices:
      tokens = np.zeros((len(b), l, 128), np.int32)
      mask = np.zeros((len(b), l), bool)
      for i, j in enumerate(b):
        tokens[i, :len(lists[j])], mask[i, :len(lists[j])] = lists[j], True
      if trim:
        tokens = text.trim_to_bucket({"tokens": tokens, "token_types": tokens}, widths)["tokens"]
      slots += mask.sum() * tokens.shape[-1]
      real += text.pair_lengths(tokens)[mask].sum()
    return 1 - real / slots

  shuffled = np.array_split(np.random.default_rng(0).permutation(len(lists)), len(lists) // 16)
  fixed, trimmed = waste(shuffled, trim=False), waste(shuffled, trim=True)
  grouped = waste(text.length_grouped_batches(list_len, 16, seed=0, pool=8), trim=True)
  print(f"TREC 2012+2013, {len(lists)} lists of 16: {dict(tok.counts)}; widths {widths}; "
        f"padding waste: fixed width 128 {fixed:.1%}, shuffled batches trimmed {trimmed:.1%}, "
        f"length-grouped and trimmed {grouped:.1%}")
  assert grouped < trimmed <= fixed
