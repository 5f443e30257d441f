"""Hostile svmlight input: memory bounded by the data, non-finite values and other encodings
counted or refused with the file and line, through the reader and through `rankjax data prepare`."""

import json
import pathlib
import subprocess
import sys
import time
from unittest import mock

import pytest

from rankjax import cli
from rankjax.cli import data as data_cli
from rankjax.data import readers, svmlight

ROOT = pathlib.Path(__file__).resolve().parents[2]
LOG = ROOT / "tests" / "fixtures" / "logs" / "trec_quirks.xml"
HOSTILE = "1 qid:q1 50000000:1\n"


def _write(tmp_path, data, name="f.txt"):
  p = tmp_path / name
  (p.write_bytes if isinstance(data, bytes) else p.write_text)(data)
  return p


def test_an_index_above_the_cap_is_an_error_at_its_line(tmp_path):
  p = _write(tmp_path, "0 qid:1 1:1\n" + HOSTILE + "0 qid:q2 1:1\n")
  with pytest.raises(svmlight.SvmlightError) as e:
    svmlight.read_rows(p)
  assert str(e.value) == (
    f"{p}:2: feature index 50000000 > 4096, the most read without a declared feature count; "
    "declare the count with --num-features"
  )


def test_a_declared_count_is_read_sparse_and_bounds_the_indices(tmp_path):
  p = _write(tmp_path, "2 qid:a 3:0.5 9:1\n0 qid:a 1:2\n")
  rows = svmlight.read_rows(p, num_features=50_000_000)
  assert rows.width == 50_000_000 and rows.indices.tolist() == [2, 8, 0]
  assert rows.values.tolist() == [0.5, 1.0, 2.0] and rows.indptr.tolist() == [0, 2, 3]
  assert svmlight.read_svmlight(p, num_features=9)[0].features.tolist() == [
    [0, 0, 0.5, 0, 0, 0, 0, 0, 1],
    [2, 0, 0, 0, 0, 0, 0, 0, 0],
  ]
  with pytest.raises(svmlight.SvmlightError) as e:
    svmlight.read_rows(p, num_features=8)
  assert str(e.value) == (
    f"{p}:1: feature index 9 > num_features 8 (declare a larger count with --num-features)"
  )


def test_undeclared_width_is_the_largest_index_read(tmp_path):
  p = _write(tmp_path, "1 qid:a 4096:1\n")
  assert svmlight.read_svmlight(p)[0].features.shape == (1, 4096)


@pytest.mark.parametrize(
  "line, reason, message",
  [
    ("nan qid:a 1:1", "nonfinite_label", "label 'nan' is not finite"),
    ("-inf qid:a 1:1", "nonfinite_label", "label '-inf' is not finite"),
    ("5 qid:a 1:1", "label_out_of_range", "label '5' is outside 0-4"),
    ("-1 qid:a 1:1", "label_out_of_range", "label '-1' is outside 0-4"),
    ("1 qid:a 1:nan", "nonfinite_feature", "feature 1 value 'nan' is not finite"),
    ("1 qid:a 1:1 2:Infinity", "nonfinite_feature", "feature 2 value 'Infinity' is not finite"),
  ],
)
def test_non_finite_and_out_of_range_values_are_counted_skips(tmp_path, line, reason, message):
  p = _write(tmp_path, f"1 qid:a 1:0.5\n{line}\n0 qid:a 2:1\n")
  summary = readers.ReadSummary()
  (lst,) = svmlight.read_svmlight(p, summary=summary)
  assert lst.doc_ids == ["a-0", "a-1"] and lst.labels["human"].tolist() == [1, 0]
  assert summary.reasons == {reason: 1}
  assert summary.examples[reason] == [f"{p}:2: {message}"]


def test_skips_without_a_summary_are_logged(tmp_path, caplog):
  p = _write(tmp_path, "1 qid:a 1:0.5\n1 qid:a 1:nan\n")
  svmlight.read_svmlight(p)
  assert f"{p}: 1 lines skipped" in caplog.text and "nonfinite_feature" in caplog.text


def test_a_repeated_index_is_an_error(tmp_path):
  p = _write(tmp_path, "1 qid:a 1:0.5 1:0.7\n")
  with pytest.raises(svmlight.SvmlightError, match=r"f.txt:1: feature index 1 given twice$"):
    svmlight.read_rows(p)


def test_a_skipped_line_keeps_its_place_in_the_group_file(tmp_path):
  p = _write(tmp_path, "1 1:1\n9 1:1\n0 2:1\n2 1:3\n", "rank.train")
  _write(tmp_path, "3\n1\n", "rank.train.query")
  summary = readers.ReadSummary()
  lists = svmlight.read_svmlight(p, summary=summary)
  assert [(l.qid, l.doc_ids) for l in lists] == [("0", ["0-0", "0-1"]), ("1", ["1-0"])]
  assert summary.reasons == {"label_out_of_range": 1}


def test_latin1_in_a_comment_is_not_read_and_is_counted(tmp_path):
  p = _write(tmp_path, "1 qid:a 1:1 # caf\xe9\n0 qid:a 1:2 #docid = d2\n".encode("latin-1"))
  summary = readers.ReadSummary()
  (lst,) = svmlight.read_svmlight(p, summary=summary)
  assert lst.doc_ids == ["a-0", "d2"] and summary.skipped == 0
  assert summary.repaired == {"comment_not_decoded": 1}
  assert summary.examples["comment_not_decoded"] == [f"{p}:1: comment is not valid utf-8; not read"]


