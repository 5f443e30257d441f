"""Click-log readers: fixtures in each published layout, malformed and hostile input, real logs."""

import inspect
import json
import math
import pathlib
import re
import time
import tracemalloc

import numpy as np
import pytest

from rankjax import registry
from rankjax.cli import data as data_cli
from rankjax.data import readers
from rankjax.data.readers import xml_sessions

FIX = pathlib.Path(__file__).parent.parent / "fixtures" / "logs"


def read(fmt, files, **opts):
  summary = readers.ReadSummary()
  sessions = list(readers.read_sessions(fmt, files, summary, **opts))
  return sessions, summary


def test_tiangong_st_layout():
  sessions, s = read(
    "tiangong-st",
    FIX / "tiangong_st_sample.xml",
    labels=FIX / "tiangong_st_labels.txt",
    queries=FIX / "tiangong_st_queries.json",
  )
  assert [x.session_id for x in sessions] == ["101", "102"]
  a, b = sessions[0].interactions
  assert (a.query_id, a.query, a.click_ranks, a.clicks[:4]) == (
    "q1",
    "迷失传奇",
    [1, 3],
    [1, 0, 1, 0],
  )
  assert a.dwell[0] == 5.0 and math.isnan(a.dwell[1])
  assert (b.query, b.num_clicks) == ("我的世界", 0)  # text from the dictionary, no clicks
  assert b.labels == [i % 5 for i in range(10)]  # labels of (session 101, q2)
  assert a.labels is None  # no labels for this (session, query)
  c, d = sessions[1].interactions
  assert len(c.doc_ids) == 7 and c.click_ranks == [2]  # rank 12 was never shown
  assert len(d.doc_ids) == 11 and d.click_ranks == [11] and d.query == "www.hao123.com"
  assert (s.sessions, s.interactions, s.results, s.clicks, len(s.queries)) == (2, 4, 38, 4, 3)
  assert s.reasons == {"click_on_unshown_rank": 1, "empty_session": 1}
  assert s.examples["click_on_unshown_rank"][0].startswith(
    str(FIX / "tiangong_st_sample.xml") + ":"
  )


def test_trec_quirks_are_counted_with_locations():
  sessions, s = read("trec-session", FIX / "trec_quirks.xml", labels=FIX / "trec_quirks_qrels.txt")
  first, second = sessions[0].interactions
  assert first.doc_ids == ["doc-a", "doc-b"] and first.topic == "7"
  assert first.clicks == [1, 2] and first.click_ranks == [2, 1, 2]
  np.testing.assert_allclose(
    first.dwell, [3.0, 4.5]
  )  # the click that ends before it starts adds none
  assert first.labels == [2.0, 0.0] and second.labels == [0.0, 2.0]
  assert first.doc_texts == ["A sa", "B sb"]
  (g,) = sessions[1].interactions
  assert g.labels == [3.0] and g.dwell == [1.5]  # clock times "09:54:42.5" .. "09:54:44.0"
  assert (s.sessions, s.interactions, s.results, s.clicks, len(s.queries)) == (2, 3, 5, 4, 2)
  assert s.reasons == {
    "duplicate_doc": 1,
    "bad_field:ranks": 2,
    "missing_doc_id": 1,
    "click_on_unshown_rank": 1,
    "bad_field:click_ranks": 1,
    "empty_session": 1,
    "empty_interaction": 1,
  }
  assert s.repaired == {"negative_dwell": 1}
  lines = {e.split(":")[1] for ex in s.examples.values() for e in ex}
  assert all(n.isdigit() for n in lines)


@pytest.mark.parametrize(
  "name, reason, sessions",
  [
    ("trec_truncated.xml", "xml_error", 1),
    ("trec_wrong_encoding.xml", "xml_error", 1),
    ("billion_laughs.xml", "hostile_xml", 0),
    ("external_entity.xml", "hostile_xml", 0),
    ("undeclared_entity.xml", "xml_error", 0),
  ],
)
def test_broken_and_hostile_xml_is_a_counted_skip(name, reason, sessions):
  tracemalloc.start()
  t = time.perf_counter()
  got, s = read("trec-session", FIX / name)
  peak = tracemalloc.get_traced_memory()[1]
  tracemalloc.stop()
  assert len(got) == sessions and s.reasons[reason] == 1
  assert re.match(rf"{re.escape(str(FIX / name))}:\d+", s.examples[reason][0])
  assert peak < 8 << 20 and time.perf_counter() - t < 2.0  # no entity expansion


def test_xml_reader_memory_is_constant(tmp_path):
  result = "".join(
    f'<result rank="{r}"><clueweb12id>d{r}</clueweb12id><title>t</title></result>'
    for r in range(1, 11)
  )
  session = (
    f'<session num="1"><interaction num="1"><query>q</query><results>{result}</results>'
    "<clicked><click><rank>1</rank></click></clicked></interaction></session>\n"
  )
  path = tmp_path / "big.xml"
  with open(path, "w") as f:
    f.write("<log>\n")
    for _ in range(4000):
      f.write(session)
    f.write("</log>\n")
  size = path.stat().st_size
  tracemalloc.start()
  n = sum(1 for _ in readers.read_sessions("trec-session", path))
  peak = tracemalloc.get_traced_memory()[1]
  tracemalloc.stop()
  assert n == 4000 and size > 3 << 20
  assert peak < size / 2  # one read chunk and one session, not the document


