"""Hostile click logs through `rankjax data stats`: every bad field is a counted skip naming the
field and its first file:line, never a coercion or a traceback; a file that cannot be read at all
is one line naming it."""

import gzip
import json
import pathlib
import re
import zlib

import pytest

from rankjax import cli
from rankjax.data import readers

FIX = pathlib.Path(__file__).parents[1] / "fixtures" / "logs"
GOOD = {"query_id": "q1", "doc_ids": ["a", "b"], "clicks": [0, 1]}


def stats(capsys, fmt, *args) -> dict:
  cli.main(["data", "stats", "--format", fmt, *map(str, args), "--quiet"])
  return json.loads(capsys.readouterr().out)


def jsonl(path, *records) -> pathlib.Path:
  """A log of one session per record, each its own session id."""
  with open(path, "w") as f:
    for i, rec in enumerate(records):
      f.write((rec if isinstance(rec, str) else json.dumps({"session_id": i, **rec})) + "\n")
  return path


def assert_one_skip(counts: dict, reason: str, where: str, sessions: int):
  """The run read `sessions` sessions and skipped one record, for `reason`, first at `where`."""
  assert counts["sessions"] == sessions
  assert counts["skipped_by_reason"] == {reason: 1}
  assert counts["skip_examples"][reason][0].startswith(f"{where}: ")


@pytest.mark.parametrize(
  "bad, reason",
  [
    ({"click_ranks": ["x"]}, "bad_field:click_ranks"),
    ({"click_ranks": [1.7]}, "bad_field:click_ranks"),
    ({"click_ranks": [0]}, "bad_field:click_ranks"),  # ranks are 1-based
    ({"click_ranks": [2, 2]}, "bad_field:click_ranks"),  # two clicks where `clicks` has one
    ({"click_ranks": []}, "bad_field:click_ranks"),  # none where `clicks` has one
    ({"freq_bucket": "high"}, "bad_field:freq_bucket"),
    ({"freq_bucket": 999}, "bad_field:freq_bucket"),
    ({"doc_ids": "abc"}, "bad_field:doc_ids"),  # a string is not a list of documents
    ({"doc_ids": ["a", ""]}, "bad_field:doc_ids"),
    ({"doc_texts": [None, "t"]}, "bad_field:doc_texts"),  # not the text "None"
    ({"ranks": [1.7, 2]}, "bad_field:ranks"),  # not rank 1
    ({"ranks": [True, 2]}, "bad_field:ranks"),
    ({"clicks": [-1, 1]}, "bad_field:clicks"),  # not 0 clicks
    ({"clicks": [0, 1.0]}, "bad_field:clicks"),
    ({"clicks": [0, 1, 0]}, "bad_field:clicks"),  # three counts for two documents
    ({"labels": [float("-inf"), 1]}, "bad_field:labels"),  # written as -Infinity
    ({"labels": [9, 1]}, "bad_field:labels"),
    ({"dwell": [float("inf"), 1]}, "bad_field:dwell"),
    ({"dwell": [-3, 1]}, "bad_field:dwell"),
    ({"query_id": 1.5}, "bad_field:query_id"),
    ({"query": ["a"]}, "bad_field:query"),
    ({"topic": None, "session_id": [1]}, "bad_field:session_id"),
  ],
  ids=lambda x: json.dumps(x) if isinstance(x, dict) else None,
)
def test_jsonl_field_of_the_wrong_type_or_range_is_a_skip_naming_it(capsys, tmp_path, bad, reason):
  path = jsonl(tmp_path / "log.jsonl", GOOD, {**GOOD, **bad}, GOOD)
  assert_one_skip(stats(capsys, "jsonl", path), reason, f"{path}:2", sessions=2)


def test_jsonl_values_in_range_are_read_as_written(capsys, tmp_path):
  rec = {
    **GOOD,
    "ranks": [3, 5],
    "click_ranks": [5],
    "labels": [-2, None],
    "dwell": [None, 2.5],
    "doc_texts": ["", "t"],
    "freq_bucket": 9,
    "query_id": 7,
  }
  counts = stats(capsys, "jsonl", jsonl(tmp_path / "log.jsonl", rec))
  assert (counts["sessions"], counts["clicks"], counts["skipped"]) == (1, 1, 0)


