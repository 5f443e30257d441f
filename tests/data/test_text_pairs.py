"""The JSON Lines pairs file a text ranker scores: lists per query, streamed; bad lines named."""

import json

import numpy as np
import pytest

from rankjax.data import text_pairs


def _write(path, lines) -> str:
  path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
  return str(path)


def _row(qid="q1", query="cheap flights", docno="d1", text="a text", **more):
  return {"qid": qid, "query": query, "docno": docno, "text": text, **more}


def test_lines_become_one_list_per_query_in_file_order(tmp_path):
  path = _write(
    tmp_path / "pairs.jsonl",
    [
      _row(docno="d1", text="tab\there, newline\nthere", label=2),
      _row(docno=7, text="second", source="ignored"),
      "",
      _row(qid=12, query="other", docno="d9", text="x"),
    ],
  )
  first, second = text_pairs.iter_text_pairs(path)
  assert (first.qid, first.query, first.doc_ids) == ("q1", "cheap flights", ["d1", "7"])
  assert first.doc_texts == ["tab\there, newline\nthere", "second"]
  np.testing.assert_array_equal(first.labels["human"], [2.0, np.nan])
  assert (second.qid, second.doc_ids, second.labels) == ("12", ["d9"], {})


def test_the_file_is_read_one_query_at_a_time(tmp_path):
  path = _write(tmp_path / "pairs.jsonl", [_row(), _row(qid="q2"), "not json"])
  lists = text_pairs.iter_text_pairs(path)
  assert next(lists).qid == "q1"  # yielded before the bad line further on is read
  with pytest.raises(text_pairs.TextPairsError):
    list(lists)


@pytest.mark.parametrize(
  "line, message",
  [
    (
      "{not json",
      "not JSON (Expecting property name enclosed in double quotes at column 2); a "
      "line is an object with qid, query, docno, text",
    ),
    ("[1, 2]", "a JSON list, not an object"),
    (
      {"qid": "q1", "query": "q", "docno": "d"},
      "no 'text' field (a line needs qid, query, docno, text)",
    ),
    (_row(text=3), "field 'text' is 3, not a string"),
    (_row(docno=None), "field 'docno' is null, not a string or an integer"),
    (_row(qid=True), "field 'qid' is true, not a string or an integer"),
    (_row(label="2"), "field 'label' is \"2\", not a finite number"),
    (
      '{"qid": "q1", "query": "q", "docno": "d", "text": "t", "label": NaN}',
      "field 'label' is NaN, not a finite number",
    ),
    (_row(query="another"), "qid 'q1' has query 'another', its earlier lines 'cheap flights'"),
  ],
)
def test_a_bad_line_is_an_error_naming_file_line_and_field(tmp_path, line, message):
  path = _write(tmp_path / "pairs.jsonl", [_row(), line])
  with pytest.raises(text_pairs.TextPairsError) as e:
    list(text_pairs.iter_text_pairs(path))
  assert str(e.value) == f"{path}:2: {message}"


def test_a_query_whose_lines_are_apart_is_an_error(tmp_path):
  path = _write(tmp_path / "pairs.jsonl", [_row(), _row(qid="q2"), _row(docno="d2")])
  with pytest.raises(text_pairs.TextPairsError) as e:
    list(text_pairs.iter_text_pairs(path))
  assert str(e.value) == (
    f"{path}:3: qid 'q1' appears again after other queries; a query's lines must be contiguous"
  )


def test_a_file_not_in_utf8_is_an_error(tmp_path):
  path = tmp_path / "pairs.jsonl"
  path.write_bytes(json.dumps(_row()).encode() + b"\n" + json.dumps(_row()).encode("utf-16"))
  with pytest.raises(text_pairs.TextPairsError) as e:
    list(text_pairs.iter_text_pairs(path))
  assert str(e.value) == f"{path}:2: not valid UTF-8 at byte 0"
