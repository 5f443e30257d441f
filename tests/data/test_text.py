"""Pair tokenization rules and length bucketing (measured on real data in test_pipeline)."""

import numpy as np
import pytest
import transformers

from rankjax.data import schema, text

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
  np.testing.assert_array_equal(
    tokens,
    [
      [cls, *_ids("cheap flights"), sep, *_ids("paris hotel"), sep, 0, 0, 0, 0, 0],
      [cls, *_ids("cheap flights"), sep, *_ids("rome train ticket"), sep, 0, 0, 0, 0],
    ],
  )
  np.testing.assert_array_equal(types, [[0] * 4 + [1] * 3 + [0] * 5, [0] * 4 + [1] * 4 + [0] * 4])
  assert tok.counts == {"pairs": 2}


def test_truncation_rules_are_applied_and_counted(tiny_dir):
  tok = text.PairTokenizer.from_dir(tiny_dir, max_query_tokens=2, max_tokens=8)
  tokens, types = tok.encode("cheap flights to paris", ["hotel rome train ticket city guide", ""])
  # Query keeps 2 pieces; the document gets 8 - 3 - 2 = 3; an empty document is [CLS] q [SEP] [SEP].
  np.testing.assert_array_equal(
    tokens[0], [2, *_ids("cheap flights"), 3, *_ids("hotel rome train"), 3]
  )
  np.testing.assert_array_equal(tokens[1], [2, *_ids("cheap flights"), 3, 3, 0, 0, 0])
  np.testing.assert_array_equal(types[1], [0, 0, 0, 0, 1, 0, 0, 0])
  assert tok.counts == {"pairs": 2, "queries_truncated": 1, "docs_truncated": 1, "empty_docs": 1}


def test_ranking_list_gets_tokens(tiny_dir):
  tok = text.PairTokenizer.from_dir(tiny_dir, max_query_tokens=4, max_tokens=16)
  lst = schema.RankingList(
    "q1", ["d1", "d2", "d3"], query="city guide", doc_texts=["rome", "paris hotel", "train"]
  )
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


def test_width_for_is_the_smallest_bucket_holding_every_token():
  rng = np.random.default_rng(0)
  widths = (16, 40, 64)
  for longest in rng.integers(0, 65, 50):
    w = text.width_for(int(longest), widths)
    assert w >= longest and all(v < longest for v in widths if v < w)
  with pytest.raises(ValueError, match="65 tokens, more than the largest bucket width 64"):
    text.width_for(65, widths)


def test_length_grouped_batches_cover_all_and_reduce_waste():
  rng = np.random.default_rng(0)
  lengths = rng.integers(10, 129, size=1000)
  batches = text.length_grouped_batches(lengths, 16, seed=0)
  np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(1000))
  assert sorted(len(b) for b in batches)[1:] == [16] * (len(batches) - 1)
  widths = text.bucket_widths(lengths, num_buckets=8)
  width = lambda b: text.width_for(lengths[b].max(), widths)
  grouped = sum(width(b) * len(b) for b in batches)
  shuffled = sum(width(b) * len(b) for b in np.array_split(rng.permutation(1000), len(batches)))
  assert grouped < 0.75 * shuffled
  assert text.length_grouped_batches(lengths, 16, seed=0)[0].tolist() == batches[0].tolist()
