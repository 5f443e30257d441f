"""Extending the annotation modes: a mode defined here, its record entered with one
`registry.register` call and its templates written to a directory of their own
(`prompts.load(..., template_dir=...)`), runs through `runner` and a backend with no other edit.

The toy is a pointwise three-grade scale (0 not, 1 partly, 2 fully relevant). The backend is the
real `openai_http` with its transport replaced by a scripted model, so the backend's own choices
(answer budget, grade logprobs, parsing, the expected grade over 0..2) come from the record.
"""

import math

import pytest

from rankjax import registry
from rankjax.annotate import modes
from rankjax.annotate import parsing
from rankjax.annotate import prompts
from rankjax.annotate import runner
from rankjax.annotate import store as store_lib
from rankjax.annotate.backends import openai_http
from rankjax.data.schema import RankingList

TERNARY = modes.Mode("toy_ternary", "pointwise", max_grade=2,
                     parse=lambda text, n: [parsing.parse_grade(text, 2)],
                     answer=lambda labels: str(labels[0]))

TEMPLATE = """version: 1
[system]
Grade the document for the query: 0 not relevant, 1 partly relevant, 2 fully relevant.
Reply with a single digit and nothing else.
[user]
Query:
{query}

Document:
{document}

Grade (0-2):
"""


@pytest.fixture
def ternary(tmp_path):
  """The toy registered for one test (the registry is process-wide), and its template directory."""
  for lang in prompts.LANGS:
    (tmp_path / f"{TERNARY.name}.{lang}.txt").write_text(TEMPLATE, encoding="utf-8")
  registry.register(modes.MODES, TERNARY.name)(TERNARY)
  yield str(tmp_path)
  del modes.MODES[TERNARY.name]


def _scripted_model(payloads):
  """A chat model: grade 2 for documents about flights, 1 about travel, else 0, with grade-token
  logprobs (p = 0.7 on its grade, 0.3 on the next one up or down); 'off the scale' answers 3."""

  def post(payload):
    payloads.append(payload)
    user = payload["messages"][1]["content"].lower()
    grade = 2 if "flight" in user.split("document:")[1] else int("travel" in user)
    text = "3" if "off the scale" in user else str(grade)
    other = grade - 1 if grade else 1
    top = [{"token": str(grade), "logprob": math.log(0.7)},
           {"token": str(other), "logprob": math.log(0.3)}]
    return {"choices": [{"message": {"content": text},
                         "logprobs": {"content": [{"token": text, "top_logprobs": top}]}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 1}}

  return post


def test_toy_mode_runs_through_the_runner_and_a_backend(ternary, tmp_path, monkeypatch):
  template = prompts.load(TERNARY.name, "zh", ternary)
  assert template.spec is TERNARY and template.version.startswith("toy_ternary.zh.v1+")
  lists = [RankingList("q1", ["a", "b", "c", "d"], query="cheap flights",
                       doc_texts=["Flights to Rome.", "Travel insurance.", "Bread.",
                                  "Off the scale."])]
  tasks, counts = runner.make_tasks(lists, template)
  assert counts["pairs"] == 4 and [t.doc_ids for t in tasks] == [("a",), ("b",), ("c",), ("d",)]
  backend = openai_http.OpenAIHttpBackend("http://scripted.invalid/v1", "scripted")
  payloads = []
  monkeypatch.setattr(backend, "_post", _scripted_model(payloads))
  with store_lib.Store(tmp_path / "toy.db") as st:
    summary = runner.annotate(tasks, backend, st, progress=False)
    rows = {r["doc_id"]: r for r in st.rows(mode=TERNARY.name)}
  assert (summary.pairs_ok, summary.pairs_failed) == (3, 1)
  assert {d: rows[d]["label"] for d in "abc"} == {"a": 2, "b": 1, "c": 0}
  assert rows["a"]["expected"] == pytest.approx(0.7 * 2 + 0.3 * 1)
  assert len(rows["a"]["probs"].split(",")) == TERNARY.max_grade + 1
  # A grade above the toy's scale is unparsable: re-asked once, then recorded as a failure.
  assert rows["d"]["status"] == "failed" and "outside 0..2" in rows["d"]["error"]
  assert {r["prompt_version"] for r in rows.values()} == {template.version}
  assert all(p["max_tokens"] == 16 and p["logprobs"] for p in payloads)


def test_an_unregistered_mode_is_an_unknown_name(tmp_path):
  (tmp_path / f"{TERNARY.name}.en.txt").write_text(TEMPLATE, encoding="utf-8")
  with pytest.raises(registry.UnknownName, match="unknown annotation mode 'toy_ternary'"):
    prompts.load(TERNARY.name, "en", str(tmp_path))
