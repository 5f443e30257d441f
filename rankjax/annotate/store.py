"""The durable annotation store: SQLite in WAL mode, one row per (model, prompt version, mode,
query id, document id).

Why SQLite rather than append-only JSONL: a transaction is atomic, so a SIGKILL in the middle of a
write leaves the previous state (no torn last line to repair), and the primary key makes a
duplicate impossible rather than something every reader must filter. Each `put` is one transaction,
committed before the runner moves on, so a killed run loses only requests still in flight. WAL with
`synchronous=NORMAL` survives any process crash; a power cut may lose the last commits, never
corrupt the file (use `synchronous="FULL"` to fsync every commit). One writer: the runner's thread.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
import time

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
)
"""


class Store:
  """Annotations on disk. Use as a context manager, or call `close()`."""

  def __init__(self, path: str | pathlib.Path, synchronous: str = "NORMAL"):
    self.path = pathlib.Path(path)
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
    self._db.execute("PRAGMA journal_mode=WAL")
    self._db.execute(f"PRAGMA synchronous={synchronous}")
    self._db.execute(_SCHEMA)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def close(self):
    self._db.close()

  def done(
    self, model: str, prompt_version: str, mode: str, include_failed: bool = True
  ) -> set[tuple[str, str]]:
    """(qid, doc_id) already stored for this model, prompt version and mode."""
    sql = "SELECT qid, doc_id FROM annotations WHERE model=? AND prompt_version=? AND mode=?"
    if not include_failed:
      sql += " AND status='ok'"
    return set(self._db.execute(sql, (model, prompt_version, mode)))

  def put(self, result: tasks_lib.Result, model: str, backend: str) -> None:
    """Writes one row per document of the result's task in one committed transaction.

    An existing row is replaced only if it recorded a failure (a retry of failed work); an `ok`
    row is never overwritten, so concurrent or repeated runs cannot double-count.
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
          result.raw_output,
          result.error,
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
