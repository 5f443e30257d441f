"""`rankjax annotate run` against a server that misbehaves (the `fault_server` fixture,
tests/annotate/fault_server.py): every answer that is not a chat completion is retried, then
recorded as a failure;
transient faults cost retries only; an unreachable server and undone pairs exit 1; `--limit` covers
the same pairs on every run; runs sharing a store never ask for a pair twice; the API key reaches
no store, log or output. Each test asserts the summary's counts, the store's rows, the exit
status and the requests per document."""

import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import time

import pytest
from annotate_helpers import annotate_argv
from fault_server import fault_server_fixture  # noqa: F401  a fixture; basenames are unique

from rankjax import cli
from rankjax.annotate import prompts
from rankjax.annotate import store as store_lib

KEY = "sk-live-9f8e7d6c5b4a39281706"


def _log(tmp_path, docs, queries=1):
  """A JSONL log: `queries` queries, each showing the documents `docs` (ids d0, d1, ...)."""
  path = tmp_path / "log.jsonl"
  with path.open("w") as f:
    for q in range(queries):
      texts = [d if queries == 1 else f"q{q}{d}" for d in docs]
      row = {
        "query_id": f"q{q}",
        "query": f"query {q}",
        "doc_ids": [f"d{i}" for i in range(len(docs))],
        "clicks": [0] * len(docs),
        "doc_texts": texts,
      }
      f.write(json.dumps(row) + "\n")
  return path


def _argv(log, db, url, *extra):
  return annotate_argv(log, db, *extra, base_url=url)


def _run(argv, capsys):
  """(exit status, stdout, stderr) of `rankjax <argv>` in this process."""
  try:
    code = cli.main(argv)
  except SystemExit as e:
    code = e.code
  out, err = capsys.readouterr()
  return code, out, err


def _rows(db):
  with store_lib.Store(db) as st:
    return {r["doc_id"]: r for r in st.rows()}


def _pairs(summary):
  n = summary["pairs"]
  return {
    k: n[k] for k in ("covered", "done", "done_this_run", "failed", "failed_this_run", "left")
  }


def test_answers_that_are_not_chat_completions_are_retried_then_recorded(
  fault_server, tmp_path, capsys
):
  faults = ["html", "empty_choices", "no_choices", "no_message", "wrong_types", "truncated"]
  for f in faults:
    fault_server.script(f, [f])
  log, db = _log(tmp_path, faults + ["fine"]), tmp_path / "a.db"
  code, out, err = _run(
    _argv(log, db, fault_server.url, "--max-retries", "2", "--json", "--concurrency", "7"), capsys
  )
  summary = json.loads(out)
  assert code == summary["exit_status"] == 1
  assert _pairs(summary) == {
    "covered": 7,
    "done": 1,
    "done_this_run": 1,
    "failed": 6,
    "failed_this_run": 6,
    "left": 0,
  }
  assert err == (
    "rankjax annotate run: 6 of 7 pairs undone: 6 failed, 0 left (0 could not reach the "
    "server); rerun to ask again (--retry-failed redoes the failed ones)\n"
  )
  # Each fault asked 1 + 2 retries times; the good document once.
  assert fault_server.calls == {**{f: 3 for f in faults}, "fine": 1}
  assert summary["requests"] == 19 and summary["retries"] == 12
  rows = _rows(db)
  assert rows["d6"]["status"] == "ok" and rows["d6"]["label"] == 2
  url = f"{fault_server.url}/chat/completions"
  want = {
    "d0": "body is not JSON (text/html; Expecting value: line 1 column 1 (char 0)): "
    "'<html><body><h1>502 Bad Gateway</h1></body></html>'",
    "d1": "body.choices is empty",
    "d2": "body.choices is missing",
    "d3": "choices[0].message is missing",
    "d4": "body.choices is str",  # the third answer: `choices` a string again
    "d5": "body is not JSON (application/json; Unterminated string starting at: line 1 column "
    '23 (char 22)): \'{"id": "x", "object": "chat.co\'',
  }
  for doc, error in want.items():
    assert rows[doc]["status"] == "failed" and rows[doc]["label"] is None
    assert rows[doc]["error"] == f"{url}: {error} (after 2 retries)"
  # A rerun asks nothing and still says the pairs are undone; --retry-failed asks again.
  code, out, _ = _run(_argv(log, db, fault_server.url, "--max-retries", "0", "--json"), capsys)
  assert code == 1 and _pairs(json.loads(out))["failed_this_run"] == 0
  assert sum(fault_server.calls.values()) == 19
  code, out, _ = _run(
    _argv(log, db, fault_server.url, "--max-retries", "0", "--json", "--retry-failed"), capsys
  )
  assert code == 1 and _pairs(json.loads(out))["failed_this_run"] == 6
  assert sum(fault_server.calls.values()) == 19 + 6
  # A pipeline that tolerates a share of failures: 6 of 7 is over 0.8, not over 0.9.
  code, *_ = _run(_argv(log, db, fault_server.url, "--json", "--max-failed", "0.8"), capsys)
  assert code == 1
  code, out, err = _run(_argv(log, db, fault_server.url, "--json", "--max-failed", "0.9"), capsys)
  assert code == json.loads(out)["exit_status"] == 0 and err == ""


