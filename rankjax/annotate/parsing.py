"""Labels from model outputs: the text parsers that modes (`modes.MODES`) read answers with, and
expected grades from grade-token logprobs.

Parsers are strict about meaning and lenient about form: "3", "Grade: 3", "**3**" and "3/4" all
give 3, but an output with no grade, two different candidate grades, or a grade outside the scale
raises `ParseError` (the caller re-asks once, then records a failure). Listwise parsers return one
label per document, in the order the documents were shown.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

_NONE_WORDS = ("none", "no relevant", "无", "没有")
_YES = ("yes", "relevant", "是", "相关")
_NO = ("no", "not relevant", "irrelevant", "否", "不相关")


class ParseError(ValueError):
  """The output does not contain an unambiguous answer."""


def _integers(text: str) -> list[int]:
  """Standalone integers: "2.5" has none (a fractional grade is not a grade)."""
  return [int(d) for d in re.findall(r"(?<![\d.])(\d+)(?!\.?\d)", text)]


def parse_grade(text: str, max_grade: int = 4) -> int:
  """A single grade 0..max_grade.

  >>> parse_grade("Relevance grade: **3**")
  3
  >>> parse_grade("3/4")
  3
  """
  text = text.strip()
  keyed = re.search(r"(?:grade|relevance|score|label|answer|等级|相关性)\D{0,12}?(\d+)", text, re.I)
  if keyed:
    candidates = [int(keyed.group(1))]
  else:
    # "3/4" or "3 out of 4": the number after the slash is the scale, not a second grade.
    candidates = sorted(set(_integers(re.sub(r"(/|out of)\s*\d+", " ", text))))
  if not candidates:
    raise ParseError(f"no grade in {text[:80]!r}")
  if len(candidates) > 1:
    raise ParseError(f"ambiguous grades {candidates} in {text[:80]!r}")
  if not 0 <= candidates[0] <= max_grade:
    raise ParseError(f"grade {candidates[0]} outside 0..{max_grade} in {text[:80]!r}")
  return candidates[0]


def parse_binary(text: str) -> int:
  """1 (relevant) or 0 from a digit or a yes/no word (English or Chinese).

  >>> parse_binary("Not relevant."), parse_binary("1"), parse_binary("相关")
  (0, 1, 1)
  """
  t = text.strip().lower()
  try:
    return parse_grade(t, 1)
  except ParseError:
    pass
  # Check the negative words first: "not relevant" contains "relevant".
  if any(w in t for w in _NO):
    return 0
  if any(w in t for w in _YES):
    return 1
  raise ParseError(f"neither 0/1 nor yes/no in {text[:80]!r}")


def parse_listwise_graded(text: str, n: int, max_grade: int = 4) -> list[int]:
  """Grades for documents 1..n from lines like "[i] g" or "i: g".

  >>> parse_listwise_graded("[1] 3\\n[2] 0\\n[3]: 4", 3)
  [3, 0, 4]
  """
  grades: dict[int, int] = {}
  for i, g in re.findall(r"\[?(\d+)\]?\s*[:：=\-]?\s*(\d+)", text):
    i, g = int(i), int(g)
    if not 1 <= i <= n:
      raise ParseError(f"document [{i}] outside 1..{n} in {text[:80]!r}")
    if not 0 <= g <= max_grade:
      raise ParseError(f"grade {g} for [{i}] outside 0..{max_grade}")
    if grades.get(i, g) != g:
      raise ParseError(f"two grades for document [{i}]")
    grades[i] = g
  missing = [i for i in range(1, n + 1) if i not in grades]
  if missing:
    raise ParseError(f"no grade for documents {missing} in {text[:80]!r}")
  return [grades[i] for i in range(1, n + 1)]


def parse_select(text: str, n: int) -> list[int]:
  """1 for each selected document of 1..n, else 0.

  >>> parse_select("[2], [4]", 4), parse_select("None of them.", 2)
  ([0, 1, 0, 1], [0, 0])
  """
  ids = [int(i) for i in re.findall(r"\[(\d+)\]", text)] or [
    int(i) for i in re.findall(r"(?<!\d)(\d+)(?!\d)", text)
  ]
  if not ids:
    if any(w in text.strip().lower() for w in _NONE_WORDS):
      return [0] * n
    raise ParseError(f"no document identifiers and no 'none' in {text[:80]!r}")
  bad = [i for i in ids if not 1 <= i <= n]
  if bad:
    raise ParseError(f"identifiers {bad} outside 1..{n} in {text[:80]!r}")
  return [int(i in ids) for i in range(1, n + 1)]


def parse_ranking(text: str, n: int, max_grade: int = 4) -> list[int]:
  """Graded labels from a ranking "[3] > [1] > [2]" of documents 1..n.

  Repeats keep their first place; documents the model left out follow in shown order (as in
  RankGPT). The document at 0-based rank r gets round(max_grade * (n - 1 - r) / (n - 1)); a lone
  document gets max_grade (a ranking of one carries no information: avoid windows of one).

  >>> parse_ranking("[3] > [1] > [2]", 3)
  [2, 0, 4]
  """
  ids = [int(i) for i in re.findall(r"\[(\d+)\]", text)] or [
    int(i) for i in re.findall(r"(?<!\d)(\d+)(?!\d)", text)
  ]
  order = list(dict.fromkeys(i for i in ids if 1 <= i <= n))
  if not order:
    raise ParseError(f"no document identifiers 1..{n} in {text[:80]!r}")
  order += [i for i in range(1, n + 1) if i not in order]
  labels = [0] * n
  for r, i in enumerate(order):
    labels[i - 1] = round(max_grade * (n - 1 - r) / (n - 1)) if n > 1 else max_grade
  return labels


def expected_grade(
  logprobs: Mapping[str, float] | Sequence[float], max_grade: int
) -> tuple[float, list[float]]:
  """E[grade] under the grade tokens' probabilities, renormalised over the grades 0..max_grade.

  Args:
    logprobs: log p(token) per grade, either a sequence indexed by grade or a mapping from the
      token text (e.g. the `top_logprobs` of an OpenAI response; " 3" and "3" count as grade 3,
      their probabilities added) to its log probability. Grades absent from a mapping get 0.

  Returns:
    (sum_g g * p(g) / sum_g p(g), [p(0), ..., p(max_grade)] renormalised).

  Raises:
    ParseError: no grade token has any probability.

  >>> expected_grade([math.log(0.5), math.log(0.5)], 1)
  (0.5, [0.5, 0.5])
  """
  probs = np.zeros(max_grade + 1)
  if isinstance(logprobs, Mapping):
    for token, lp in logprobs.items():
      t = token.strip()
      if t.isdigit() and int(t) <= max_grade and lp is not None and math.isfinite(lp):
        probs[int(t)] += math.exp(lp)
  else:
    probs = np.exp(np.asarray(logprobs, np.float64))
  total = probs.sum()
  if not total > 0:
    raise ParseError("no probability on any grade token")
  probs = probs / total
  return float(np.dot(np.arange(max_grade + 1), probs)), [float(p) for p in probs]
