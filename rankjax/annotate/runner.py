"""The annotation loop: ranking lists -> prompts (`make_tasks`) -> backend -> store (`annotate`).

Every result is committed to the store as it arrives; a rerun builds the same tasks and skips those
whose documents are all stored. SIGINT and SIGTERM set a flag: the backend stops taking tasks, the
requests in flight finish and are committed, and `annotate` returns a summary saying which signal
stopped it. SIGKILL loses only what was in flight (see `store`).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Iterable, Sequence

import tqdm

from rankjax.annotate import prompts
from rankjax.annotate import store as store_lib
from rankjax.annotate.tasks import Result, Task
from rankjax.data.schema import RankingList

__all__ = [
  "Task",
  "Result",
  "Summary",
  "lists_from_log",
  "truncate_words",
  "make_tasks",
  "annotate",
]


def lists_from_log(
  fmt: str, files: Sequence[str], *, progress: bool = False, **options
) -> tuple[list[RankingList], dict]:
  """One `RankingList` per query of click logs (`readers.FORMATS`), with query and document text,
  CTR, human labels where the log has them and frequency buckets; and the read summary."""
  from rankjax.data import (
    aggregate,  # pylint: disable=g-import-not-at-top
    readers,  # pylint: disable=g-import-not-at-top
  )

  summary = readers.ReadSummary()
  agg = aggregate.ClickAggregator()
  for s in tqdm.tqdm(
    readers.read_sessions(fmt, files, summary, **options),
    desc="sessions",
    unit="",
    disable=not progress,
  ):
    agg.add(s)
  return list(aggregate.to_ranking_lists(agg)), summary.as_dict()


def truncate_words(text: str, max_words: int | None) -> str:
  """The first `max_words` whitespace-separated words (all of them when None), and at most
  `8 * max_words` characters (so CJK text, which has no spaces, is cut too).

  >>> truncate_words("a b  c d", 2)
  'a b'
  """
  text = " ".join(text.split())
  if max_words is None:
    return text
  return " ".join(text.split(" ")[:max_words])[: 8 * max_words]


def make_tasks(
  lists: Iterable[RankingList],
  template: prompts.Template,
  *,
  max_query_words: int | None = 32,
  max_doc_words: int | None = 160,
  window: int = 10,
  done: set[tuple[str, str]] = frozenset(),
) -> tuple[list[Task], collections.Counter]:
  """Prompts for every (query, document) pair of `lists` not yet in `done`.

  Pointwise modes make one task per pair; listwise modes one task per window of up to `window`
  documents in shown order (a window whose documents are all done is skipped).

  Returns:
    (tasks, counts): counts of "pairs" (to annotate), "done" (skipped, already stored),
    "duplicate" (a (qid, doc_id) seen earlier), "no_query" and "no_text" (skipped, no text).
  """
  counts = collections.Counter()
  seen = set()
  out = []
  for rl in lists:
    if rl.query is None or rl.doc_texts is None:
      counts["no_query" if rl.query is None else "no_text"] += len(rl)
      continue
    query = truncate_words(rl.query, max_query_words)
    items = []
    for doc_id, text in zip(rl.doc_ids, rl.doc_texts):
      if (rl.qid, doc_id) in seen:
        counts["duplicate"] += 1
        continue
      seen.add((rl.qid, doc_id))
      if not text or not text.strip():
        counts["no_text"] += 1
        continue
      items.append((doc_id, truncate_words(text, max_doc_words)))
    size = 1 if template.spec.shape == "pointwise" else window
    for start in range(0, len(items), size):
      chunk = items[start : start + size]
      todo = sum((rl.qid, d) not in done for d, _ in chunk)
      if todo < len(chunk):
        counts["done"] += len(chunk) - todo
      if todo:
        counts["pairs"] += len(chunk)
        out.append(
          Task(template, rl.qid, tuple(d for d, _ in chunk), query, tuple(t for _, t in chunk))
        )
  return out, counts


@dataclasses.dataclass
class Summary:
  """What one `annotate` call did."""

  pairs_ok: int = 0
  pairs_failed: int = 0
  tasks: int = 0
  tasks_left: int = 0  # not processed (stopped early, or transport failures)
  prompt_tokens: int = 0
  completion_tokens: int = 0
  seconds: float = 0.0
  stopped_by: str | None = None  # "SIGINT" / "SIGTERM" when a signal stopped the run

  @property
  def pairs_per_s(self) -> float:
    return (self.pairs_ok + self.pairs_failed) / max(self.seconds, 1e-9)


def annotate(
  tasks: Sequence[Task], backend, store: store_lib.Store, *, progress: bool = True
) -> Summary:
  """Runs `tasks` through `backend`, committing each result to `store` as it arrives."""
  stop = threading.Event()
  summary = Summary()
  previous = {}

  def on_signal(signum, frame):
    del frame
    summary.stopped_by = signal.Signals(signum).name
    logging.warning("%s: finishing the requests in flight, then stopping", summary.stopped_by)
    stop.set()

  if threading.current_thread() is threading.main_thread():
    for sig in (signal.SIGINT, signal.SIGTERM):
      previous[sig] = signal.signal(sig, on_signal)
  start = time.perf_counter()
  bar = tqdm.tqdm(
    total=sum(len(t.doc_ids) for t in tasks),
    unit="pair",
    disable=not progress,
    smoothing=0.1,
    desc=f"{backend.name}:{tasks[0].mode if tasks else ''}",
  )
  try:
    for result in backend.process(tasks, stop.is_set):
      store.put(result, model=backend.model, backend=backend.name)
      n = len(result.task.doc_ids)
      summary.tasks += 1
      if result.status == "ok":
        summary.pairs_ok += n
      else:
        summary.pairs_failed += n
      summary.prompt_tokens += result.prompt_tokens
      summary.completion_tokens += result.completion_tokens
      bar.update(n)
  finally:
    bar.close()
    for sig, handler in previous.items():
      signal.signal(sig, handler)
    summary.seconds = time.perf_counter() - start
    summary.tasks_left = len(tasks) - summary.tasks
  return summary
