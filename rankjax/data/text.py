"""Text pipeline for cross-encoders: (query, document) pairs -> token ids, and length bucketing.

Pair layout (BERT family), right-padded with 0 to the fixed width `max_tokens` that the prepared
dataset stores (`RankingList.tokens` / `token_types`, int32 [n, max_tokens]):

  tokens       [CLS] q_1 .. q_a [SEP] d_1 .. d_b [SEP] 0 .. 0
  token_types    0    0  ..  0    0    1  ..  1    1   0 .. 0

Truncation rules, in this order (each truncation is counted in `PairTokenizer.counts`):
  1. the query keeps its first `max_query_tokens` word pieces (a <= max_query_tokens);
  2. the document keeps its first `max_tokens - 3 - a` word pieces.

Length bucketing: most pairs are shorter than `max_tokens`. `bucket_widths` picks a few widths from
pair-length quantiles (multiples of 8), the input pipeline (`rankjax.data.pipeline`) cuts each
batch's token arrays to `width_for` its longest pair (so jit compiles at most `len(widths)` shapes),
and `length_grouped_batches` puts lists of similar length in the same batch so cutting pays off.
`padding_waste` measures the share of token slots of real documents that hold padding.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import pathlib
import re
from collections.abc import Sequence

import numpy as np

from rankjax.data import schema

# What `PairTokenizer.save_rules` writes in a prepared dataset: the tokenizer and truncation rules.
RULES_FILE = "tokenizer.json"


class PairTokenizer:
  """Tokenizes (query, document) pairs of `RankingList`s with a Hugging Face tokenizer.

  Attributes:
    tokenizer: a `transformers` tokenizer with [CLS]/[SEP] tokens and padding id 0.
    max_query_tokens: word pieces kept from the query.
    max_tokens: total pair length, special tokens included; the stored width.
    counts: "lists", "pairs", "queries_truncated", "docs_truncated", "empty_docs".
  """

  def __init__(
    self, tokenizer, *, max_query_tokens: int = 32, max_tokens: int = 128, name: str = "tokenizer"
  ):
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
      raise ValueError(f"{name}: needs [CLS] and [SEP] tokens (a BERT-family tokenizer)")
    if tokenizer.pad_token_id != 0:
      raise ValueError(
        f"{name}: padding id is {tokenizer.pad_token_id}; rankjax stores token id "
        "0 as padding, so the tokenizer's padding id must be 0"
      )
    if max_tokens < max_query_tokens + 4:
      raise ValueError(
        f"max_tokens {max_tokens} leaves no room for a document after "
        f"max_query_tokens {max_query_tokens} and 3 special tokens"
      )
    self.tokenizer = tokenizer
    self.max_query_tokens = max_query_tokens
    self.max_tokens = max_tokens
    self.counts = collections.Counter()

  @classmethod
  def from_dir(cls, hf_dir: str | pathlib.Path, **rules) -> PairTokenizer:
    """The tokenizer of a local Hugging Face model directory (`AutoTokenizer`, no download)."""
    import transformers  # pylint: disable=g-import-not-at-top  (slow import)

    tok = transformers.AutoTokenizer.from_pretrained(str(hf_dir), local_files_only=True)
    return cls(tok, name=str(hf_dir), **rules)

  def save_rules(self, directory: str | pathlib.Path, source: str | pathlib.Path):
    """Records in `directory` (a prepared dataset) the tokenizer `source` and the truncation rules,
    as `RULES_FILE`, so that new text is later tokenized as the dataset was."""
    rules = {
      "tokenizer": str(pathlib.Path(source).resolve()),
      "max_tokens": self.max_tokens,
      "max_query_tokens": self.max_query_tokens,
    }
    (pathlib.Path(directory) / RULES_FILE).write_text(json.dumps(rules, indent=1))

  def encode(self, query: str, docs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """int32 tokens and token_types [len(docs), max_tokens] of the pairs (query, doc)."""
    # verbose=False: HF warns about pieces past model_max_length, which truncation below removes.
    ids = self.tokenizer([query, *docs], add_special_tokens=False, verbose=False)["input_ids"]
    q, doc_ids = ids[0], ids[1:]
    if len(q) > self.max_query_tokens:
      self.counts["queries_truncated"] += 1
      q = q[: self.max_query_tokens]
    room = self.max_tokens - 3 - len(q)
    tokens = np.zeros((len(docs), self.max_tokens), np.int32)
    types = np.zeros((len(docs), self.max_tokens), np.int32)
    head = [self.tokenizer.cls_token_id, *q, self.tokenizer.sep_token_id]
    for i, d in enumerate(doc_ids):
      if len(d) > room:
        self.counts["docs_truncated"] += 1
      if not d:
        self.counts["empty_docs"] += 1
      pair = head + d[:room] + [self.tokenizer.sep_token_id]
      tokens[i, : len(pair)] = pair
      types[i, len(head) : len(pair)] = 1
    self.counts["pairs"] += len(docs)
    return tokens, types

  def __call__(self, lst: schema.RankingList) -> schema.RankingList:
    """`lst` with `tokens` and `token_types` from its `query` and `doc_texts`."""
    if lst.query is None or lst.doc_texts is None:
      raise ValueError(f"list {lst.qid!r}: no query text or doc_texts to tokenize")
    tokens, types = self.encode(lst.query, lst.doc_texts)
    self.counts["lists"] += 1
    return dataclasses.replace(lst, tokens=tokens, token_types=types)


_TERM = re.compile(r"[\u3400-\u9fff]|\w+")  # CJK characters one by one, other words whole


def terms(text: str) -> list[str]:
  """The terms of a text for lexical matching, lower case: CJK characters one by one (no
  segmenter needed), other words whole.

  >>> terms("Jaguar 北京")
  ['jaguar', '北', '京']
  """
  return _TERM.findall(text.lower())


def pair_lengths(tokens: np.ndarray) -> np.ndarray:
  """Real (non-padding) tokens of each pair: int [...] from tokens [..., T]."""
  return (np.asarray(tokens) != 0).sum(-1)


def bucket_widths(lengths: np.ndarray, num_buckets: int = 4, multiple: int = 8) -> tuple[int, ...]:
  """Token widths at the length quantiles k/num_buckets, rounded up to `multiple`.

  The last width holds the longest length, so every pair fits a bucket.

  >>> bucket_widths(np.array([10, 20, 30, 40, 60, 100, 120, 128]), num_buckets=4)
  (32, 64, 120, 128)
  """
  lengths = np.asarray(lengths)
  if lengths.size == 0:
    raise ValueError("bucket_widths needs at least one length")
  q = np.quantile(lengths, np.arange(1, num_buckets + 1) / num_buckets, method="higher")
  return tuple(sorted({int(-(-x // multiple) * multiple) for x in q}))


def width_for(longest: int, widths: Sequence[int]) -> int:
  """The smallest of `widths` that holds a pair of `longest` tokens.

  >>> width_for(20, (16, 32, 64)), width_for(32, (16, 32, 64))
  (32, 32)
  """
  fits = [w for w in sorted(widths) if w >= longest]
  if not fits:
    raise ValueError(
      f"a pair has {longest} tokens, more than the largest bucket width {max(widths)}"
    )
  return fits[0]


def length_grouped_batches(
  list_lengths: np.ndarray,
  batch_size: int,
  *,
  seed: int | Sequence[int],
  pool: int = 32,
  groups: np.ndarray | None = None,
) -> list[np.ndarray]:
  """Batches of list indices with similar lengths, in random order.

  Indices are shuffled, cut into pools of `pool * batch_size`, each pool sorted by (group, length)
  and cut into batches; the batch order is shuffled. Every index appears once; the last batch may
  be short.

  Args:
    list_lengths: [num_lists] each list's longest pair (`pair_lengths(tokens).max()`), or zeros.
    batch_size: lists per batch.
    seed: shuffle seed (anything `np.random.default_rng` takes).
    pool: batches per sorting pool (larger: less padding, less randomness).
    groups: [num_lists] an optional first sort key, e.g. the padded list size of each list, so
      that a batch also pads few documents.
  """
  rng = np.random.default_rng(seed)
  order = rng.permutation(len(list_lengths))
  lengths = np.asarray(list_lengths)
  groups = np.zeros_like(lengths) if groups is None else np.asarray(groups)
  batches = []
  for start in range(0, len(order), pool * batch_size):
    chunk = order[start : start + pool * batch_size]
    chunk = chunk[np.lexsort((lengths[chunk], groups[chunk]))]
    batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
  return [batches[i] for i in rng.permutation(len(batches))]


def padding_waste(tokens: np.ndarray, mask: np.ndarray) -> float:
  """Share of the token slots of real documents (`mask`) that hold padding.

  >>> padding_waste(np.array([[[5, 6, 0, 0], [0, 0, 0, 0]]]), np.array([[True, False]]))
  0.5
  """
  mask = np.asarray(mask, bool)
  slots = mask.sum() * np.shape(tokens)[-1]
  return float(1 - pair_lengths(tokens)[mask].sum() / slots) if slots else 0.0
