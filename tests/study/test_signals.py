"""Tests for the study's per-list analyses and signals."""

import numpy as np
from scipy import stats as scipy_stats

from rankjax.data import schema, store
from rankjax.study import signals


def test_auc_and_spearman_per_list():
  rng = np.random.default_rng(1)
  scores = rng.normal(size=(20, 8))
  relevant = rng.uniform(size=(20, 8)) < 0.4
  where = rng.uniform(size=(20, 8)) < 0.9
  auc = signals.auc_per_list(scores, relevant, where)
  for i in range(20):
    pos, neg = scores[i][relevant[i] & where[i]], scores[i][~relevant[i] & where[i]]
    if len(pos) and len(neg):
      u = scipy_stats.mannwhitneyu(pos, neg).statistic
      np.testing.assert_allclose(auc[i], u / (len(pos) * len(neg)))
    else:
      assert np.isnan(auc[i])
  rho = signals.spearman_per_list(scores, 2 * scores + 1, where)
  np.testing.assert_allclose(rho[where.sum(1) > 2], 1.0)
  assert np.isnan(signals.spearman_per_list(scores, np.ones_like(scores), where)).all()


def test_term_overlap_signal_from_texts(tmp_path):
  lists = [
    schema.RankingList(
      qid=f"q{i}",
      doc_ids=["a", "b"],
      query="red shoes",
      doc_texts=["Red shoes for sale", "blue hats"],
      labels={"human": np.array([2.0, 0.0])},
    )
    for i in range(2)
  ]
  split = store.open_split(
    store.write_dataset(tmp_path, name="text", splits={"test": lists}), "test"
  )
  assert "term_overlap" in signals.available_signals(split.layout)
  data = signals.padded_split(split, ("term_overlap",))
  np.testing.assert_allclose(data["term_overlap"], [[1.0, 0.0], [1.0, 0.0]])
