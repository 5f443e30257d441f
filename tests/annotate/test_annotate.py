"""Prompts, output parsing, the store and the runner (with a scripted backend; no model)."""

import math

import pytest

from rankjax import registry
from rankjax.annotate import modes, parsing, prompts, runner
from rankjax.annotate import store as store_lib
from rankjax.annotate.tasks import Result
from rankjax.data.schema import RankingList


@pytest.mark.parametrize("mode", sorted(modes.MODES))
@pytest.mark.parametrize("lang", prompts.LANGS)
def test_every_template_renders(mode, lang):
  t = prompts.load(mode, lang)
  assert t.version.startswith(f"{mode}.{lang}.v1+")
  listwise = modes.get(mode).shape == "listwise"
  docs = ["doc one {braces} stay", "doc two"] if listwise else ["doc {x}"]
  msgs = t.messages("q {text}", docs)
  assert [m["role"] for m in msgs] == ["system", "user"]
  user = msgs[1]["content"]
  assert "q {text}" in user and all(d in user for d in docs)
  if listwise:
    assert "[2] doc two" in user and "2" in user
  # The query stands at a line start, so the shared prefix ends on a line boundary.
  assert "\nq {text}\n" in user


def test_template_version_follows_content(tmp_path):
  src = (prompts.TEMPLATE_DIR / "pointwise_binary.en.txt").read_text()
  (tmp_path / "pointwise_binary.en.txt").write_text(src.replace("search quality", "careful"))
  edited = prompts.load("pointwise_binary", "en", str(tmp_path))
  assert edited.version.split("+")[0] == "pointwise_binary.en.v1"
  assert edited.version != prompts.load("pointwise_binary", "en").version


def test_bad_template_is_named(tmp_path):
  (tmp_path / "pointwise_graded.en.txt").write_text("version: 1\n[system]\ns\n[user]\n{query}\n")
  with pytest.raises(ValueError, match=r"pointwise_graded.en.txt.*placeholders"):
    prompts.load("pointwise_graded", "en", str(tmp_path))
  with pytest.raises(registry.UnknownName, match="unknown annotation mode 'pairwise'; known: "):
    prompts.load("pairwise")
  with pytest.raises(registry.UnknownName, match="unknown language 'fr'; known: .*en"):
    prompts.load("pointwise_graded", "fr")


@pytest.mark.parametrize(
  "text,grade",
  [
    ("3", 3),
    (" 0\n", 0),
    ("Relevance grade: 4", 4),
    ("**2**", 2),
    ("Grade: 1/4", 1),
    ("I would rate this 3 out of 4.", 3),
    ("相关性等级：2", 2),
  ],
)
def test_parse_grade(text, grade):
  assert parsing.parse_grade(text) == grade


@pytest.mark.parametrize(
  "text", ["", "The document is about cats.", "2 or 3", "7", "2.5", "Relevance: 9"]
)
def test_parse_grade_rejects_malformed(text):
  with pytest.raises(parsing.ParseError):
    parsing.parse_grade(text)


def test_parse_binary():
  assert [
    parsing.parse_binary(t) for t in ["1", "0", "Yes", "No.", "not relevant", "是", "否", "不相关"]
  ] == [1, 0, 1, 0, 0, 1, 0, 0]
  with pytest.raises(parsing.ParseError):
    parsing.parse_binary("maybe")


def test_parse_listwise():
  assert parsing.parse_listwise_graded("[1] 4\n[2] 0\n[3] 2", 3) == [4, 0, 2]
  assert parsing.parse_listwise_graded("1: 4, 2: 0", 2) == [4, 0]
  for bad in ["[1] 4\n[2] 0", "[1] 4\n[2] 7\n[3] 1", "[1] 4\n[1] 3\n[2] 0\n[3] 1", "[4] 1"]:
    with pytest.raises(parsing.ParseError):
      parsing.parse_listwise_graded(bad, 3)
  assert parsing.parse_select("[1], [3]", 3) == [1, 0, 1]
  assert parsing.parse_select("无", 2) == [0, 0]
  for bad in ["[5]", "I cannot tell."]:
    with pytest.raises(parsing.ParseError):
      parsing.parse_select(bad, 3)


def test_parse_ranking_permutation_to_grades():
  assert parsing.parse_ranking("[2] > [3] > [1]", 3) == [0, 4, 2]
  # Repeats and out-of-range ids dropped; the missing document goes last.
  assert parsing.parse_ranking("[2] > [2] > [9] > [1]", 3) == [2, 4, 0]
  assert parsing.parse_ranking("[1]", 1) == [4]
  with pytest.raises(parsing.ParseError):
    parsing.parse_ranking("no idea", 3)


def test_expected_grade_from_openai_top_logprobs():
  lp = {"3": math.log(0.6), " 4": math.log(0.2), "4": math.log(0.1), "The": math.log(0.1)}
  e, p = parsing.expected_grade(lp, 4)
  assert p == pytest.approx([0, 0, 0, 2 / 3, 1 / 3])
  assert e == pytest.approx(3 * 2 / 3 + 4 / 3)
  with pytest.raises(parsing.ParseError):
    parsing.expected_grade({"The": -0.1}, 4)


def _lists():
  return [
    RankingList(
      "q1",
      ["a", "b", "c"],
      query="cheap flights",
      doc_texts=["Cheap flights to anywhere.", "A recipe for bread.", ""],
    ),
    RankingList("q2", ["a", "d"], query="bread", doc_texts=["Bread, " * 300, "Flights."]),
    RankingList("q3", ["e"]),  # no text: counted
  ]


