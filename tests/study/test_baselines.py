"""The study's baselines: BM25, the logged order and LightGBM score what they say they do."""

import numpy as np
import pytest

from rankjax.study import baselines


def test_bm25_ranks_lexical_matches_first_in_english_and_chinese():
  lists = [
    {
      "doc_ids": ["a", "b", "c"],
      "query": "jaguar price",
      "doc_texts": ["the cat sat", "jaguar car price list", "a jaguar in the zoo"],
    },
    {"doc_ids": ["d", "e"], "query": "北京天气", "doc_texts": ["上海美食", "北京天气预报"]},
  ]
  scores = baselines.bm25_scores([], lists, seed=0)
  assert scores.shape == (2, 3) and scores[1, 2] == 0.0  # padded past the list's end
  assert np.argsort(-scores[0]).tolist() == [1, 2, 0]
  assert scores[1, 1] > scores[1, 0] == 0.0


def test_bm25_needs_texts():
  with pytest.raises(ValueError, match="needs query and document texts"):
    baselines.bm25_scores([], [{"doc_ids": ["a"], "position": np.array([1])}], seed=0)


def _lists(rng, n, source_labels):
  out = []
  for i in range(n):
    relevance = rng.integers(0, 3, 8).astype(np.float32)
    out.append(
      {
        "qid": f"q{i}",
        "features": np.stack([relevance + rng.normal(0, 0.3, 8), rng.normal(size=8)], 1),
        "label_human": relevance,
        "label_click": source_labels(relevance),
        "position": np.arange(1, 9, dtype=np.int32),
      }
    )
  return out


def test_lambdamart_learns_the_feature_that_carries_relevance():
  pytest.importorskip("lightgbm")
  rng = np.random.default_rng(0)
  train = _lists(rng, 60, lambda r: r / 4)  # CTR-like labels in [0, 1]
  test = _lists(rng, 20, lambda r: r / 4)
  for name in ("lgbm_human", "lgbm_click", "lgbm_click_unbiased"):
    scores = baselines.get(name).score(train, test, 0)
    rho = [np.corrcoef(s, t["label_human"])[0, 1] for s, t in zip(scores, test)]
    assert np.mean(rho) > 0.8, (name, np.mean(rho))


def test_lambdamart_refuses_labels_that_are_not_grades():
  pytest.importorskip("lightgbm")
  rng = np.random.default_rng(0)
  train = _lists(rng, 4, lambda r: r / 4)
  train[2]["label_human"] = train[2]["label_human"] + 0.5
  with pytest.raises(ValueError, match="list 'q2': human labels .* are not whole grades"):
    baselines.get("lgbm_human").score(train, train, 0)
  train[1]["label_click"][0] = 1.5
  with pytest.raises(ValueError, match=r"list 'q1': click labels outside \[0, 1\]"):
    baselines.get("lgbm_click").score(train, train, 0)
