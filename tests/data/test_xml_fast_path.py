"""The XML session reader's C walk (`_xml_fields.pyx`) against its Python walk: the same sessions,
counts, skips and skip locations on every log, quirky and hostile ones included."""

import dataclasses
import math
import pathlib
import shutil
import sysconfig

import pytest

from rankjax.data import readers
from rankjax.data.readers import xml_sessions

FIX = pathlib.Path(__file__).parent.parent / "fixtures" / "logs"

# One session per case the C walk must read as lxml does, or leave to the Python walk.
EDGE_CASES = """<?xml version="1.0" encoding="utf-8"?>
<sessiontrack2013 xmlns:x="urn:x">
  <session num="1"><topic num="t&amp;1"/>
    <interaction num="1"><query>\u3000 padded in Unicode \u3000</query><results>
      <result rank="1"><docno> d1 </docno><title>\u00a0T\u00e9\u00a0</title><snippet>s</snippet>
      </result>
      <result rank="2"><docno>d2</docno><title><![CDATA[in cdata]]></title></result>
      <result rank="3"><docno>d3</docno><title>a &amp; b &#x41;</title><snippet> </snippet></result>
      <result rank="4"><docno>d4</docno><docno>d4b</docno><snippet>only a snippet</snippet></result>
      <result rank="5"><docno>d5</docno><title>before<!-- a comment -->after</title></result>
      <result rank="6"><x:docno>not an id</x:docno><docno>d6</docno><x:title>x</x:title></result>
    </results><clicked>
      <click starttime="1" endtime="3"><rank> 2 </rank></click>
      <click starttime="09:54:42.5" endtime="09:55:00"><docno>d4b</docno></click>
      <click starttime="5" endtime="4"><rank>1</rank></click>
      <click starttime="5"><rank>6</rank></click>
    </clicked></interaction>
  </session>
  <session num="2">
    <interaction num="1"><query>rank with a space</query><results>
      <result rank=" 1"><docno>d1</docno></result><result rank="2"><docno>d2</docno></result>
    </results></interaction>
    <interaction num="2"><query>signed</query><results>
      <result rank="+1"><docno>d1</docno></result>
    </results></interaction>
    <interaction num="3"><query>zero</query><results>
      <result rank="0"><docno>d1</docno></result>
    </results></interaction>
    <interaction num="4"><query>huge</query><results>
      <result rank="99999999999999999999"><docno>d1</docno></result>
    </results></interaction>
    <interaction num="5"><query>arabic</query><results>
      <result rank="\u0663"><docno>d1</docno></result>
    </results></interaction>
    <interaction num="6"><query>ok</query><results>
      <result rank="1"><docno>d9</docno></result>
    </results></interaction>
  </session>
  <session num="3">
    <interaction num="1"><query>no id</query><results>
      <result rank="1"><docno>d1</docno></result>
      <result rank="2"><docno>  </docno></result>
      <result rank="3"/>
    </results></interaction>
    <interaction num="2"><results>
      <result rank="1"><docno>d1</docno></result>
    </results></interaction>
    <interaction num="3"><query> </query><results>
      <result rank="1"><docno>d1</docno></result>
    </results></interaction>
    <interaction num="4"><query>no results</query><results/></interaction>
  </session>
  <session num="4">
    <interaction num="1"><query>order and repeats</query><results>
      <result rank="3"><docno>c</docno></result><result rank="1"><docno>a</docno></result>
      <result rank="1"><docno>b</docno></result><result rank="2"><docno>c</docno></result>
    </results><clicked>
      <click><rank>7</rank></click><click><rank>x</rank></click><click/><click><rank/></click>
      <click><rank>2</rank><docno>a</docno></click><click><docno>zz</docno></click>
    </clicked></interaction>
  </session>
  <session num="5"><interaction num="1"><query>q&#x2028;</query><results>
    <result rank="1"><docno>\u2003d\u2003</docno><title>t</title><snippet>\u3000</snippet></result>
  </results></interaction></session>
  <x:session num="6"><interaction num="1"><query>namespaced session</query><results>
    <result rank="1"><docno>d1</docno></result></results></interaction></x:session>
  <session num="7"/>
</sessiontrack2013>
"""


def _plain(value):
  """A session as nested plain values, NaN as a string, so that == compares it."""
  if dataclasses.is_dataclass(value):
    return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
  if isinstance(value, dict):
    return {k: _plain(v) for k, v in value.items()}
  if isinstance(value, list | tuple):
    return [_plain(v) for v in value]
  if isinstance(value, float) and math.isnan(value):
    return "nan"
  return value


def _read(fmt, path, **opts):
  summary = readers.ReadSummary()
  sessions = [_plain(s) for s in readers.read_sessions(fmt, path, summary, **opts)]
  counts = (summary.sessions, summary.interactions, summary.results, summary.clicks)
  return sessions, counts, dict(summary.reasons), dict(summary.repaired), dict(summary.examples)