def test_transient_faults_cost_retries_only(fault_server, tmp_path, capsys):
  fault_server.script("busy", ["429", "500", "ok"])
  fault_server.script("dropped", ["reset", "ok"])
  fault_server.script("hung", ["slow", "ok"])
  log, db = _log(tmp_path, ["busy", "dropped", "hung"]), tmp_path / "t.db"
  code, out, _ = _run(_argv(log, db, fault_server.url, "--timeout", "0.5", "--json"), capsys)
  summary = json.loads(out)
  assert code == 0 and summary["exit_status"] == 0
  assert _pairs(summary) == {
    "covered": 3,
    "done": 3,
    "done_this_run": 3,
    "failed": 0,
    "failed_this_run": 0,
    "left": 0,
  }
  assert fault_server.calls == {"busy": 3, "dropped": 2, "hung": 2}
  assert (summary["requests"], summary["retries"], summary["transport_failures"]) == (7, 4, 0)
  assert {d: (r["status"], r["label"]) for d, r in _rows(db).items()} == {
    d: ("ok", 2) for d in ("d0", "d1", "d2")
  }
  # Billed tokens: the answered requests only.
  assert (summary["prompt_tokens"], summary["completion_tokens"]) == (120, 3)


def test_nothing_listening_is_an_error(tmp_path, capsys):
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # closed again: nothing listens there
  log, db = _log(tmp_path, ["a", "b", "c"]), tmp_path / "u.db"
  code, out, err = _run(_argv(log, db, url, "--max-retries", "1"), capsys)
  assert code == 1
  assert err == (
    "rankjax annotate run: 3 of 3 pairs undone: 0 failed, 3 left (3 could not reach the "
    "server); rerun to ask again\n"
  )
  assert out.splitlines()[1:6] == [
    "  log: 3 pairs",
    "  covered: 3",
    "  done:    0 (0 this run)",
    "  failed:  0 (0 this run)",
    "  left:    3 (3 could not reach the server)",
  ]
  assert out.splitlines()[-2] == (
    f"  last error: {url}/chat/completions: connection failed ([Errno 111] Connection refused) "
    "(after 1 retries)"
  )
  assert _rows(db) == {}
  summary = json.loads((tmp_path / "u.db.summary.json").read_text())
  assert summary["exit_status"] == 1 and summary["pairs"]["unreachable"] == 3


def test_limit_covers_the_same_pairs_on_every_run(fault_server, tmp_path, capsys):
  log, db = _log(tmp_path, ["a", "b", "c", "d", "e"]), tmp_path / "l.db"
  summary_file = tmp_path / "out" / "s.json"
  argv = _argv(log, db, fault_server.url, "--limit", "2", "--summary", str(summary_file))
  for run in (1, 2):
    code, out, _ = _run(argv, capsys)
    assert code == 0
    assert out.splitlines()[1:6] == [
      "  log: 5 pairs",
      "  covered: 2 (--limit; 3 beyond it)",
      f"  done:    2 ({2 if run == 1 else 0} this run)",
      "  failed:  0 (0 this run)",
      "  left:    0",
    ]
    assert out.splitlines()[-1] == f"summary: {summary_file}"
    assert sorted(_rows(db)) == ["d0", "d1"]
    assert fault_server.calls == {"a": 1, "b": 1}
  summary = json.loads(summary_file.read_text())
  assert summary["pairs"]["beyond_limit"] == 3 and summary["pairs"]["in_log"] == 5
  # A larger limit covers the stored pairs and the next ones.
  code, out, _ = _run(_argv(log, db, fault_server.url, "--limit", "3", "--json"), capsys)
  assert _pairs(json.loads(out))["done_this_run"] == 1 and sorted(_rows(db)) == ["d0", "d1", "d2"]


