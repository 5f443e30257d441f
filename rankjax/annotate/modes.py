"""Annotation modes by name: what a prompt shows the model, and how its answer becomes labels.

A mode is one record, `Mode`, registered in `MODES` where it is defined (`registry.register`);
`get(name)` finds it. Its prompt templates are files named by the mode,
`templates/<name>.<lang>.txt` (`prompts`): a new mode is its record and its template files. The
runner, the prompts, the store and the backends ask the record; none of them branches on a mode's
name.

The shape says how documents reach the prompt and how a backend may answer:

  pointwise  one document per prompt (placeholders `{query}`, `{document}`); the answer is one
             grade, so a backend may read it from the grade tokens' probabilities instead of
             generating
  listwise   a window of documents numbered [1]..[n] (`{query}`, `{documents}`, `{n}`); the answer
             is generated text giving a label per document
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

from rankjax import registry
from rankjax.annotate import parsing

# The placeholders of a template's user section, by shape.
SHAPES = {
  "pointwise": frozenset({"query", "document"}),
  "listwise": frozenset({"query", "documents", "n"}),
}


@dataclasses.dataclass(frozen=True)
class Mode:
  """One annotation mode.

  Attributes:
    name: its registry key, the stem of its template files, and the `mode` stored with its labels.
    shape: "pointwise" or "listwise" (see the module docstring).
    max_grade: labels are integers 0..max_grade (1: binary).
    parse: (answer text, n documents) -> n labels in 0..max_grade, in the order shown; raises
      `parsing.ParseError` on an answer without an unambiguous label for every document.
    answer: labels -> the well-formed answer, in the format the templates ask for, that `parse`
      reads back as those labels (for a ranking: as labels in the same order); what a scripted
      backend replies.
  """

  name: str
  shape: str
  max_grade: int
  parse: Callable[[str, int], list[int]]
  answer: Callable[[list[int]], str]

  def __post_init__(self):
    if self.shape not in SHAPES:
      raise ValueError(f"mode {self.name!r}: unknown shape {self.shape!r}; known: {sorted(SHAPES)}")

  @property
  def placeholders(self) -> frozenset[str]:
    """What the user section of each of its templates must hold."""
    return SHAPES[self.shape]

  def fields(self, query: str, docs: list[str]) -> dict:
    """The placeholders' values for one prompt: listwise documents as numbered "[i] text" blocks.

    >>> get("listwise_graded").fields("q", ["a", "b"])
    {'query': 'q', 'documents': '[1] a\\n\\n[2] b', 'n': 2}
    """
    if self.shape == "pointwise":
      if len(docs) != 1:
        raise ValueError(f"{self.name}: one document per prompt, got {len(docs)}")
      return {"query": query, "document": docs[0]}
    listing = "\n\n".join(f"[{i + 1}] {d}" for i, d in enumerate(docs))
    return {"query": query, "documents": listing, "n": len(docs)}

  def max_answer_tokens(self, num_docs: int) -> int:
    """Tokens an answer about `num_docs` documents may take: a grade, or ~12 per listed document.

    >>> get("pointwise_graded").max_answer_tokens(1), get("listwise_rank").max_answer_tokens(10)
    (16, 136)
    """
    return 16 if self.shape == "pointwise" else 16 + 12 * num_docs


# name -> Mode; each mode below registers itself (`registry.register`).
MODES: dict[str, Mode] = {}


def get(name: str) -> Mode:
  """The mode registered as `name` (`registry.UnknownName` lists the known ones).

  >>> get("pointwise_binary").max_grade
  1
  """
  return registry.lookup(MODES, name, "annotation mode")


def _grade_lines(labels: list[int]) -> str:
  return "\n".join(f"[{i + 1}] {g}" for i, g in enumerate(labels))


def _selected(labels: list[int]) -> str:
  return ", ".join(f"[{i + 1}]" for i, g in enumerate(labels) if g > 0) or "none"


def _ranking(labels: list[int]) -> str:
  order = sorted(range(len(labels)), key=lambda i: -labels[i])  # stable: ties in shown order
  return " > ".join(f"[{i + 1}]" for i in order)


POINTWISE_GRADED = Mode(
  "pointwise_graded",
  "pointwise",
  max_grade=4,
  parse=lambda text, n: [parsing.parse_grade(text, 4)],
  answer=lambda labels: str(labels[0]),
)
POINTWISE_BINARY = Mode(
  "pointwise_binary",
  "pointwise",
  max_grade=1,
  parse=lambda text, n: [parsing.parse_binary(text)],
  answer=lambda labels: str(labels[0]),
)
LISTWISE_GRADED = Mode(
  "listwise_graded",
  "listwise",
  max_grade=4,
  parse=functools.partial(parsing.parse_listwise_graded, max_grade=4),
  answer=_grade_lines,
)
LISTWISE_SELECT = Mode(
  "listwise_select", "listwise", max_grade=1, parse=parsing.parse_select, answer=_selected
)
LISTWISE_RANK = Mode(
  "listwise_rank",
  "listwise",
  max_grade=4,
  parse=functools.partial(parsing.parse_ranking, max_grade=4),
  answer=_ranking,
)
for _mode in (POINTWISE_GRADED, POINTWISE_BINARY, LISTWISE_GRADED, LISTWISE_SELECT, LISTWISE_RANK):
  registry.register(MODES, _mode.name)(_mode)
