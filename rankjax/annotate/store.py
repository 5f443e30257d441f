"""The durable annotation store: SQLite in WAL mode, one row per (model, prompt version, mode,
query id, document id).

Why SQLite rather than append-only JSONL: a transaction is atomic, so a SIGKILL in the middle of a
write leaves the previous state (no torn last line to repair), and the primary key makes a
duplicate impossible rather than something every reader must filter. Each `put` is one transaction,
committed before the runner moves on, so a killed run loses only requests still in flight. WAL with
`synchronous=NORMAL` survives any process crash; a power cut may lose the last commits, never
corrupt the file (use `synchronous="FULL"` to fsync every commit). One writer per connection: the
runner's thread (a `Store` object is not shared between threads; open one per thread).

Several processes (or threads, each with its own `Store`) may annotate into one file at once: each
claims a task's pairs before requesting them (`claim`: a row per pair in `leases`, with its owner
and an expiry, taken in one write transaction), so no pair is requested by two of them. The owner
renews its leases while it works (`renew`) and releases them when it stores the pairs or stops; a
lease whose owner died is taken over once it expires, or at once when the owner was a process on
this host that no longer exists.

Error and output text pass through `redact.redact` before they are written: no credential an
error body echoed reaches the file.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import sqlite3
import time
import uuid

from rankjax.annotate import redact
from rankjax.annotate import tasks as tasks_lib

_SCHEMA = """
CREATE TABLE IF NOT EXISTS annotations (
  model TEXT NOT NULL,
  prompt_version TEXT NOT NULL,
  mode TEXT NOT NULL,
  qid TEXT NOT NULL,
  doc_id TEXT NOT NULL,
  backend TEXT NOT NULL,
  status TEXT NOT NULL,          -- 'ok' or 'failed'
  label REAL,                    -- NULL when failed
  expected REAL,                 -- expected grade from grade-token probabilities, if any
  probs TEXT,                    -- JSON [p(0), ..., p(max)], if any
  raw_output TEXT,
  error TEXT,
  position INTEGER NOT NULL,     -- index of the document within its prompt
  group_size INTEGER NOT NULL,   -- documents in the prompt (1 for pointwise)
  prompt_tokens INTEGER,         -- of the whole prompt (shared by its documents)
  completion_tokens INTEGER,
  attempts INTEGER,
  created_at REAL NOT NULL,      -- unix seconds
  PRIMARY KEY (model, prompt_version, mode, qid, doc_id)
);
CREATE TABLE IF NOT EXISTS leases (
  model TEXT NOT NULL,
  prompt_version TEXT NOT NULL,
  mode TEXT NOT NULL,
  qid TEXT NOT NULL,
  doc_id TEXT NOT NULL,
  owner TEXT NOT NULL,           -- host:pid:random of the run that requests the pair
  expires_at REAL NOT NULL,      -- unix seconds; the owner renews while it works
  PRIMARY KEY (model, prompt_version, mode, qid, doc_id)
);
"""

_KEY = "model=? AND prompt_version=? AND mode=? AND qid=? AND doc_id=?"


def new_owner() -> str:
  """A lease owner name unique to this run: host, process id, and a random part (threads of one
  process are different owners)."""
  return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_is_dead(owner: str) -> bool:
  """Whether `owner` was a process on this host that no longer exists (other hosts: unknown)."""
  host, _, rest = owner.partition(":")
  pid = rest.partition(":")[0]
  if host != socket.gethostname() or not pid.isdigit():
    return False
  try:
    os.kill(int(pid), 0)
  except ProcessLookupError:
    return True
  except PermissionError:  # alive, another user's
    return False
  return False


class Store:
  """Annotations on disk. Use as a context manager, or call `close()`."""

  def __init__(self, path: str | pathlib.Path, synchronous: str = "NORMAL"):
    self.path = pathlib.Path(path)
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
    self._db.execute("PRAGMA journal_mode=WAL")
    self._db.execute(f"PRAGMA synchronous={synchronous}")
    self._db.executescript(_SCHEMA)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def close(self):
    self._db.close()

  def statuses(self, model: str, prompt_version: str, mode: str) -> dict[tuple[str, str], str]:
    """(qid, doc_id) -> 'ok' or 'failed', of every stored pair of this model, version and mode."""
    sql = (
      "SELECT qid, doc_id, status FROM annotations WHERE model=? AND prompt_version=? AND mode=?"
    )
    return {(q, d): s for q, d, s in self._db.execute(sql, (model, prompt_version, mode))}

  def claim(
    self,
    task: tasks_lib.Task,
    model: str,
    owner: str,
    *,
    lease_s: float,
    retry_failed_before: float | None = None,
  ) -> str:
    """Leases the task's pairs to `owner` for `lease_s` seconds, in one write transaction.

    Returns "claimed"; or, claiming nothing, "stored" when every pair is already stored (failed
    ones count as stored unless `retry_failed_before` is given and they were stored before that
    time: a run redoing failures does not redo the ones another run has just redone), or "leased"
    when another live owner holds one of the pairs. A lease past its expiry, or whose owner was a
    process on this host that has exited, is taken over.
    """
    now = time.time()
    keys = [(model, task.template.version, task.mode, task.qid, d) for d in task.doc_ids]
    with self._db:
      self._db.execute("BEGIN IMMEDIATE")
      todo = 0
      for key in keys:
        row = self._db.execute(
          f"SELECT status, created_at FROM annotations WHERE {_KEY}", key
        ).fetchone()
        if row is None or (
          row[0] == "failed" and retry_failed_before is not None and row[1] < retry_failed_before
        ):
          todo += 1
      if not todo:
        return "stored"
      for key in keys:
        lease = self._db.execute(
          f"SELECT owner, expires_at FROM leases WHERE {_KEY}", key
        ).fetchone()
        if lease and lease[0] != owner and lease[1] > now and not _owner_is_dead(lease[0]):
          return "leased"
      self._db.executemany(
        "INSERT OR REPLACE INTO leases VALUES (?,?,?,?,?,?,?)",
        [(*key, owner, now + lease_s) for key in keys],
      )
    return "claimed"

  def renew(self, owner: str, lease_s: float) -> None:
    """Extends every lease `owner` holds to `lease_s` seconds from now."""
    with self._db:
      self._db.execute(
        "UPDATE leases SET expires_at=? WHERE owner=?", (time.time() + lease_s, owner)
      )

  def release(self, owner: str) -> None:
    """Drops every lease `owner` holds (its run is over; what it did not store is free again)."""
    with self._db:
      self._db.execute("DELETE FROM leases WHERE owner=?", (owner,))

  def leases(self) -> list[tuple[str, str, str, float]]:
    """(qid, doc_id, owner, expires_at) of every lease in the file."""
    return list(self._db.execute("SELECT qid, doc_id, owner, expires_at FROM leases"))

  def put(self, result: tasks_lib.Result, model: str, backend: str) -> int:
    """Writes one row per document of the result's task in one committed transaction, and drops
    the leases on them; returns the rows written.

    An existing row is replaced only if it recorded a failure (a retry of failed work); an `ok`
    row is never overwritten, so concurrent or repeated runs cannot double-count. The error and
    the raw output are stored redacted (`redact.redact`).
    """
    t = result.task
    now = time.time()
    rows = []
    for i, doc_id in enumerate(t.doc_ids):
      rows.append(
        (
          model,
          t.template.version,
          t.mode,
          t.qid,
          doc_id,
          backend,
          result.status,
          None if result.labels is None else float(result.labels[i]),
          None if result.expected is None else float(result.expected[i]),
          None if result.probs is None else json.dumps(result.probs[i]),
          redact.redact(result.raw_output),
          redact.redact(result.error),
          i,
          len(t.doc_ids),
          result.prompt_tokens,
          result.completion_tokens,
          result.attempts,
          now,
        )
      )
    with self._db:  # BEGIN ... COMMIT
      self._db.execute("BEGIN IMMEDIATE")
      before = self._db.total_changes
      self._db.executemany(
        "INSERT INTO annotations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT DO UPDATE SET backend=excluded.backend, status=excluded.status, "
        "label=excluded.label, expected=excluded.expected, probs=excluded.probs, "
        "raw_output=excluded.raw_output, error=excluded.error, position=excluded.position, "
        "group_size=excluded.group_size, prompt_tokens=excluded.prompt_tokens, "
        "completion_tokens=excluded.completion_tokens, attempts=excluded.attempts, "
        "created_at=excluded.created_at WHERE annotations.status='failed'",
        rows,
      )
      written = self._db.total_changes - before
      self._db.executemany(f"DELETE FROM leases WHERE {_KEY}", [r[:5] for r in rows])
    return written

  def rows(self, **where) -> list[dict]:
    """All rows matching the equality filters, e.g. `rows(model=..., mode=..., status="ok")`."""
    cols = [d[1] for d in self._db.execute("PRAGMA table_info(annotations)")]
    bad = set(where) - set(cols)
    if bad:
      raise ValueError(f"unknown columns {sorted(bad)}; known: {cols}")
    sql = "SELECT * FROM annotations"
    if where:
      sql += " WHERE " + " AND ".join(f"{k}=?" for k in where)
    return [dict(zip(cols, r)) for r in self._db.execute(sql, tuple(where.values()))]

  def count(self) -> int:
    return self._db.execute("SELECT COUNT(*) FROM annotations").fetchone()[0]
