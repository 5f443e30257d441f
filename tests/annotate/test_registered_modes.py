"""Invariants every registered annotation mode keeps (parameterized over `modes.MODES`): a valid
template per language, a parser that reads back the answer format its record writes, labels
bounded by its max grade, and a run through the runner and the store."""

import numpy as np
import pytest

from rankjax.annotate import modes, parsing, prompts, runner
from rankjax.annotate import store as store_lib
from rankjax.annotate.tasks import Result
from rankjax.data.schema import RankingList

NAMES = sorted(modes.MODES)


def _sizes(mode):
  return [1] if mode.shape == "pointwise" else [1, 2, 3, 7, 10]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("lang", prompts.LANGS)
def test_a_template_per_language(name, lang):
  t = prompts.load(name, lang)  # the file exists and holds its shape's placeholders
  assert t.spec is modes.get(name) and t.mode == name
  assert t.version.startswith(f"{name}.{lang}.v")
  assert (prompts.TEMPLATE_DIR / f"{name}.{lang}.txt").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_parser_reads_back_well_formed_answers_within_the_scale(name):
  mode = modes.get(name)
  rng = np.random.default_rng(0)
  for n in _sizes(mode):
    draws = [[0] * n, [mode.max_grade] * n] + [
      rng.integers(0, mode.max_grade + 1, n).tolist() for _ in range(20)
    ]
    for labels in draws:
      parsed = mode.parse(mode.answer(labels), n)
      assert len(parsed) == n and all(0 <= g <= mode.max_grade for g in parsed), (labels, parsed)
      # What the mode can express reads back exactly (a ranking keeps only the order of labels).
      assert mode.parse(mode.answer(parsed), n) == parsed, (labels, parsed)
      assert all(
        parsed[i] >= parsed[j] for i in range(n) for j in range(n) if labels[i] > labels[j]
      ), (labels, parsed)
    assert max(mode.parse(mode.answer([mode.max_grade] * n), n)) == mode.max_grade


@pytest.mark.parametrize("name", NAMES)
def test_labels_never_exceed_the_max_grade(name):
  mode = modes.get(name)
  for n in _sizes(mode):
    for labels in ([mode.max_grade + 1] * n, [mode.max_grade + 7] + [0] * (n - 1)):
      try:
        parsed = mode.parse(mode.answer(labels), n)
      except parsing.ParseError:
        continue  # refused: the answer is off the scale
      assert all(0 <= g <= mode.max_grade for g in parsed), (labels, parsed)


class AnswerByKeyword:
  """A backend replying in each task's mode format: the top grade for documents about flights."""

  name = "keyword"
  model = "keyword-1"
  shapes = tuple(modes.SHAPES)

  def process(self, tasks, should_stop):
    for t in tasks:
      text = t.spec.answer([t.spec.max_grade * ("flight" in d.lower()) for d in t.docs])
      yield Result(t, t.spec.parse(text, len(t.docs)), text)


@pytest.mark.parametrize("name", NAMES)
def test_runner_and_store_run_every_mode(name, tmp_path):
  mode = modes.get(name)
  lists = [
    RankingList(
      "q1",
      ["a", "b", "c"],
      query="cheap flights",
      doc_texts=["Cheap flights to Rome.", "Bread.", "Flight deals."],
    )
  ]
  template = prompts.load(name)
  tasks, counts = runner.make_tasks(lists, template, window=2)
  assert counts["pairs"] == 3
  assert [len(t.doc_ids) for t in tasks] == ([1, 1, 1] if mode.shape == "pointwise" else [2, 1])
  with store_lib.Store(tmp_path / "s.db") as st:
    summary = runner.annotate(tasks, AnswerByKeyword(), st, progress=False)
    rows = {r["doc_id"]: r for r in st.rows(mode=name, prompt_version=template.version)}
  assert summary.pairs_ok == 3
  assert rows["a"]["label"] == rows["c"]["label"] == mode.max_grade and rows["b"]["label"] == 0