def test_make_tasks_counts_and_truncates():
  t = prompts.load("pointwise_graded")
  tasks, counts = runner.make_tasks(_lists(), t, max_doc_words=20)
  assert counts == {"pairs": 4, "no_text": 1, "no_query": 1}
  assert [(x.qid, x.doc_ids) for x in tasks] == [
    ("q1", ("a",)),
    ("q1", ("b",)),
    ("q2", ("a",)),
    ("q2", ("d",)),
  ]
  assert len(tasks[2].docs[0].split()) == 20
  assert runner.truncate_words("中" * 500, 20) == "中" * 160  # no spaces: cut by characters
  assert [(x.qid, x.doc_ids) for x in runner.pending(tasks, {("q1", "a"), ("q2", "d")})] == [
    ("q1", ("b",)),
    ("q2", ("a",)),
  ]
  # --limit: the first pairs of the log, whether stored or not (so a rerun covers the same ones).
  tasks, counts = runner.make_tasks(_lists(), t, limit=3)
  assert [(x.qid, x.doc_ids) for x in tasks] == [("q1", ("a",)), ("q1", ("b",)), ("q2", ("a",))]
  assert counts == {"pairs": 3, "beyond_limit": 1, "no_text": 1, "no_query": 1}
  lw, counts = runner.make_tasks(_lists(), prompts.load("listwise_rank"), window=2)
  assert [x.doc_ids for x in lw] == [("a", "b"), ("a", "d")]
  # A listwise window reaching past the limit is kept whole; a partly stored one is asked whole.
  lw, counts = runner.make_tasks(_lists(), prompts.load("listwise_rank"), window=2, limit=1)
  assert [x.doc_ids for x in lw] == [("a", "b")] and counts["beyond_limit"] == 2
  assert (
    runner.pending(lw, {("q1", "a")}) == lw and runner.pending(lw, {("q1", "a"), ("q1", "b")}) == []
  )


class ScriptedBackend:
  """Labels by a keyword; fails tasks whose document says 'garbage'."""

  name = "scripted"
  model = "script-1"
  shapes = tuple(modes.SHAPES)

  def __init__(self):
    self.seen = []

  def process(self, tasks, should_stop):
    for t in tasks:
      if should_stop():
        return
      self.seen.append((t.qid, t.doc_ids))
      if any("garbage" in d for d in t.docs):
        yield Result(t, None, "???", status="failed", error="unparsable twice", attempts=2)
      else:
        labels = [4 if "flight" in d.lower() else 0 for d in t.docs]
        yield Result(t, labels, " ".join(map(str, labels)), prompt_tokens=10, completion_tokens=1)


def test_annotate_stores_and_resumes(tmp_path):
  t = prompts.load("pointwise_graded")
  lists = _lists() + [RankingList("q4", ["g"], query="x", doc_texts=["garbage"])]
  with store_lib.Store(tmp_path / "a.db") as st:
    tasks, _ = runner.make_tasks(lists, t)
    backend = ScriptedBackend()
    summary = runner.annotate(tasks, backend, st, progress=False)
    assert (summary.pairs_ok, summary.pairs_failed, summary.prompt_tokens) == (4, 1, 40)
    rows = {(r["qid"], r["doc_id"]): r for r in st.rows(model="script-1")}
    assert rows[("q1", "a")]["label"] == 4 and rows[("q1", "b")]["label"] == 0
    assert rows[("q4", "g")]["status"] == "failed" and rows[("q4", "g")]["label"] is None
    assert rows[("q1", "a")]["prompt_version"] == t.version
    # Rerun: nothing left; with failures retried, only the failed pair runs again.
    statuses = st.statuses("script-1", t.version, t.mode)
    assert runner.pending(tasks, statuses) == []
    ok = {k for k, s in statuses.items() if s == "ok"}
    assert [x.qid for x in runner.pending(tasks, ok)] == ["q4"]


def test_store_never_overwrites_ok_and_replaces_failed(tmp_path):
  t = prompts.load("pointwise_binary")
  tasks, _ = runner.make_tasks(_lists()[:1], t)
  with store_lib.Store(tmp_path / "s.db") as st:
    st.put(Result(tasks[0], [1], "1"), "m", "b")
    st.put(Result(tasks[0], [0], "0"), "m", "b")
    st.put(Result(tasks[1], None, "?", status="failed"), "m", "b")
    st.put(Result(tasks[1], [0], "0"), "m", "b")
    rows = {r["doc_id"]: r for r in st.rows()}
    assert st.count() == 2
    assert rows["a"]["label"] == 1 and rows["b"]["status"] == "ok" and rows["b"]["label"] == 0
    with pytest.raises(ValueError, match="unknown columns"):
      st.rows(nope=1)


def test_listwise_result_is_one_row_per_document(tmp_path):
  t = prompts.load("listwise_graded")
  tasks, _ = runner.make_tasks(_lists()[:1], t)
  with store_lib.Store(tmp_path / "l.db") as st:
    runner.annotate(tasks, ScriptedBackend(), st, progress=False)
    rows = sorted(st.rows(), key=lambda r: r["position"])
    assert [(r["doc_id"], r["label"], r["group_size"]) for r in rows] == [("a", 4, 2), ("b", 0, 2)]
