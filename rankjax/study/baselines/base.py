"""The baseline record, its registry, and the split reader the baselines share."""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable

import numpy as np

from rankjax import registry

BASELINES: dict[str, Baseline] = {}


@dataclasses.dataclass(frozen=True)
class Baseline:
  """One baseline.

  Attributes:
    score: `(train_lists, eval_lists, seed) -> f32[N, Lmax]` scores of the evaluation lists
      (`read_lists` of each split), 0 past each list's end.
    describe: what the report's variant list says of it (`{"model": ..., "source": ...}`; a
      `source` of "human" makes it a reference, as a variant trained on human labels).
    needs: the module it imports (None: nothing beyond rankjax's own dependencies).
    install: how to get that module.
  """

  score: Callable[[list[dict], list[dict], int], np.ndarray]
  describe: dict
  needs: str | None = None
  install: str = ""

  def available(self) -> bool:
    return self.needs is None or importlib.util.find_spec(self.needs) is not None


def get(name: str) -> Baseline:
  return registry.lookup(BASELINES, name, "study baseline (config.study.baselines)")


def _text(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


def read_lists(split) -> list[dict]:
  """Every record of a prepared split as numpy arrays and strings (the keys it stores)."""
  out = []
  for i in range(len(split)):
    rec = split[i]
    text = ("qid", "doc_ids", "query", "doc_texts")
    lst = {k: np.asarray(v) for k, v in rec.items() if k not in text}
    lst["qid"] = _text(rec["qid"])
    lst["doc_ids"] = [_text(d) for d in rec["doc_ids"]]
    if "query" in rec:
      lst["query"] = _text(rec["query"])
      lst["doc_texts"] = [_text(d) for d in rec["doc_texts"]]
    out.append(lst)
  return out


def padded(rows: list[np.ndarray]) -> np.ndarray:
  """f32[N, Lmax] from per-list score rows, 0 past each list's end."""
  out = np.zeros((len(rows), max(len(r) for r in rows)), np.float32)
  for i, r in enumerate(rows):
    out[i, : len(r)] = r
  return out
