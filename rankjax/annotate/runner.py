"""The annotation loop: ranking lists -> prompts (`make_tasks`) -> backend -> store (`annotate`).

Every result is committed to the store as it arrives; a rerun builds the same tasks and skips those
whose documents are all stored (`pending`). Runs sharing a store claim each task before asking
for it (leases in the store), so none asks for a pair another is asking for. SIGINT and SIGTERM
set a flag: the backend stops taking tasks, the requests in flight finish and are committed, and
`annotate` returns a summary saying which signal stopped it. SIGKILL loses only what was in flight
(see `store`).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Container, Iterable, Sequence

from rankjax import progress as progress_lib
from rankjax.annotate import prompts, redact
from rankjax.annotate import store as store_lib
from rankjax.annotate.tasks import Result, Task
from rankjax.data.readers.common import Session
from rankjax.data.schema import RankingList

__all__ = [
  "Task",
  "Result",
  "Summary",
  "lists_from_log",
  "lists_from_sessions",
  "truncate_words",
  "make_tasks",
  "pending",
  "annotate",
]


def lists_from_log(fmt: str, files: Sequence[str], **options) -> tuple[list[RankingList], dict]:
  """One `RankingList` per query of click logs (`readers.FORMATS`, `lists_from_sessions`), and
  the read summary."""
  from rankjax.data import readers  # pylint: disable=g-import-not-at-top

  summary = readers.ReadSummary()
  lists = lists_from_sessions(readers.read_sessions(fmt, files, summary, **options))
  return lists, summary.as_dict()


def lists_from_sessions(sessions: Iterable[Session]) -> list[RankingList]:
  """One `RankingList` per query of a log's sessions, with query and document text, CTR, human
  labels where the log has them and frequency buckets."""
  from rankjax.data import aggregate  # pylint: disable=g-import-not-at-top

  return list(aggregate.to_ranking_lists(aggregate.ClickAggregator().add_all(sessions)))


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
  limit: int | None = None,
) -> tuple[list[Task], collections.Counter]:
  """Prompts for the (query, document) pairs of `lists` in log order: all of them, or the first
  `limit` pairs (stored ones included, so a rerun covers the same pairs; see `pending`).

  Pointwise modes make one task per pair; listwise modes one task per window of up to `window`
  documents in shown order (with `limit`, the window holding the `limit`-th pair is kept whole).

  Returns:
    (tasks, counts): counts of "pairs" (in the tasks), "beyond_limit" (left out by `limit`),
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
      if limit is not None and counts["pairs"] >= limit:
        counts["beyond_limit"] += len(chunk)
        continue
      counts["pairs"] += len(chunk)
      out.append(
        Task(template, rl.qid, tuple(d for d, _ in chunk), query, tuple(t for _, t in chunk))
      )
  return out, counts


def pending(tasks: Iterable[Task], stored: Container[tuple[str, str]]) -> list[Task]:
  """The tasks with a pair not in `stored` ((qid, doc_id) pairs); a listwise window with any such
  pair is asked whole (the store keeps the labels it already has)."""
  return [t for t in tasks if any((t.qid, d) not in stored for d in t.doc_ids)]


@dataclasses.dataclass
class Summary:
  """What one `annotate` call did, in pairs ((query, document) pairs) and tasks (prompts)."""

  pairs_ok: int = 0  # stored with a label by this call
  pairs_failed: int = 0  # stored as a failure by this call (unparsable, refused request)
  pairs_unreachable: int = 0  # not stored: the server could not be reached; a rerun asks again
  pairs_leased: int = 0  # skipped: another run holds them (it is asking for them now)
  pairs_stored_elsewhere: int = 0  # skipped: another run stored them after this one's plan
  tasks: int = 0  # answered or given up on
  tasks_left: int = 0  # not started (stopped early, or the server is down)
  prompt_tokens: int = 0
  completion_tokens: int = 0
  seconds: float = 0.0
  stopped_by: str | None = None  # "SIGINT" / "SIGTERM" when a signal stopped the run
  last_error: str | None = None  # of the last result that failed or was unreachable (redacted)

  @property
  def pairs_per_s(self) -> float:
    return (self.pairs_ok + self.pairs_failed) / max(self.seconds, 1e-9)


class _Heartbeat:
  """Renews `owner`'s leases every `lease_s / 3` seconds on a thread of its own (with its own
  connection: a backend may hold tasks longer than a lease, e.g. a local model's compile)."""

  def __init__(self, path, owner: str, lease_s: float):
    self._stop = threading.Event()
    self._thread = threading.Thread(
      target=self._run, args=(path, owner, lease_s), name="lease-heartbeat", daemon=True
    )

  def _run(self, path, owner, lease_s):
    with store_lib.Store(path) as st:
      while not self._stop.wait(lease_s / 3):
        st.renew(owner, lease_s)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()


def annotate(
  tasks: Sequence[Task],
  backend,
  store: store_lib.Store,
  *,
  progress: bool = True,
  retry_failed: bool = False,
  lease_s: float = 120.0,
) -> Summary:
  """Runs `tasks` through `backend`, committing each result to `store` as it arrives.

  Each task is claimed in the store (`Store.claim`) just before the backend takes it, so runs
  sharing the store split the work: a task another run holds, or has stored since this one's
  plan, is skipped and counted. A result with status "unreachable" (the server could not be
  reached) is counted, not stored. With `retry_failed`, pairs stored as failed before this call
  are asked again.
  """
  stop = threading.Event()
  summary = Summary()
  previous = {}
  owner = store_lib.new_owner()
  since = time.time() if retry_failed else None

  def on_signal(signum, frame):
    del frame
    summary.stopped_by = signal.Signals(signum).name
    logging.warning("%s: finishing the requests in flight, then stopping", summary.stopped_by)
    stop.set()

  if threading.current_thread() is threading.main_thread():
    for sig in (signal.SIGINT, signal.SIGTERM):
      previous[sig] = signal.signal(sig, on_signal)
  start = time.perf_counter()
  bar = progress_lib.bar(
    total=sum(len(t.doc_ids) for t in tasks),
    unit="pair",
    disable=not progress,
    smoothing=0.1,
    desc=f"{backend.name}:{tasks[0].mode if tasks else ''}",
  )
  skipped = 0

  def claimed():
    nonlocal skipped
    for task in tasks:
      if stop.is_set():
        return
      outcome = store.claim(task, backend.model, owner, lease_s=lease_s, retry_failed_before=since)
      if outcome == "claimed":
        yield task
        continue
      skipped += 1
      n = len(task.doc_ids)
      if outcome == "leased":
        summary.pairs_leased += n
      else:
        summary.pairs_stored_elsewhere += n
      bar.update(n)

  try:
    with _Heartbeat(store.path, owner, lease_s):
      for result in backend.process(claimed(), stop.is_set):
        n = len(result.task.doc_ids)
        summary.tasks += 1
        summary.prompt_tokens += result.prompt_tokens
        summary.completion_tokens += result.completion_tokens
        bar.update(n)
        if result.status != "ok":
          summary.last_error = redact.redact(result.error)
        if result.status == "unreachable":
          summary.pairs_unreachable += n
          continue
        written = store.put(result, model=backend.model, backend=backend.name)
        if result.status == "ok":
          summary.pairs_ok += written
        else:
          summary.pairs_failed += written
  finally:
    bar.close()
    for sig, handler in previous.items():
      signal.signal(sig, handler)
    store.release(owner)
    summary.seconds = time.perf_counter() - start
    summary.tasks_left = len(tasks) - summary.tasks - skipped
  return summary