class _Counting(xml_sessions._Strict):
  """`_xml_fields` and `_STRICT` that count the sessions the C walk leaves to the Python walk, the
  ones it reads that are then read again (something to skip or repair), and the ones it reads."""

  def __init__(self, module):
    self.module, self.left, self.again, self.taken = module, 0, 0, 0

  def session_fields(self, *args):
    out = self.module.session_fields(*args)
    self.left += out is None
    self.taken += out is not None
    return out

  def skip(self, *_):
    self.again += 1
    self.taken -= 1
    super().skip()

  repair = bad_field = skip


def _both_walks(monkeypatch, fmt, path, **opts):
  """The read with the C walk and with the Python walk alone; the first is checked to have taken
  the C walk for some sessions."""
  fast = _Counting(xml_sessions._xml_fields)
  monkeypatch.setattr(xml_sessions, "_xml_fields", fast)
  monkeypatch.setattr(xml_sessions, "_STRICT", fast)
  with_c = _read(fmt, path, **opts)
  monkeypatch.setattr(xml_sessions, "_xml_fields", None)
  python = _read(fmt, path, **opts)
  return with_c, python, fast


needs_c = pytest.mark.skipif(
  xml_sessions._xml_fields is None, reason="the C walk is not built (no C compiler at install)"
)


def test_c_walk_is_built_where_there_is_a_compiler():
  compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
  if not shutil.which(compiler):
    pytest.skip(f"no C compiler ({compiler}): the reader walks in Python")
  assert xml_sessions._xml_fields is not None, (
    "rankjax/data/readers/_xml_fields.pyx is not built: pip install -e . builds it"
  )


@needs_c
def test_edge_cases_read_the_same_and_clean_sessions_take_the_c_walk(tmp_path, monkeypatch):
  path = tmp_path / "edges.xml"
  path.write_text(EDGE_CASES, encoding="utf-8")
  with_c, python, fast = _both_walks(monkeypatch, "trec-session", path)
  assert with_c == python
  sessions, _, reasons, repaired, _ = python
  # Every kind of quirk above is met (so that the comparison covers it).
  assert {"bad_field:ranks", "missing_doc_id", "missing_query", "empty_interaction"} <= set(reasons)
  assert {"duplicate_rank", "duplicate_doc", "click_on_unshown_rank", "bad_click"} <= set(reasons)
  assert {"bad_field:click_ranks", "click_doc_mismatch", "empty_session"} <= set(reasons)
  assert "negative_dwell" in repaired
  first = sessions[0]["interactions"][0]
  assert first["query"] == "padded in Unicode" and first["topic"] == "t&1"
  assert first["doc_ids"] == ["d1", "d2", "d3", "d4b", "d5", "d6"]
  assert first["doc_texts"][:5] == ["Té s", "in cdata", "a & b A", "only a snippet", "beforeafter"]
  # The C walk leaves sessions 2 and 3 (ranks, ids) to the Python walk; 1, 4 and 7 have clicks
  # to skip or repair, or no interaction, and are read again; 5 is taken from the C walk. The
  # namespaced session is no session for either walk (the parser's tag filter is "session").
  assert (fast.left, fast.again, fast.taken) == (2, 3, 1)


@needs_c
@pytest.mark.parametrize(
  "fmt, name, opts",
  [
    ("trec-session", "trec_quirks.xml", {"labels": FIX / "trec_quirks_qrels.txt"}),
    (
      "tiangong-st",
      "tiangong_st_sample.xml",
      {"labels": FIX / "tiangong_st_labels.txt", "queries": FIX / "tiangong_st_queries.json"},
    ),
    ("trec-session", "trec_truncated.xml", {}),
    ("trec-session", "trec_wrong_encoding.xml", {}),
    ("trec-session", "billion_laughs.xml", {}),
    ("trec-session", "external_entity.xml", {}),
    ("trec-session", "undeclared_entity.xml", {}),
  ],
)
def test_fixture_logs_read_the_same(fmt, name, opts, monkeypatch):
  with_c, python, _ = _both_walks(monkeypatch, fmt, FIX / name, **opts)
  assert with_c == python


@needs_c
@pytest.mark.parametrize("year", ["2012", "2013"])
def test_real_trec_logs_read_the_same_mostly_in_c(shared_data, year, monkeypatch):
  path = shared_data("trec_session_2012_2013", f"sessiontrack{year}.xml")
  qrels = shared_data("trec_session_2012_2013", f"relevance{year}.txt")
  with_c, python, fast = _both_walks(monkeypatch, "trec-session", path, labels=qrels)
  assert with_c == python
  # 2012: 80 of 98 sessions (12 with a click to skip, 6 with a result to skip); 2013: 131 of 133
  # (2 with a result to skip).
  assert fast.taken > 0.8 * (fast.taken + fast.again + fast.left), vars(fast)
