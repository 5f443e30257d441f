"""`Ranker`: load a run's best or chosen checkpoint, score new data in every form, bounded
compilations, clear errors for input that does not fit."""

import json

import numpy as np
import pandas as pd
import pytest
from serve_helpers import write_svmlight

from rankjax.serve import inputs, ranker


def _best_validation_step(workdir) -> int:
  rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  evals = {r["step"]: r["validation/ndcg@10/all"] for r in rows if "validation/ndcg@10/all" in r}
  return max(evals, key=evals.get)


@pytest.mark.slow
def test_load_takes_the_best_checkpoint_else_latest_or_the_step_asked(feature_run):
  workdir, _ = feature_run
  best = ranker.Ranker.load(workdir)
  assert (best.step, best.best) == (_best_validation_step(workdir), True)
  assert (ranker.Ranker.load(workdir, best=False).step, ranker.Ranker.load(workdir, 6).step) == (
    6,
    6,
  )


@pytest.mark.slow
def test_every_input_form_gives_the_same_scores(feature_run, new_lists, tmp_path):
  r = ranker.Ranker.load(feature_run[0], 6)
  features = np.concatenate([l.features for l in new_lists])
  qids = np.repeat([l.qid for l in new_lists], [len(l) for l in new_lists])
  docs = np.concatenate([l.doc_ids for l in new_lists])
  from_array = r.score(features, qids=qids, doc_ids=docs)
  frame = pd.DataFrame(features, columns=[f"f{k}" for k in range(4)])
  frame.insert(0, "qid", qids)
  frame["docno"] = docs
  from_frame = r.score(frame)
  from_file = r.score(str(write_svmlight(tmp_path / "new.txt", new_lists)))
  assert [s.qid for s in from_array] == [l.qid for l in new_lists]
  for a, b, c, lst in zip(from_array, from_frame, from_file, new_lists):
    assert a.doc_ids == b.doc_ids == c.doc_ids == list(lst.doc_ids)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.scores, c.scores)
    np.testing.assert_array_equal(a.ranks, ranker.ranks_of(a.scores))
  # One list scored alone (another batch and list size) scores the same.
  alone = r.score(new_lists[3].features)[0]
  np.testing.assert_allclose(alone.scores, from_array[3].scores, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_compilations_are_bounded_by_the_shape_buckets(feature_run):
  r = ranker.Ranker.load(feature_run[0], 6)
  rng = np.random.default_rng(0)
  # Batches of 1 to 9 lists of 1 to 100 items: list sizes 16, 32, 64, 128 (two doublings of the
  # run's largest, 32) and batch sizes 1, 2, 4 (up to eval.batch_size 4).
  for n_lists in range(1, 10):
    lengths = rng.integers(1, 101, n_lists)
    r.score(rng.normal(size=(lengths.sum(), 4)), qids=np.repeat(np.arange(n_lists), lengths))
  assert r.traces <= 3 * 4
  before = r.traces
  r.score(rng.normal(size=(50, 4)), qids=np.arange(50) // 7)
  assert r.traces == before


@pytest.mark.slow
def test_input_that_does_not_fit_names_what_was_expected(feature_run, tmp_path):
  r = ranker.Ranker.load(feature_run[0])
  want = (
    "this ranker scores 4 features per document: a numpy array [n, 4] (with qids) or [Q, L, 4], "
    "a DataFrame with a qid column and 4 feature columns, or an svmlight file"
  )
  with pytest.raises(inputs.InputError) as e:
    r.score(np.zeros((3, 5)))
  assert str(e.value) == f"features of shape (3, 5): {want}"
  with pytest.raises(inputs.InputError) as e:
    r.score(pd.DataFrame({"a": [1.0], "b": [2.0], "c": [0.0], "d": [1.0]}))
  assert str(e.value) == f"DataFrame has no 'qid' column: {want}"
  with pytest.raises(inputs.InputError) as e:
    r.score([("a query", "a document")])
  assert str(e.value) == f"a list of pairs: {want}"
  with pytest.raises(inputs.InputError) as e:
    r.score(str(tmp_path / "pairs.jsonl"))
  assert str(e.value) == f"{tmp_path / 'pairs.jsonl'}: a JSON Lines file of text; {want}"
  path = tmp_path / "wide.txt"
  path.write_text("1 qid:1 1:0.5 5:1\n")
  with pytest.raises(ValueError) as e:
    r.score(str(path))
  assert str(e.value) == f"{path}:1: feature index 5 > 4, the number of features expected"