def test_a_latin1_docid_is_a_counted_skip_or_read_with_its_encoding(tmp_path):
  text = "1 qid:a 1:1 #docid = caf\xe9\n0 qid:a 1:2 #docid = d2\n0 qid:a 1:3 #docid = d3\n"
  p = _write(tmp_path, text.encode("latin-1"))
  summary = readers.ReadSummary()
  (lst,) = svmlight.read_svmlight(p, summary=summary)
  assert lst.doc_ids == ["d2", "d3"]
  assert summary.examples["bad_encoding"] == [f"{p}:1: docid b'caf\\xe9' is not valid utf-8"]
  (lst,) = svmlight.read_svmlight(p, encoding="latin-1")
  assert lst.doc_ids == ["café", "d2", "d3"]


def test_a_file_in_another_encoding_is_one_error_naming_the_flag(tmp_path):
  p = _write(tmp_path, "1 qid:caf\xe9 1:1\n0 qid:caf\xe9 1:2\n".encode("latin-1"))
  with pytest.raises(svmlight.SvmlightError) as e:
    svmlight.read_rows(p, encoding_flag="--features-encoding")
  assert str(e.value) == (
    f"{p}: 2 of 2 lines are not valid utf-8 (the first: line 1); give the file's encoding with "
    "--features-encoding, e.g. latin-1"
  )


def _prepare(tmp_path, features, *flags):
  """`rankjax data prepare` on the TREC fixture log with `features`, in a fresh process whose
  peak resident memory (its children's ru_maxrss, KiB) the wrapper prints last."""
  argv = [
    *("data", "prepare", "--format", "trec-session", str(LOG), "--quiet"),
    *("--output", str(tmp_path / "out"), "--name", "x", "--features", str(features), *flags),
  ]
  wrapper = (
    "import resource, subprocess, sys; "
    "r = subprocess.run([sys.executable, '-m', 'rankjax.cli', *sys.argv[1:]]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(r.returncode)"
  )
  start = time.perf_counter()
  proc = subprocess.run(
    [sys.executable, "-c", wrapper, *argv],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  *lines, peak_kib = proc.stderr.strip().splitlines()
  return proc, lines, int(peak_kib) / 1024, time.perf_counter() - start


def test_prepare_stops_at_the_hostile_line_without_allocating_it(tmp_path):
  features = _write(tmp_path, HOSTILE, "hostile.svm")
  proc, stderr, peak_mb, seconds = _prepare(tmp_path, features)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert stderr[-1] == (
    f"error: {features}:1: feature index 50000000 > 4096, the most read without a declared "
    "feature count; declare the count with --num-features"
  )
  # Densely, the one line is 200 MB of float32 before any copy; read sparse, the command stops
  # at the line with the memory of its imports.
  assert peak_mb < 150 and seconds < 60, (peak_mb, seconds)
  assert not (tmp_path / "out").exists()


def _jsonl_log(tmp_path):
  rows = [
    '{"query_id": "q1", "doc_ids": ["d1", "d2"], "clicks": [1, 0]}',
    '{"query_id": "q2", "doc_ids": ["d3"], "clicks": [1]}',
  ]
  return _write(tmp_path, "\n".join(rows) + "\n", "log.jsonl")


def _prepare_jsonl(tmp_path, features):
  """Runs `rankjax data prepare` on a two-query log with `features`."""
  return cli.main(
    [
      *("data", "prepare", "--format", "jsonl", str(_jsonl_log(tmp_path)), "--quiet", "--json"),
      *("--output", str(tmp_path / "out"), "--name", "x", "--test-fraction", "0"),
      *("--features", str(features), "--num-features", "3"),
    ]
  )


def test_prepare_reports_the_feature_files_skips(tmp_path):
  features = _write(
    tmp_path,
    "1 qid:q1 1:1 #docid = d1\n0 qid:q1 2:1 #docid = d2\n1 qid:q2 3:1 #docid = d3\n"
    "1 qid:q3 3:nan #docid = d4\n",
  )
  with mock.patch.object(data_cli, "print", create=True) as printed:
    _prepare_jsonl(tmp_path, features)
  out = json.loads(printed.call_args.args[0])
  assert out["features"] == {
    "rows": 3,
    "num_features": 3,
    "skipped": 1,
    "skipped_by_reason": {"nonfinite_feature": 1},
    "repaired": {},
    "skip_examples": {"nonfinite_feature": [f"{features}:4: feature 3 value 'nan' is not finite"]},
  }


def test_prepare_names_a_document_whose_feature_line_was_skipped(tmp_path):
  features = _write(
    tmp_path,
    "1 qid:q1 1:1 #docid = d1\n0 qid:q1 2:inf #docid = d2\n1 qid:q2 3:1 #docid = d3\n",
  )
  with pytest.raises(SystemExit) as e:
    _prepare_jsonl(tmp_path, features)
  assert str(e.value) == (
    f"error: {features}: no features for query 'q1', documents ['d2']; lines of it skipped: "
    "1 nonfinite_feature"
  )
