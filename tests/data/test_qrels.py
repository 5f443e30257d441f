"""TREC qrels: every row read or counted as skipped with its file and line, files in another
encoding refused in one line naming the flag, through the loader, the reader and the commands."""

import json
import pathlib
from unittest import mock

import pytest

from rankjax import cli
from rankjax.cli import clicks as clicks_cli
from rankjax.cli import data as data_cli
from rankjax.data import readers
from rankjax.data.readers import trec

FIX = pathlib.Path(__file__).parent.parent / "fixtures" / "logs"


def _write(tmp_path, data, name="qrels.txt"):
  p = tmp_path / name
  (p.write_bytes if isinstance(data, bytes) else p.write_text)(data)
  return p


def test_bad_rows_are_counted_skips_naming_file_and_line(tmp_path):
  p = _write(
    tmp_path,
    "1 0 d1 2\n"
    "1 0 d2 nan\n"
    "1 0 d3 inf\n"
    "1 0 d4 -Infinity\n"
    "1 0 d5 high\n"
    "1 0 d6\n"
    "1 0 d7 2 extra\n"
    "1 0 d8 5\n"
    "1 0 d9 -3\n"
    "\n"
    "1 0 d1 4\n"
    "2 0 d1 -2\n",
  )
  summary = readers.ReadSummary()
  assert trec.load_trec_qrels(p, summary) == {"1": {"d1": 2.0}, "2": {"d1": -2.0}}
  assert summary.reasons == {
    "qrels_bad_grade": 4,
    "qrels_columns": 2,
    "qrels_grade_out_of_range": 2,
    "qrels_duplicate": 1,
  }
  assert summary.examples["qrels_bad_grade"] == [
    f"{p}:2: grade 'nan' is not finite",
    f"{p}:3: grade 'inf' is not finite",
    f"{p}:4: grade '-Infinity' is not finite",
    f"{p}:5: grade 'high' is not a number",
  ]
  assert summary.examples["qrels_columns"] == [
    f"{p}:6: 3 columns, expected topic iteration docno grade",
    f"{p}:7: 5 columns, expected topic iteration docno grade",
  ]
  assert summary.examples["qrels_grade_out_of_range"] == [
    f"{p}:8: grade '5' is outside -2 to 4",
    f"{p}:9: grade '-3' is outside -2 to 4",
  ]
  assert summary.examples["qrels_duplicate"] == [
    f"{p}:11: topic '1' document 'd1' judged again; kept the first grade 2"
  ]


def test_an_undecodable_line_is_a_counted_skip(tmp_path):
  p = _write(tmp_path, "1 0 d1 2\n1 0 caf\xe9 1\n1 0 d3 0\n".encode("latin-1"))
  summary = readers.ReadSummary()
  assert trec.load_trec_qrels(p, summary) == {"1": {"d1": 2.0, "d3": 0.0}}
  assert summary.examples["qrels_bad_encoding"] == [f"{p}:2: not valid utf-8 at byte 7: b'\\xe9 1'"]
  assert trec.load_trec_qrels(p, encoding="latin-1") == {"1": {"d1": 2, "café": 1, "d3": 0}}


def test_a_file_in_another_encoding_is_one_error_naming_the_flag(tmp_path):
  p = _write(tmp_path, "1 0 caf\xe9 2\n1 0 th\xe9 1\n".encode("latin-1"))
  with pytest.raises(trec.QrelsError) as e:
    trec.load_trec_qrels(p)
  assert str(e.value) == (
    f"{p}: 2 lines are not valid utf-8 (the first: line 1); give the file's encoding with "
    "--labels-encoding, e.g. latin-1"
  )


def test_a_file_without_a_row_is_an_error(tmp_path):
  p = _write(tmp_path, "topic docno\n")
  with pytest.raises(trec.QrelsError, match=rf"^{p}: no qrels row \(topic iteration docno grade\)"):
    trec.load_trec_qrels(p)


def test_the_reader_counts_a_qrels_file_once_for_several_logs(tmp_path):
  qrels = _write(tmp_path, "7 0 doc-a 2\n7 0 doc-b nan\n")
  summary = readers.ReadSummary()
  sessions = list(
    readers.read_sessions("trec-session", [FIX / "trec_quirks.xml"] * 2, summary, labels=str(qrels))
  )
  assert summary.reasons["qrels_bad_grade"] == 1
  first = sessions[0].interactions[0]
  assert first.doc_ids == ["doc-a", "doc-b"] and first.labels[0] == 2.0


def _prepare(tmp_path, *flags):
  return cli.main(
    [
      *(
        "data",
        "prepare",
        "--format",
        "trec-session",
        str(FIX / "trec_quirks.xml"),
        "--quiet",
        "--json",
      ),
      *("--output", str(tmp_path / "out"), "--name", "x", "--test-fraction", "0", *flags),
    ]
  )


def test_prepare_stops_on_a_latin1_qrels_file_and_reads_it_with_its_encoding(tmp_path):
  text = "7 0 doc-a 2\n7 0 d\xe9 0\n8 0 th\xe9 3\n9 0 caf\xe9 1\n"
  qrels = _write(tmp_path, text.encode("latin-1"))
  with pytest.raises(SystemExit) as e:
    _prepare(tmp_path, "--labels", str(qrels))
  assert str(e.value) == (
    f"error: {qrels}: 3 lines are not valid utf-8 (the first: line 2); give the file's encoding "
    "with --labels-encoding, e.g. latin-1"
  )
  assert not (tmp_path / "out").exists()
  with mock.patch.object(data_cli, "print", create=True) as printed:
    _prepare(tmp_path, "--labels", str(qrels), "--labels-encoding", "latin-1")
  read = json.loads(printed.call_args.args[0])["read"]
  assert "qrels_bad_encoding" not in read["skipped_by_reason"]


def test_prepare_reports_qrels_skips_in_its_read_summary(tmp_path):
  qrels = _write(tmp_path, "7 0 doc-a 2\n7 0 doc-b Inf\n8 0 doc-g 3\n")
  with mock.patch.object(data_cli, "print", create=True) as printed:
    _prepare(tmp_path, "--labels", str(qrels))
  read = json.loads(printed.call_args.args[0])["read"]
  assert read["skipped_by_reason"]["qrels_bad_grade"] == 1
  assert read["skip_examples"]["qrels_bad_grade"] == [f"{qrels}:2: grade 'Inf' is not finite"]


@pytest.mark.slow
def test_simulate_counts_the_skipped_qrels_rows(tmp_path):
  qrels = _write(tmp_path, "1 0 d1 2\n1 0 d2 nan\n1 0 d3 0\n")
  meta = clicks_cli.simulate(
    ["--qrels", str(qrels), "--sessions", "5", "--output", str(tmp_path / "log.jsonl")]
  )
  assert meta["skipped"] == 1 and meta["skipped_by_reason"] == {"qrels_bad_grade": 1}
  assert meta["skip_examples"] == {"qrels_bad_grade": [f"{qrels}:2: grade 'nan' is not finite"]}
