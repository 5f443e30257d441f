"""Processed TianGong-ST (CACM's per-session and NCM's per-query layouts): the fixtures, the data
directory's sample end to end, the dictionaries, and input outside the layouts."""

import json
import math
import pathlib
import re

import pytest

from rankjax import cli
from rankjax.data import readers, store

FIX = pathlib.Path(__file__).parents[1] / "fixtures" / "logs"
SESSION, QUERY = FIX / "tiangong_per_session_sample.txt", FIX / "tiangong_per_query_sample.txt"
SESSION_LABELS = FIX / "tiangong_per_session_labels.txt"
QUERY_LABELS = FIX / "tiangong_per_query_labels.txt"
LABELS_23 = [2, 2, 2, 0, 1, 1, 0, 2, 2, 2]  # query 23's grades in human_label_for_CACM.txt


def read(fmt, files, **opts):
  summary = readers.ReadSummary()
  return list(readers.read_sessions(fmt, files, summary, **opts)), summary


def lists(sessions):
  """Each session as (id, [(query, docs, ranks, clicks, click order, labels)])."""
  nan_free = lambda xs: None if xs is None else [None if math.isnan(x) else x for x in xs]  # noqa: E731
  return [
    (
      s.session_id,
      [
        (i.query_id, i.doc_ids, i.ranks, i.clicks, i.click_ranks, nan_free(i.labels))
        for i in s.interactions
      ],
    )
    for s in sessions
  ]


def test_per_session_layout_with_labels_joined_by_query_and_document():
  sessions, s = read("tiangong-session", SESSION, labels=SESSION_LABELS)
  got = lists(sessions)
  assert [sid for sid, _ in got] == ["1", "2"]  # numbered in the file: the layout has no ids
  assert [q for _, inters in got for q, *_ in inters] == ["0", "1", "22", "23"]
  q23 = got[1][1][1]
  assert q23[1] == [str(u) for u in range(202, 212)] and q23[2] == list(range(1, 11))
  assert q23[4] == [1, 2] and q23[5] == LABELS_23
  assert [i[5] for _, inters in got for i in inters] == [None, None, None, LABELS_23]
  assert (s.sessions, s.interactions, s.results, s.clicks, s.skipped) == (2, 4, 40, 4, 0)


@pytest.mark.parametrize(
  "fmt, log, labels",
  [("tiangong-session", SESSION, SESSION_LABELS), ("tiangong-query", QUERY, QUERY_LABELS)],
)
def test_a_labelled_log_keeps_its_labels(fmt, log, labels):
  (session,), s = read(fmt, labels)
  assert lists([session])[0][1][0][5] == LABELS_23 and not s.skipped
  joined, _ = read(fmt, log, labels=labels)
  assert lists(joined)[1][1][1][5] == LABELS_23


def test_the_per_query_fixture_reads_as_the_per_session_one():
  by_session = lists(read("tiangong-session", SESSION, labels=SESSION_LABELS)[0])
  assert lists(read("tiangong-query", QUERY, labels=QUERY_LABELS)[0]) == by_session
  assert lists(read("tiangong-query", QUERY_LABELS)[0]) == lists(
    read("tiangong-session", SESSION_LABELS)[0]
  )


def test_cacm_per_query_writer_columns_read_as_ncm_layout(tmp_path):
  path = tmp_path / "train_per_query.txt"  # CACM writes two columns of 0 after the query id
  path.write_text(
    "".join(
      "\t".join(cols[:2] + ["0", "0"] + cols[2:]) + "\n"
      for cols in (line.split("\t") for line in QUERY.read_text().splitlines())
    )
  )
  assert lists(read("tiangong-query", path)[0]) == lists(read("tiangong-query", QUERY)[0])


def test_the_fixtures_are_the_data_directory_sample(shared_data):
  train = shared_data("tiangong_st_fragments", "train_per_session.txt").read_text()
  blocks = train.strip().split("\n\n")
  assert SESSION.read_text().strip().split("\n\n") == [blocks[0], blocks[13]]
  label_file = shared_data("tiangong_st_fragments", "human_label_for_CACM.txt")
  assert SESSION_LABELS.read_text().strip() == label_file.read_text().strip()


def _fragment_options(shared_data):
  d = shared_data("tiangong_st_fragments")
  return d, {
    "queries": d / "qid_query.json",
    "query_nodes": d / "qid_nid.dict",
    "doc_nodes": d / "uid_nid.dict",
    "verticals": d / "vid_vtype.json",
  }


