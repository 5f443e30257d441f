"""With linear gain, NDCG@k, P@k and MRR equal trec_eval's on the real TREC Session qrels.

The run ranks every judged document of each topic by seeded random scores.
trec_eval breaks score ties by docno, descending; rankjax keeps list order, so
lists are laid out in descending docno order and the tied run must agree too.
Grades are -2..4: trec_eval gives negative grades no gain, and counts
`grade >= 1` as relevant for P and recip_rank (its default relevance level).
"""

import collections

import numpy as np
import pytest
import pytrec_eval

from rankjax.ranking import metrics

CUTOFFS = (5, 10, 20)


def _read_qrels(path):
  qrels = collections.defaultdict(dict)
  with open(path) as f:
    for line_number, line in enumerate(f, start=1):
      fields = line.split()
      if len(fields) != 4:
        raise ValueError(f"{path}:{line_number}: expected 'topic 0 docno grade', got {line!r}")
      topic, _, docno, grade = fields
      qrels[topic][docno] = int(grade)
  return dict(qrels)


def _padded_lists(qrels, score_fn):
  """Per-topic judged docs in descending docno order, padded to one array."""
  topics = sorted(qrels)
  size = max(len(docs) for docs in qrels.values())
  scores = np.zeros((len(topics), size), np.float32)
  labels = np.zeros((len(topics), size), np.float32)
  where = np.zeros((len(topics), size), bool)
  run = {}
  for row, topic in enumerate(topics):
    docnos = sorted(qrels[topic], reverse=True)
    n = len(docnos)
    scores[row, :n] = score_fn(n)
    labels[row, :n] = [qrels[topic][d] for d in docnos]
    where[row, :n] = True
    run[topic] = {d: float(s) for d, s in zip(docnos, scores[row, :n])}
  return topics, scores, labels, where, run


@pytest.mark.parametrize("year", ["2012", "2013"])
@pytest.mark.parametrize("scoring", ["continuous", "tied"])
def test_linear_gain_metrics_equal_trec_eval(shared_data, year, scoring):
  qrels = _read_qrels(shared_data("trec_session_2012_2013", f"relevance{year}.txt"))
  rng = np.random.default_rng(int(year))
  if scoring == "continuous":
    score_fn = lambda n: rng.normal(size=n)
  else:  # Few distinct values: most ranks are decided by trec_eval's docno tie rule.
    score_fn = lambda n: rng.integers(0, 4, size=n)
  topics, scores, labels, where, run = _padded_lists(qrels, score_fn)
  measures = {f"ndcg_cut.{k}" for k in CUTOFFS} | {f"P.{k}" for k in CUTOFFS} | {"recip_rank"}
  trec = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
  assert sorted(trec) == topics
  # P@k divides by k in trec_eval and by the retrieved count in rankjax.
  assert where.sum(-1).min() >= max(CUTOFFS)

  def ours(metric_fn, **kwargs):
    return np.asarray(
      metric_fn(scores, labels, where=where, reduce_fn=None, no_relevant="zero", **kwargs)
    )

  def theirs(measure):
    return np.asarray([trec[t][measure] for t in topics])

  for k in CUTOFFS:
    np.testing.assert_allclose(
      ours(metrics.ndcg_metric, topn=k, gain_fn=metrics.linear_gain),
      theirs(f"ndcg_cut_{k}"),
      rtol=1e-5,
      atol=1e-6,
      err_msg=f"ndcg_cut_{k}",
    )
    np.testing.assert_allclose(
      ours(metrics.precision_metric, topn=k), theirs(f"P_{k}"), rtol=1e-6, err_msg=f"P_{k}"
    )
  np.testing.assert_allclose(ours(metrics.mrr_metric), theirs("recip_rank"), rtol=1e-6)
  # The default convention leaves topics without relevant documents out of the mean.
  relevant = np.asarray(metrics.has_relevant(labels, where))
  np.testing.assert_allclose(
    metrics.ndcg_metric(scores, labels, where=where, topn=10, gain_fn=metrics.linear_gain),
    theirs("ndcg_cut_10")[relevant].mean(),
    rtol=1e-5,
  )