def test_jsonl_nested_100000_deep_is_a_skip(capsys, tmp_path):
  path = jsonl(tmp_path / "log.jsonl", GOOD, "[" * 100_000 + "]" * 100_000, GOOD)
  assert_one_skip(stats(capsys, "jsonl", path), "too_deep", f"{path}:2", sessions=2)


def test_jsonl_integer_of_5000_digits_is_a_skip(capsys, tmp_path):
  path = jsonl(tmp_path / "log.jsonl", GOOD, '{"query_id": "q", "clicks": [' + "1" * 5000 + "]}")
  assert_one_skip(stats(capsys, "jsonl", path), "bad_json", f"{path}:2", sessions=1)


def test_truncated_gzip_keeps_every_session_read_before_the_break(capsys, tmp_path):
  text = "".join(
    json.dumps({"session_id": i, **GOOD, "query_id": f"q{i % 7}"}) + "\n" for i in range(3000)
  ).encode()
  whole = gzip.compress(text)
  path = tmp_path / "log.jsonl.gz"
  path.write_bytes(whole[: len(whole) // 2])
  readable = zlib.decompressobj(wbits=31).decompress(whole[: len(whole) // 2])
  complete = readable.count(b"\n")  # the lines wholly inside the truncated file
  counts = stats(capsys, "jsonl", path)
  assert 0 < complete < 3000
  assert_one_skip(counts, "truncated_gzip", f"{path}:{complete + 1}", sessions=complete)


def test_truncated_gzip_xml_keeps_every_complete_session(capsys, tmp_path):
  session = (
    '<session num="{n}"><interaction num="1"><query>q{n}</query><results>'
    '<result rank="1"><clueweb12id>d</clueweb12id></result></results></interaction></session>\n'
  )
  text = ("<log>\n" + "".join(session.format(n=n) for n in range(2000)) + "</log>\n").encode()
  whole = gzip.compress(text)
  path = tmp_path / "log.xml.gz"
  path.write_bytes(whole[: len(whole) // 2])
  readable = zlib.decompressobj(wbits=31).decompress(whole[: len(whole) // 2])
  counts = stats(capsys, "trec-session", path)
  assert counts["sessions"] == readable.count(b"</session>") > 0
  assert counts["skipped_by_reason"] == {"truncated_gzip": 1}
  assert counts["skip_examples"]["truncated_gzip"][0].startswith(f"{path}@{len(readable)}: ")


def test_a_gz_file_that_is_not_gzip_is_one_line(tmp_path):
  path = jsonl(tmp_path / "log.jsonl.gz", GOOD)
  message = f"error: {path}: not a gzip file, though its name ends in .gz (Not a gzipped file"
  with pytest.raises(SystemExit, match=re.escape(message)):
    cli.main(["data", "stats", "--format", "jsonl", str(path), "--quiet"])


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "trec-session", "sogou", "baidu-ultr"])
def test_a_directory_given_as_a_log_is_one_line(tmp_path, fmt):
  with pytest.raises(SystemExit, match=re.escape(f"error: {tmp_path}: is a directory, not a log")):
    cli.main(["data", "stats", "--format", fmt, str(tmp_path), "--quiet"])


def test_an_undecodable_line_is_a_counted_skip(capsys, tmp_path):
  path = tmp_path / "log.jsonl"
  jsonl(path, GOOD, GOOD, GOOD)
  lines = path.read_bytes().splitlines(keepends=True)
  path.write_bytes(lines[0] + b'{"query_id": "\xff"}\n' + lines[2])
  assert_one_skip(stats(capsys, "jsonl", path), "bad_encoding", f"{path}:2", sessions=2)


def test_gbk_sogou_query_file_read_as_utf8_names_the_file_and_the_encoding(tmp_path):
  queries = tmp_path / "query_id"
  queries.write_bytes("".join(f"中文查询{i}\t{i}\t3\t2\n" for i in range(5)).encode("gbk"))
  log = tmp_path / "train_data"
  log.write_text("0\t1 2\t1 0\t5 -1\n")
  message = (
    f"error: {queries}: 5 of 5 lines are not valid utf-8: the file is in another encoding; "
    "read it with --encoding gbk (this format's usual one)"
  )
  with pytest.raises(SystemExit, match=f"^{re.escape(message)}$"):
    cli.main(
      ["data", "stats", "--format", "sogou", str(log), "--queries", str(queries)]
      + [
        "--encoding",
        "utf-8",
        "--quiet",
      ]
    )


def test_gbk_jsonl_names_the_encoding_that_reads_it(capsys, tmp_path):
  path = tmp_path / "log.jsonl"
  path.write_bytes(
    "".join(
      json.dumps({**GOOD, "query": "中文"}, ensure_ascii=False) + "\n" for _ in range(4)
    ).encode("gbk")
  )
  message = (
    f"error: {path}: 4 of 4 lines are not valid utf-8: the file is in another encoding; "
    "read it with --encoding gbk"
  )
  with pytest.raises(SystemExit, match=f"^{re.escape(message)}$"):
    cli.main(["data", "stats", "--format", "jsonl", str(path), "--quiet"])
  assert stats(capsys, "jsonl", path, "--encoding", "gbk")["sessions"] == 4


@pytest.mark.parametrize(
  "text, message",
  [
    ('{"q1": "a",\n "q2": }', "{path}:2:8: the query dictionary is not JSON (Expecting value)"),
    ('["a", "b"]', "{path}: the query dictionary is a JSON list, not object"),
    ('{"q1": null}', "{path}: 'q1' has text None in the query dictionary, not a string"),
  ],
)
def test_tiangong_query_dictionary_that_is_not_one_is_one_line(tmp_path, text, message):
  path = tmp_path / "qid_query.json"
  path.write_text(text)
  argv = ["data", "stats", "--format", "tiangong-st", str(FIX / "tiangong_st_sample.xml")]
  with pytest.raises(SystemExit, match=f"^error: {re.escape(message.format(path=path))}$"):
    cli.main([*argv, "--queries", str(path), "--quiet"])


def baidu_annotations(path, rows) -> pathlib.Path:
  path.write_text(
    "".join(
      f"{q}\t1\x012\t{i}\t4\t{label}\t{bucket}\n" for i, (q, label, bucket) in enumerate(rows)
    )
  )  # each row its own title, so its own document
  return path


def test_baidu_labels_and_buckets_outside_their_range_are_skips(capsys, tmp_path):
  rows = [("1", 0, 3), ("1", 9, 3), ("1", 4, 3), ("2", -1, 5), ("2", 2, 999), ("2", "nan", 5)]
  path = baidu_annotations(tmp_path / "val_data.txt", rows)
  counts = stats(capsys, "baidu-ultr-annotations", path)
  assert (counts["sessions"], counts["results"]) == (1, 2)  # query 2 has no row left
  assert counts["skipped_by_reason"] == {"bad_field:labels": 3, "bad_field:freq_bucket": 1}
  assert counts["skip_examples"]["bad_field:labels"][0].startswith(f"{path}:2: labels: '9' ")
  assert counts["skip_examples"]["bad_field:freq_bucket"][0].startswith(f"{path}:5: ")


def test_baidu_bucket_that_changes_within_a_query_is_a_skip(capsys, tmp_path):
  path = baidu_annotations(tmp_path / "val_data.txt", [("1", 0, 3), ("1", 1, 4), ("1", 2, 3)])
  counts = stats(capsys, "baidu-ultr-annotations", path)
  assert_one_skip(counts, "bad_field:freq_bucket", f"{path}:2", sessions=1)


@pytest.mark.parametrize(
  "line, reason",
  [
    ("2\tm2\t1\t2\t0\t2" + "\t0" * 11, "bad_field:clicks"),
    ("0\tm2\t1\t2\t0\t0" + "\t0" * 11, "bad_field:ranks"),
    ("2\tm2\t1\t2\t0\t1" + "\t0" * 10 + "\tinf", "bad_field:dwell"),
    ("2\t\t1\t2\t0\t0" + "\t0" * 11, "bad_field:doc_ids"),
    ("9" * 5000 + "\tm2\t1\t2\t0\t0" + "\t0" * 11, "bad_field:ranks"),
  ],
  ids=lambda x: x if x.startswith("bad") else None,
)
def test_baidu_session_log_bad_field_skips_its_document(capsys, tmp_path, line, reason):
  path = tmp_path / "part-0"
  path.write_text("1001\t5\x016\n1\tm1\t1\t2\t0\t1" + "\t0" * 10 + "\t3.5\n" + line + "\n")
  counts = stats(capsys, "baidu-ultr", path)
  assert_one_skip(counts, reason, f"{path}:3", sessions=1)
  assert counts["results"] == 1


@pytest.mark.parametrize(
  "clicks, times, reason",
  [
    ("1 2", "5 -1", "bad_field:clicks"),
    ("1 -1", "5 -1", "bad_field:clicks"),
    ("1 0", "nan -1", "bad_field:click_times"),
    ("1 0", "5 7", "bad_field:click_times"),  # a time for an unclicked url
  ],
)
def test_sogou_click_and_time_outside_the_layout_are_skips(capsys, tmp_path, clicks, times, reason):
  path = tmp_path / "train_data"
  path.write_text(f"0\t1 2\t1 0\t5 -1\n0\t1 2\t{clicks}\t{times}\n")
  assert_one_skip(stats(capsys, "sogou", path), reason, f"{path}:2", sessions=1)


@pytest.mark.parametrize("rank", ["1.7", "-3", "0", "x"])
def test_xml_result_rank_that_is_not_a_positive_integer_is_a_skip(capsys, tmp_path, rank):
  path = tmp_path / "log.xml"
  path.write_text(
    '<log>\n<session num="1"><interaction num="1"><query>q</query><results>\n'
    '<result rank="1"><clueweb12id>a</clueweb12id></result>\n'
    f'<result rank="{rank}"><clueweb12id>b</clueweb12id></result>\n'
    "</results></interaction></session>\n</log>\n"
  )
  counts = stats(capsys, "trec-session", path)
  assert_one_skip(counts, "bad_field:ranks", f"{path}:4", sessions=1)
  assert counts["results"] == 1


def test_tiangong_label_out_of_range_is_a_skip(capsys, tmp_path):
  labels = tmp_path / "labels.txt"
  labels.write_text("1 101 q2 d1 3\n2 101 q2 d2 nan\n3 101 q2 d3 7\n")
  xml = FIX / "tiangong_st_sample.xml"
  counts = stats(capsys, "tiangong-st", xml, "--labels", labels)
  assert counts["skipped_by_reason"]["bad_field:labels"] == 2
  assert counts["skip_examples"]["bad_field:labels"] == [
    f"{labels}:2: labels: 'nan' is not a finite number",
    f"{labels}:3: labels: '7' is outside 0..4",
  ]


SESSION = (
  '<session num="1"><interaction num="1"><query>q</query><results>'
  '<result rank="1"><clueweb12id>d</clueweb12id></result></results></interaction></session>'
)
LAUGHS = '<!ENTITY a "aaaaaaaaaa">' + "".join(
  f'<!ENTITY {b} "{("&" + a + ";") * 10}">' for a, b in zip("abcdefgh", "bcdefghi")
)


@pytest.mark.parametrize(
  "prolog, body",
  [
    (f"<!DOCTYPE log [{LAUGHS}]>", f'<log><session num="&i;"/>{SESSION}</log>'),  # in an attribute
    ('<!DOCTYPE log SYSTEM "http://example.invalid/log.dtd">', f"<log>{SESSION}</log>"),
    ('<!DOCTYPE log [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>', f"<log>{SESSION}</log>"),
    # A DOCTYPE past the first megabyte (read before parsing) is refused at the first session.
    (f"<!--{'x' * (2 << 20)}--><!DOCTYPE log [{LAUGHS}]>", f"<log>{SESSION}</log>"),
  ],
  ids=["laughs_in_attribute", "external_dtd", "parameter_entity", "late_doctype"],
)
def test_any_doctype_is_refused_before_a_session_is_read(tmp_path, prolog, body):
  path = tmp_path / "log.xml"
  path.write_text(f'<?xml version="1.0"?>\n{prolog}\n{body}\n')
  summary = readers.ReadSummary()
  assert not list(readers.read_sessions("trec-session", path, summary))
  assert summary.reasons == {"hostile_xml": 1}
  assert re.match(rf"{re.escape(str(path))}:[23]: DOCTYPE", summary.examples["hostile_xml"][0])


@pytest.mark.parametrize(
  "name, where",
  [
    ("undeclared_entity.xml", ":2:51: Entity 'xxe' not defined;"),
    ("trec_truncated.xml", ":32:1: Premature end of data in tag session line 30;"),
    ("trec_wrong_encoding.xml", ":41:23: Invalid bytes in character encoding;"),
  ],
)
def test_xml_that_is_not_well_formed_is_counted_at_its_error(name, where):
  summary = readers.ReadSummary()
  list(readers.read_sessions("trec-session", FIX / name, summary))
  assert summary.examples["xml_error"] == [f"{FIX / name}{where} rest of the file skipped"]