def test_the_api_key_reaches_no_store_log_or_output(fault_server, tmp_path, capsys, caplog):
  caplog.set_level(logging.DEBUG)
  os.environ["RANKJAX_FAULT_KEY"] = KEY
  try:
    fault_server.script("echo", ["echo_401"])
    fault_server.script("flaky", ["500", "ok"])
    log, db = _log(tmp_path, ["echo", "flaky"]), tmp_path / "k.db"
    code, out, err = _run(
      _argv(log, db, fault_server.url, "--api-key-env", "RANKJAX_FAULT_KEY", "--json"), capsys
    )
  finally:
    del os.environ["RANKJAX_FAULT_KEY"]
  assert code == 1
  # The server got the key, and echoed it in its 401 body.
  auth = {v for h in fault_server.headers for k, v in h.items() if k.lower() == "authorization"}
  assert auth == {f"Bearer {KEY}"}
  error = _rows(db)["d0"]["error"]
  assert error.startswith('HTTP 401: {"error": {"message": "invalid key", "request_headers": {')
  assert '"authorization": "[REDACTED]"' in error
  assert KEY[:8] not in error  # the key's head, not only the whole key, is gone
  with sqlite3.connect(db) as c:
    dump = "\n".join(c.iterdump())
  assert "HTTP 401" in dump and KEY not in dump
  for path in tmp_path.iterdir():  # the store, its WAL, the summary file
    assert KEY.encode() not in path.read_bytes(), path
  assert KEY not in out and KEY not in err and KEY not in caplog.text
  assert "retry 1" in caplog.text  # the log had the retries' lines


@pytest.mark.slow
def test_runs_sharing_a_store_never_ask_for_a_pair_twice(fault_server, tmp_path):
  fault_server.delay = 0.03
  docs = [f"doc{i}" for i in range(12)]
  log, db = _log(tmp_path, docs, queries=5), tmp_path / "c.db"
  argv = [sys.executable, "-m", "rankjax.cli", *_argv(log, db, fault_server.url, "--json")]
  procs = [
    subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(2)
  ]
  outs = [p.communicate(timeout=120) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
  summaries = [json.loads(o) for o, _ in outs]
  assert len(fault_server.calls) == 60 and set(fault_server.calls.values()) == {1}
  assert sum(s["pairs"]["done_this_run"] for s in summaries) == 60
  # The run that ends first may leave pairs the other one holds: not a failure (exit status 0).
  for s in summaries:
    n = s["pairs"]
    assert n["done"] + n["left"] == 60 and n["left"] <= n["held_by_other_runs"]
  with store_lib.Store(db) as st:
    assert st.count() == 60 and st.leases() == []


def test_a_lease_is_honoured_until_it_expires_or_its_owner_dies(fault_server, tmp_path, capsys):
  log, db = _log(tmp_path, ["a", "b"]), tmp_path / "e.db"
  template = prompts.load("pointwise_graded")
  other = f"{socket.gethostname()}:{os.getpid()}:another"  # a live owner: this process

  def lease(owner, expires_at):
    with sqlite3.connect(db) as c:
      c.execute(
        "INSERT OR REPLACE INTO leases VALUES (?,?,?,?,?,?,?)",
        ("m", template.version, "pointwise_graded", "q0", "d0", owner, expires_at),
      )

  with store_lib.Store(db):
    pass  # the schema
  lease(other, time.time() + 600)
  code, out, _ = _run(_argv(log, db, fault_server.url, "--json"), capsys)
  n = json.loads(out)["pairs"]
  assert code == 0 and (n["done"], n["left"], n["held_by_other_runs"]) == (1, 1, 1)
  assert fault_server.calls == {"b": 1}
  lease(other, time.time() - 1)  # expired: taken over
  code, out, _ = _run(_argv(log, db, fault_server.url, "--json"), capsys)
  assert code == 0 and json.loads(out)["pairs"]["done_this_run"] == 1
  assert fault_server.calls == {"a": 1, "b": 1}

  # The owner was a process on this host that has exited: taken over before its lease expires.
  dead = subprocess.run(
    [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
  )
  with sqlite3.connect(db) as c:
    c.execute("DELETE FROM annotations WHERE doc_id='d0'")
  lease(f"{socket.gethostname()}:{int(dead.stdout)}:x", time.time() + 600)
  code, out, _ = _run(_argv(log, db, fault_server.url, "--json"), capsys)
  assert code == 0 and json.loads(out)["pairs"]["done_this_run"] == 1
  assert fault_server.calls == {"a": 2, "b": 1}


@pytest.mark.parametrize("limit", ["-1", "x"])
def test_a_bad_limit_is_a_usage_error(limit, tmp_path, capsys):
  argv = _argv(tmp_path / "log.jsonl", tmp_path / "x.db", "http://x/v1", "--limit", limit)
  code, _, err = _run(argv, capsys)
  assert code == 2
  assert err.splitlines()[-1] == (
    f"rankjax annotate run: error: argument --limit: a whole number >= 0, not {limit!r}"
  )