@pytest.mark.parametrize(
  "name", ["train_per_session.txt", "dev_per_session.txt", "test_per_session.txt"]
)
def test_every_line_of_the_sample_is_read_or_counted(shared_data, name):
  d, options = _fragment_options(shared_data)
  sessions, s = read("tiangong-session", d / name, **options)
  lines = [line.split("\t") for line in (d / name).read_text().splitlines() if line.strip()]
  assert s.results + s.reasons["duplicate_doc"] == len(lines)
  assert s.sessions == len((d / name).read_text().strip().split("\n\n")) == len(sessions)
  assert s.clicks <= sum(int(cols[3]) for cols in lines)  # a duplicate document's click is lost
  assert set(s.reasons) <= {"duplicate_doc"}  # every id in the dictionaries
  texts = json.loads(options["queries"].read_text())
  first = sessions[0].interactions[-1]
  assert first.query == (texts[first.query_id] or None)


def test_stats_and_prepare_on_the_sample(shared_data, tmp_path, capsys):
  d, options = _fragment_options(shared_data)
  flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
  logs = [str(d / f"{split}_per_session.txt") for split in ("train", "dev", "test")]
  common = ["--format", "tiangong-session", *logs, *flags, "--quiet"]
  cli.main(["data", "stats", *common])
  counts = json.loads(capsys.readouterr().out)
  assert counts["sessions"] == 50 and counts["skipped_by_reason"] == {"duplicate_doc": 10}
  cli.main(
    ["data", "prepare", *common, "--labels", str(d / "human_label_for_CACM.txt")]
    + ["--split-by", "labelled", "--output", str(tmp_path), "--name", "tgp", "--json"]
  )
  res = json.loads(capsys.readouterr().out)
  test = store.open_split(res["path"], "test")
  assert len(test) == 1 and test[0]["qid"].decode() == "23"  # the one labelled query
  assert list(test[0]["label_human"]) == LABELS_23
  assert len(store.open_split(res["path"], "train")) == counts["unique_queries"] - 1


@pytest.mark.parametrize(
  "fmt, line, reason",
  [
    ("tiangong-session", "[1]\t[]\t[5, 1, 2]", "bad_line"),
    ("tiangong-session", "[1]\t[]\t[5, 1, 2]\t0\t3\t9", "bad_line"),
    ("tiangong-session", "[1]\t[],[]\t[5, 1, 2]\t0", "bad_line"),  # a comma inside a column
    ("tiangong-session", "[1]\t[]\t[5, 1, 2]\tyes", "bad_json"),
    ("tiangong-session", f"[1]\t[]\t[5, 1, 2]\t{'9' * 5000}", "bad_json"),  # past int()'s digits
    ("tiangong-session", "[]\t[]\t[5, 1, 2]\t0", "bad_field:query_ids"),
    ("tiangong-session", "[1.5]\t[]\t[5, 1, 2]\t0", "bad_field:query_ids"),
    ("tiangong-session", "[1]\t[3, 1]\t[5, 1, 2]\t0", "bad_field:previous"),
    ("tiangong-session", "[1]\t[]\t[5, 1]\t0", "bad_field:document"),
    ("tiangong-session", "[1]\t[]\t[-5, 1, 2]\t0", "bad_field:document"),
    ("tiangong-session", "[1]\t[]\t[5, 0, 2]\t0", "bad_field:ranks"),
    ("tiangong-session", "[1]\t[]\t[5, 1, 2]\t2", "bad_field:clicks"),
    ("tiangong-session", "[1]\t[]\t[5, 1, 2]\ttrue", "bad_field:clicks"),
    ("tiangong-session", "[1]\t[]\t[5, 1, 2]\t1e400", "bad_field:clicks"),  # infinity
    ("tiangong-session", "[1]\t[]\t[5, 1, 2]\t0\t7", "bad_field:labels"),
    ("tiangong-session", "[7]\t[9, 1, 2, 0]\t[5, 2, 2]\t0", "orphan_line"),  # no [] line
    ("tiangong-query", "1\t2\t[5, 6]\t[1, 1]", "bad_line"),
    ("tiangong-query", "1\t2\t7\t9\t[5, 6]\t[1, 1]\t[0, 1]", "bad_line"),  # not CACM's zeros
    ("tiangong-query", "s1\t2\t[5, 6]\t[1, 1]\t[0, 1]", "bad_json"),
    ("tiangong-query", "-1\t2\t[5, 6]\t[1, 1]\t[0, 1]", "bad_field:session_id"),
    ("tiangong-query", '1\t"2"\t[5, 6]\t[1, 1]\t[0, 1]', "bad_field:query_id"),
    ("tiangong-query", "1\t2\t5\t[1, 1]\t[0, 1]", "bad_field:doc_ids"),
    ("tiangong-query", "1\t2\t[5, 6]\t[1]\t[0, 1]", "bad_field:verticals"),
    ("tiangong-query", "1\t2\t[5, 6]\t[1, 1]\t[0, 3]", "bad_field:clicks"),
    ("tiangong-query", "1\t2\t[5, 6]\t[1, 1]\t[0, 1]\t[1, NaN, 2]", "bad_field:labels"),
    ("tiangong-query", "1\t2\t[5, 6]\t[1, 1]\t[0, 1]\t[1, -Infinity]", "bad_field:labels"),
  ],
)
def test_a_line_outside_the_layout_is_a_counted_skip(tmp_path, fmt, line, reason):
  path = tmp_path / "log.txt"
  good = {"tiangong-session": "[1]\t[]\t[5, 1, 2]\t0", "tiangong-query": "1\t2\t[5]\t[1]\t[0]"}
  path.write_text(f"{good[fmt]}\n{line}\n")
  sessions, s = read(fmt, path)
  assert s.reasons == {reason: 1} and s.examples[reason][0].startswith(f"{path}:2: ")
  assert s.sessions == 1 and s.results == 1