def test_sogou_gbk_layout():
  sessions, s = read("sogou", FIX / "sogou_sample.txt", queries=FIX / "sogou_query_id")
  assert [x.interactions[0].query_id for x in sessions] == ["0", "1", "0"]
  first = sessions[0].interactions[0]
  assert first.query == "汉字英雄" and first.click_ranks == [3, 1]  # time order, not rank order
  assert sessions[1].interactions[0].query == "中文"  # the UTF-8 line of a GBK file
  assert (s.sessions, s.results, s.clicks, len(s.queries)) == (3, 30, 3, 2)
  assert s.reasons == {"bad_line": 1, "bad_encoding": 1}
  assert s.examples["bad_encoding"][0].startswith(f"{FIX / 'sogou_sample.txt'}:4")


def test_baidu_ultr_sessions():
  sessions, s = read("baidu-ultr", FIX / "baidu_ultr_sessions.txt")
  a = sessions[0].interactions[0]
  assert (a.query_id, a.query, a.doc_ids, a.clicks) == (
    "1001",
    "5 6 7",
    ["m1", "m2", "m3"],
    [1, 0, 1],
  )
  assert a.dwell[0] == 30.5 and a.dwell[2] == 4.0 and a.doc_texts[0] == "1 2 3 4"
  assert sessions[1].interactions[0].doc_ids == ["m4", "m1"]
  assert (s.sessions, s.results, s.clicks) == (2, 5, 2)
  assert s.reasons == {"bad_field:ranks": 1, "empty_interaction": 1}


def test_generic_jsonl_and_parquet_agree(tmp_path):
  sessions, s = read("jsonl", FIX / "generic_sample.jsonl")
  assert [x.session_id for x in sessions] == ["s1", "s2", "s4"]
  q1, q2 = sessions[0].interactions
  assert (
    q1.clicks == [0, 1, 0]
    and q1.dwell[1] == 12.0
    and q1.labels[:2] == [1.0, 3.0]
    and math.isnan(q1.labels[2])
  )
  assert q2.click_ranks == [2, 1]
  assert (s.sessions, s.interactions, s.results, s.clicks) == (3, 4, 10, 4)
  assert s.reasons == {
    "missing_field": 1,
    "bad_field:clicks": 1,  # one click count for two documents
    "bad_json": 2,
    "click_on_unshown_rank": 1,
  }

  import pyarrow as pa
  import pyarrow.parquet as pq

  rows = [json.loads(line) for line in open(FIX / "generic_sample.jsonl").readlines()[:3]]
  keys = sorted({k for r in rows for k in r})  # from_pylist would take the first row's keys only
  pq.write_table(pa.table({k: [r.get(k) for r in rows] for k in keys}), tmp_path / "log.parquet")
  back, _ = read("parquet", tmp_path / "log.parquet")
  for x, y in zip(back, sessions[:2], strict=True):
    assert [(i.query_id, i.doc_ids, i.clicks, i.click_ranks) for i in x.interactions] == [
      (i.query_id, i.doc_ids, i.clicks, i.click_ranks) for i in y.interactions
    ]


def test_unknown_format_and_option_are_errors_when_called():
  with pytest.raises(registry.UnknownName, match="unknown log format 'aol'; known: .*jsonl"):
    readers.read_sessions("aol", FIX / "generic_sample.jsonl")
  with pytest.raises(ValueError, match="takes options"):
    readers.read_sessions("jsonl", FIX / "generic_sample.jsonl", labels="x")


@pytest.mark.parametrize("fmt", sorted(readers.FORMATS))
def test_every_format_counts_a_garbage_line_rather_than_raising(fmt, tmp_path):
  path = tmp_path / "garbage.log"
  path.write_bytes(b"\x00garbage {not a record <\xff\t\n")
  sessions, summary = read(fmt, path)
  assert not sessions and summary.skipped >= 1, summary.as_dict()


@pytest.mark.parametrize("fmt", sorted(readers.FORMATS))
def test_every_format_record_declares_its_reader_options(fmt):
  record = readers.FORMATS[fmt]
  assert record.name == fmt
  for name, option in record.options.items():
    assert option.help and callable(option.type), (fmt, name)
    assert inspect.signature(record.read).parameters[name].default == option.default


