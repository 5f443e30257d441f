"""What a backend is asked (`Task`: one prompt about one query and 1..n documents) and what it
answers (`Result`: a label per document, with the raw output and its provenance)."""

from __future__ import annotations

import dataclasses

from rankjax.annotate import modes, prompts


@dataclasses.dataclass(frozen=True)
class Task:
  """One prompt: a query and its documents (one for pointwise modes), already truncated."""

  template: prompts.Template
  qid: str
  doc_ids: tuple[str, ...]
  query: str
  docs: tuple[str, ...]

  @property
  def mode(self) -> str:
    return self.template.mode

  @property
  def spec(self) -> modes.Mode:
    """The mode's record: how to parse the answer, the label scale, the shape."""
    return self.template.spec

  def messages(self) -> list[dict[str, str]]:
    return self.template.messages(self.query, list(self.docs))


@dataclasses.dataclass
class Result:
  """A backend's answer to a `Task`.

  Attributes:
    labels: one label per document (None when `status == "failed"`).
    expected: expected grade per document from grade-token probabilities, when the backend has them.
    probs: per document, the probability of each grade 0..max (renormalised), when available.
    raw_output: the model's text (for logprob scoring: the most probable grade token).
    status: "ok"; "failed" (unparsable after the re-ask, a refused request, a server answering
      with something other than a chat completion): stored, so a rerun skips it unless asked to
      retry failures; or "unreachable" (the server could not be reached): counted, not stored, so
      a rerun asks again.
    error: why it failed (credentials redacted).
    prompt_tokens, completion_tokens: tokens billed for this task, re-asks included.
    attempts: model calls made (2 after a re-ask).
  """

  task: Task
  labels: list[int] | None
  raw_output: str
  status: str = "ok"
  expected: list[float] | None = None
  probs: list[list[float]] | None = None
  error: str | None = None
  prompt_tokens: int = 0
  completion_tokens: int = 0
  attempts: int = 1