def test_ids_outside_the_dictionaries_are_counted(tmp_path):
  (tmp_path / "qid_nid.dict").write_text("{0: 0, 1: 1, 22: 2}")  # no query 23
  (tmp_path / "uid_nid.dict").write_text("{%s}" % ", ".join(f"{u}: {u}" for u in range(1, 202)))
  verticals = {str(v): "x" for v in range(100) if v != 78}  # query 22's document at rank 8
  (tmp_path / "vid_vtype.json").write_text(json.dumps(verticals))
  sessions, s = read(
    "tiangong-session",
    SESSION,
    query_nodes=tmp_path / "qid_nid.dict",
    doc_nodes=tmp_path / "uid_nid.dict",
    verticals=tmp_path / "vid_vtype.json",
  )
  assert s.reasons == {"unknown_query": 1, "unknown_doc": 1, "unknown_vertical": 1}
  assert [i.query_id for x in sessions for i in x.interactions] == ["0", "1", "22"]
  assert s.examples["unknown_doc"][0].startswith(f"{SESSION}:1: ")  # uid 0, the first line
  assert s.results == 40 - 10 - 2  # query 23's ten, uid 0's and vid 78's


def test_a_pair_graded_twice_differently_keeps_its_first_grade(tmp_path):
  labels = tmp_path / "labels.txt"
  labels.write_text(
    QUERY_LABELS.read_text() + QUERY_LABELS.read_text().replace("[2, 2, 2,", "[4, 2, 2,")
  )
  sessions, s = read("tiangong-query", QUERY, labels=labels)
  assert s.reasons == {"conflicting_label": 1}
  assert lists(sessions)[1][1][1][5] == LABELS_23


def test_a_label_file_given_with_several_logs_is_read_once(tmp_path):
  labels = tmp_path / "labels.txt"
  labels.write_text(QUERY_LABELS.read_text() + "1\t2\t[5]\t[1]\t[0]\t[9]\n")
  _, s = read("tiangong-query", [QUERY, QUERY], labels=labels)
  assert s.reasons == {"bad_field:labels": 1}


@pytest.mark.parametrize(
  "text, position, found",
  [
    ("{0: 1, 1: 2", "1:8", "'1: 2'"),
    ("{0: 1,\n 1: x}", "2:2", "'1: x}'"),
    ("[0, 1]", "1:1", "'[0, 1]'"),
    ("{0: 1} junk", "1:8", "'junk'"),
    ("{'a': 1}", "1:2", "\"'a': 1}\""),
    ("", "1:1", "''"),
  ],
)
def test_an_id_dictionary_that_is_not_one_is_one_line(tmp_path, text, position, found):
  path = tmp_path / "qid_nid.dict"
  path.write_text(text)
  message = f"error: {path}:{position}: not an id dictionary {{int: int, ...}} (at {found})"
  argv = ["data", "stats", "--format", "tiangong-session", str(SESSION), "--quiet"]
  with pytest.raises(SystemExit, match=f"^{re.escape(message)}$"):
    cli.main([*argv, "--query-nodes", str(path)])


def test_a_vertical_dictionary_that_is_not_one_is_one_line(tmp_path):
  path = tmp_path / "vid_vtype.json"
  path.write_text('{"1": 30000401}')
  message = f"error: {path}: '1' has text 30000401 in the vertical types, not a string"
  argv = ["data", "stats", "--format", "tiangong-query", str(QUERY), "--quiet"]
  with pytest.raises(SystemExit, match=f"^{re.escape(message)}$"):
    cli.main([*argv, "--verticals", str(path)])


def test_a_log_in_the_other_layout_stops_the_command():
  argv = ["data", "stats", "--format", "tiangong-query", str(SESSION), "--quiet"]
  with pytest.raises(SystemExit, match=r"are these files in --format tiangong-query\?.*:1: "):
    cli.main(argv)
