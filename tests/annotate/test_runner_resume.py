"""`rankjax annotate run` in a subprocess: SIGKILL mid-run then rerun loses and duplicates nothing;
SIGTERM stops cleanly after committing what was in flight, exit status 75 (stopped, resumable).
The LLM is a scripted OpenAI-compatible server on loopback that answers after a short delay and
counts the requests per document."""

import http.server
import json
import pathlib
import signal
import sqlite3
import subprocess
import threading
import time

import pytest
from annotate_helpers import annotate_argv

ROOT = pathlib.Path(__file__).resolve().parents[2]
N_DOCS = 120


class Slow(http.server.BaseHTTPRequestHandler):
  calls: dict = {}
  lock = threading.Lock()

  def log_message(self, *args):
    pass

  def do_POST(self):
    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
    doc = body["messages"][1]["content"].split("Document:\n")[1].split("\n")[0]
    with Slow.lock:
      Slow.calls[doc] = Slow.calls.get(doc, 0) + 1
    time.sleep(0.02)
    data = json.dumps(
      {
        "choices": [{"message": {"content": str(len(doc) % 5)}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 1},
      }
    ).encode()
    self.send_response(200)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)


@pytest.fixture
def server():
  Slow.calls = {}
  srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
  threading.Thread(target=srv.serve_forever, daemon=True).start()
  yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
  srv.shutdown()


@pytest.fixture
def log(tmp_path):
  path = tmp_path / "log.jsonl"
  with path.open("w") as f:
    for q in range(N_DOCS // 10):
      docs = [f"q{q}d{i}" for i in range(10)]
      f.write(
        json.dumps(
          {
            "query_id": f"q{q}",
            "query": f"query {q}",
            "doc_ids": docs,
            "clicks": [0] * 10,
            "doc_texts": [f"text of {d}" for d in docs],
          }
        )
        + "\n"
      )
  return path


def _cmd(log, db, url):
  return annotate_argv(
    log, db, "--concurrency", 3, "--json", base_url=url, model="slow", subprocess=True
  )


def _count(db):
  if not db.exists():
    return 0
  try:
    with sqlite3.connect(db, timeout=5) as c:
      return c.execute("SELECT COUNT(*) FROM annotations").fetchone()[0]
  except sqlite3.OperationalError:
    return 0  # table not created yet


def _wait_for(db, n, proc, timeout=60):
  deadline = time.time() + timeout
  while _count(db) < n:
    assert proc.poll() is None, proc.stderr.read()
    assert time.time() < deadline, "no progress"
    time.sleep(0.02)


def test_sigkill_then_rerun_loses_and_duplicates_nothing(server, log, tmp_path):
  db = tmp_path / "a.db"
  proc = subprocess.Popen(
    _cmd(log, db, server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
  )
  _wait_for(db, 30, proc)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  with sqlite3.connect(db) as c:
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {d for (d,) in c.execute("SELECT doc_id FROM annotations")}
  assert 30 <= len(stored) < N_DOCS
  asked_before = dict(Slow.calls)

  out = subprocess.run(_cmd(log, db, server), capture_output=True, text=True, check=True)
  summary = json.loads(out.stdout.strip().splitlines()[-1])
  n = summary["pairs"]
  assert (n["covered"], n["done"], n["done_this_run"], n["left"]) == (
    N_DOCS,
    N_DOCS,
    N_DOCS - len(stored),
    0,
  )
  with sqlite3.connect(db) as c:
    rows = c.execute("SELECT qid, doc_id, label, status FROM annotations").fetchall()
  assert len(rows) == N_DOCS == len({(q, d) for q, d, _, _ in rows})
  assert all(s == "ok" and l == len(f"text of {d}") % 5 for _, d, l, s in rows)
  # Paid twice at most for what was in flight when killed (3 requests), never for stored pairs.
  repeated = [d for d, n in Slow.calls.items() if n > 1]
  assert len(repeated) <= 3
  assert not {f"text of {d}" for d in stored} & set(repeated)
  assert sum(asked_before.values()) - len(stored) <= 3


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 75), (signal.SIGINT, 130)])
def test_signal_stops_cleanly(server, log, tmp_path, sig, code):
  db = tmp_path / "b.db"
  proc = subprocess.Popen(
    _cmd(log, db, server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
  )
  _wait_for(db, 20, proc)
  proc.send_signal(sig)
  stdout, _ = proc.communicate(timeout=30)
  assert proc.returncode == code
  summary = json.loads(stdout.strip().splitlines()[-1])
  n = summary["pairs"]
  assert summary["stopped_by"] == sig.name and n["left"] == N_DOCS - n["done"] > 0
  assert summary["exit_status"] == code
  # Everything that was answered got committed: no request was paid for and lost.
  assert _count(db) == n["done_this_run"] == n["done"] == sum(Slow.calls.values())
