"""Other systems' TREC runs in a study: ranked as the file says, what they miss counted."""

import numpy as np
import pytest

from rankjax.data.readers.errors import InputError
from rankjax.study import external_runs


def _write_run(path, rows):
  path.write_text("".join(f"{q} Q0 {d} {r} {s} sys\n" for q, d, r, s in rows))
  return path


def test_a_run_orders_each_list_by_its_scores_and_the_unranked_come_last(tmp_path):
  lists = [{"qid": "q1", "doc_ids": ["a", "b", "c", "d"]}, {"qid": "q2", "doc_ids": ["x", "y"]}]
  run = _write_run(tmp_path / "bm25.trec", [("q1", "c", 1, 9.5), ("q1", "a", 2, 3.0)])
  scores, counts = external_runs.scores(run, lists)
  assert np.argsort(-scores[0], kind="stable").tolist() == [2, 0, 1, 3]  # b, d: stored order
  assert np.argsort(-scores[1, :2], kind="stable").tolist() == [0, 1]
  assert counts == {"queries": 2, "queries_missing": 1, "docs": 6, "docs_missing": 4}
  note = external_runs.note("bm25", run, counts)
  assert note == (
    "Run `bm25` (bm25.trec) does not rank 4 of the 6 evaluated documents (1 of 2 queries "
    "entirely); they are ranked after its own, in stored order."
  )
  complete = _write_run(tmp_path / "all.trec", [("q2", "y", 1, 2.0), ("q2", "x", 2, 1.0)])
  scores, counts = external_runs.scores(complete, lists[1:])
  assert scores[0, 1] > scores[0, 0] and external_runs.note("all", complete, counts) is None


def test_a_file_that_is_not_a_run_is_one_clear_error(tmp_path):
  bad = tmp_path / "bad.trec"
  bad.write_text("q1 Q0 a 1 2.0\n")  # no run name
  with pytest.raises(InputError, match=r"bad.trec: not a TREC run file \(lines `qid Q0"):
    external_runs.scores(bad, [{"qid": "q1", "doc_ids": ["a"]}])
