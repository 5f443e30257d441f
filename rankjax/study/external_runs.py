"""Other systems' rankings in a study: TREC run files scored beside the variants.

`config.study.runs = {"anserini_bm25": "runs/bm25.trec", ...}` puts each run in every table, plot
and significance test of the report, as a baseline without randomness (the same scores for every
seed). A run ranks the evaluation split's lists by its own scores; a document of a list that the
run does not rank comes after every document it ranks (in stored order), and the report counts
them, since a run that misses much of a list is not comparable as it stands.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from rankjax.serve import runs as runs_lib
from rankjax.study.baselines import base


def scores(path: str | os.PathLike, eval_lists: list[dict]) -> tuple[np.ndarray, dict]:
  """f32[N, Lmax] scores of `eval_lists` (`base.read_lists`) from the run file at `path`, and
  {"queries": N, "queries_missing": ..., "docs": ..., "docs_missing": ...}.

  Only the run's order matters to the metrics, so a list's scores are its documents' negated
  ranks in the run, the unranked after them.
  """
  run = runs_lib.read_run(path).to_dict()
  rows, counts = (
    [],
    {"queries": len(eval_lists), "queries_missing": 0, "docs": 0, "docs_missing": 0},
  )
  for lst in eval_lists:
    ranked = run.get(lst["qid"], {})
    counts["queries_missing"] += not ranked
    order = {doc: r for r, doc in enumerate(sorted(ranked, key=ranked.get, reverse=True))}
    counts["docs"] += len(lst["doc_ids"])
    rank = np.array([order.get(d, len(order) + i) for i, d in enumerate(lst["doc_ids"])], float)
    counts["docs_missing"] += sum(d not in order for d in lst["doc_ids"])
    rows.append(-rank)
  return base.padded(rows), counts


def note(name: str, path: str | os.PathLike, counts: dict) -> str | None:
  """The report's line on what the run `name` does not rank (None: it ranks every document)."""
  if not counts["docs_missing"]:
    return None
  return (
    f"Run `{name}` ({pathlib.Path(path).name}) does not rank {counts['docs_missing']} of the "
    f"{counts['docs']} evaluated documents ({counts['queries_missing']} of {counts['queries']} "
    "queries entirely); they are ranked after its own, in stored order."
  )
