"""Tests for the LETOR/svmlight reader."""

import numpy as np
import pytest

from rankjax.data import svmlight


def _write(tmp_path, text, name="f.txt"):
  p = tmp_path / name
  p.write_text(text)
  return p


def test_reads_lists_in_file_order(tmp_path):
  p = _write(tmp_path, "1 qid:b 2:0.5 # docid = X1 inc = 1\n0 qid:b 1:2\n3 qid:a 3:1\n")
  lists = svmlight.read_svmlight(p)
  assert [l.qid for l in lists] == ["b", "a"]
  np.testing.assert_array_equal(lists[0].features, [[0, 0.5, 0], [2, 0, 0]])
  assert lists[0].doc_ids == ["X1", "b-1"]
  np.testing.assert_array_equal(lists[1].labels["human"], [3])


def test_num_features_pads_and_rejects_larger_index(tmp_path):
  p = _write(tmp_path, "1 qid:1 2:1\n")
  assert svmlight.read_svmlight(p, num_features=5)[0].features.shape == (1, 5)
  with pytest.raises(svmlight.SvmlightError, match=r"f.txt:1: feature index 2 > num_features 1"):
    svmlight.read_svmlight(p, num_features=1)


@pytest.mark.parametrize(
  "line, message",
  [
    ("x qid:1 1:1", "label 'x' is not a number"),
    ("1 qid:1 1:a", "'1:a' is not <int index>:<number>"),
    ("1 qid:1 7", "'7' is not <index>:<value>"),
    ("1 qid:1 0:3", "feature index 0 < 1"),
  ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, message):
  p = _write(tmp_path, "0 qid:1 1:1\n\n" + line + "\n")
  with pytest.raises(svmlight.SvmlightError, match=rf"f.txt:3: .*{message}".replace("(", r"\(")):
    svmlight.read_svmlight(p)


def test_non_contiguous_qid_is_an_error(tmp_path):
  p = _write(tmp_path, "0 qid:1 1:1\n0 qid:2 1:1\n0 qid:1 1:1\n")
  with pytest.raises(svmlight.SvmlightError, match="f.txt:3: qid 1 appears again"):
    svmlight.read_svmlight(p)


def test_lightgbm_query_file(tmp_path):
  p = _write(tmp_path, "1 1:1\n0 2:1\n2 1:3\n", "rank.train")
  _write(tmp_path, "2\n1\n", "rank.train.query")
  lists = svmlight.read_svmlight(p)
  assert [len(l) for l in lists] == [2, 1]
  _write(tmp_path, "2\n2\n", "rank.train.query")
  with pytest.raises(svmlight.SvmlightError, match="add up to 4"):
    svmlight.read_svmlight(p)


def test_real_mslr_sample(shared_data):
  lists = svmlight.read_svmlight(shared_data("mslr_web10k_sample", "msn1.fold1.train.5k.txt"))
  assert len(lists) == 43 and sum(len(l) for l in lists) == 5000
  assert all(l.features.shape[1] == 136 for l in lists)
  assert set(np.concatenate([l.labels["human"] for l in lists]).tolist()) <= {0, 1, 2, 3, 4}


@pytest.mark.parametrize(
  "text,query",
  [
    ("1 qid:b 2:0.5 # docid = X1\n0 qid:b 1:2\n\n3 qid:a 3:1\n", None),
    ("1 2:0.5\n0 1:2\n3 3:1\n", "2\n1\n"),  # LightGBM: group sizes in f.txt.query
  ],
)
def test_streaming_reader_reads_what_the_whole_file_reader_reads(tmp_path, text, query):
  p = _write(tmp_path, text)
  if query:
    _write(tmp_path, query, "f.txt.query")
  streamed = list(svmlight.iter_svmlight(p, num_features=3))
  whole = svmlight.read_svmlight(p, num_features=3)
  assert [(l.qid, l.doc_ids) for l in streamed] == [(l.qid, l.doc_ids) for l in whole]
  for a, b in zip(streamed, whole):
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.labels["human"], b.labels["human"])


@pytest.mark.parametrize(
  "text,query,message",
  [
    ("1 qid:1 1:1\n0 qid:2 1:1\n1 qid:1 1:1\n", None, "f.txt:3: qid 1 appears again after other"),
    ("1 qid:1 1:1\n0 1:1\n", None, "f.txt:2: line without qid: in a file that uses qid:"),
    ("1 1:1\n0 1:1\n", "1\n", "f.txt.query: group sizes end before .*f.txt:2"),
    ("1 1:1\n", "1\n2\n", "f.txt.query: group sizes add up to more than the 1 lines of"),
    ("1 qid:1 4:1\n", None, "f.txt:1: feature index 4 > 3, the number of features expected"),
  ],
)
def test_streaming_reader_errors_name_file_and_line(tmp_path, text, query, message):
  p = _write(tmp_path, text)
  if query:
    _write(tmp_path, query, "f.txt.query")
  with pytest.raises(svmlight.SvmlightError, match=message):
    list(svmlight.iter_svmlight(p, num_features=3))