def test_stats_cli_prints_one_json_line(capsys):
  data_cli.main(["stats", "--format", "trec-session", "--quiet", str(FIX / "trec_quirks.xml")])
  out = capsys.readouterr().out.strip().splitlines()
  assert len(out) == 1
  got = json.loads(out[0])
  assert {
    k: got[k]
    for k in ("sessions", "interactions", "results", "clicks", "unique_queries", "skipped")
  } == {
    "sessions": 2,
    "interactions": 3,
    "results": 5,
    "clicks": 4,
    "unique_queries": 2,
    "skipped": 8,
  }


@pytest.mark.parametrize("year", ["2012", "2013"])
def test_real_trec_session_counts_match_the_file(shared_data, year):
  path = shared_data("trec_session_2012_2013", f"sessiontrack{year}.xml")
  qrels = shared_data("trec_session_2012_2013", f"relevance{year}.txt")
  sessions, s = read("trec-session", path, labels=qrels)
  text = path.read_text()
  r = s.reasons
  # Every session, result and click in the file is either read or counted as skipped.
  assert s.sessions + r["empty_session"] == text.count("<session ")
  assert s.interactions + r["empty_interaction"] == text.count("<interaction ")
  assert s.results + r["duplicate_doc"] + r["duplicate_rank"] + r["bad_field:ranks"] == (
    text.count("<result ")
  )
  assert s.clicks + r["click_on_unshown_rank"] + r["bad_click"] + r["bad_field:click_ranks"] == (
    text.count("<click ")
  )
  labelled = [x for sess in sessions for it in sess.interactions for x in (it.labels or [])]
  assert np.isfinite(labelled).sum() > 100


def test_real_sogou_and_baidu_counts_match_the_files(shared_data):
  train = shared_data("sogou_pscm_thuir", "sample", "train_data")
  _, s = read("sogou", train, queries=train.parent / "query_id")
  assert s.sessions + s.skipped == sum(1 for _ in open(train, "rb"))
  assert s.clicks == sum(int(c) for line in open(train) for c in line.split("\t")[2].split())
  val = shared_data("baidu_ultr_val_slice", "val_data.txt")
  sessions, s = read("baidu-ultr-annotations", val)
  assert s.results + s.reasons["duplicate_doc"] == sum(1 for _ in open(val, "rb"))
  assert len(sessions) == len({line.split("\t")[0] for line in open(val)})
  assert all(0 <= x.interactions[0].freq_bucket <= 9 for x in sessions)


def test_gzip_logs_read_like_plain_ones(tmp_path):
  import gzip
  import shutil

  with (
    open(FIX / "baidu_ultr_sessions.txt", "rb") as src,
    gzip.open(tmp_path / "part-00000.gz", "wb") as dst,
  ):
    shutil.copyfileobj(src, dst)
  plain, s1 = read("baidu-ultr", FIX / "baidu_ultr_sessions.txt")
  packed, s2 = read("baidu-ultr", tmp_path / "part-00000.gz")
  assert [x.interactions for x in plain] == [
    x.interactions for x in packed
  ] and s1.reasons == s2.reasons
  with (
    open(FIX / "tiangong_st_sample.xml", "rb") as src,
    gzip.open(tmp_path / "st.xml.gz", "wb") as dst,
  ):
    shutil.copyfileobj(src, dst)
  plain, s1 = read("tiangong-st", FIX / "tiangong_st_sample.xml")
  packed, s2 = read("tiangong-st", tmp_path / "st.xml.gz")
  assert [x.interactions for x in plain] == [
    x.interactions for x in packed
  ] and s1.reasons == s2.reasons


@pytest.mark.slow  # five processes, each importing its parser
def test_parse_benchmark_runs_and_the_parsers_agree(shared_data, tmp_path):
  import subprocess
  import sys

  shared_data("trec_session_2012_2013", "sessiontrack2013.xml")
  if xml_sessions._xml_fields is None:
    pytest.skip("the XML reader's C walk is not built; the benchmark measures it")
  script = pathlib.Path(__file__).resolve().parents[2] / "tools" / "benchmarks" / "xml_parse.py"
  out = subprocess.run(
    [sys.executable, str(script), "--size", "4M", "--repeats", "1", "--minidom-mb", "2"]
    + ["--workdir", str(tmp_path)],
    check=True,
    capture_output=True,
    text=True,
  ).stdout
  rows = [json.loads(line) for line in out.strip().splitlines()]
  parsers = ["rankjax", "rankjax_python", "etree", "lxml", "rankjax", "minidom"]
  assert [r.get("parser") for r in rows[:6]] == parsers
  assert rows[0]["sessions"] == rows[3]["sessions"] > rows[4]["sessions"] > 0  # the script
  assert rows[0]["file_mb"] >= 4  # also asserts that each file's parsers agree on the clicks
  growth = {r["parser"]: r["peak_rss_mb"] - r["baseline_rss_mb"] for r in rows[4:6]}
  assert growth["minidom"] > 4 * growth["rankjax"]  # the whole document against one session
  ratios = ("rankjax_vs_lxml_speed", "rankjax_vs_etree_speed", "rankjax_vs_rankjax_python_speed")
  assert all(rows[6][key] > 0 for key in ratios)
