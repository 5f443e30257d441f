"""`fault_server`: an OpenAI-compatible chat endpoint on loopback that answers each document's
requests by a script of faults, and counts the requests per document.

The document is the line after "Document:" in the prompt. `server.script(doc, [fault, ...])` sets
the answers to its 1st, 2nd, ... request (the last one repeats); a document without a script is
answered "ok". Faults:

  ok             200, a chat completion with the answer "2" and token usage
  html           200, an HTML page (a proxy's error page)
  empty_choices  200, `{"choices": []}`
  no_choices     200, a JSON object without `choices`
  no_message     200, `choices[0]` without `message`
  wrong_types    200, `choices` a string; `message.content` a number alternately by request
  truncated      200, a JSON body cut mid-way (its Content-Length matches the cut body)
  echo_401       401, a body echoing every request header (Authorization included)
  slow           200 headers, then nothing for 3 s before the body (past a shorter timeout)
  reset          the connection reset (RST) before any answer
  429            429 with Retry-After: 0.01
  500            500
"""

import http.server
import json
import socket
import struct
import threading
import time

import pytest


def _completion(text: str) -> dict:
  return {
    "id": "x",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
    "usage": {"prompt_tokens": 40, "completion_tokens": 1},
  }


class FaultServer:
  """The server: `url` its base URL (.../v1), `calls[doc]` the requests per document, `headers`
  every request's headers, `delay` seconds before each answer."""

  def __init__(self):
    self.calls: dict[str, int] = {}
    self.headers: list[dict] = []
    self.delay = 0.0  # seconds before every answer
    self._scripts: dict[str, list[str]] = {}
    self._lock = threading.Lock()
    server = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def log_message(self, *args):
        pass

      def do_POST(self):  # pylint: disable=invalid-name  (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        # The first user message (a re-ask adds more after it).
        doc = body["messages"][1]["content"].split("Document:\n")[-1].split("\n")[0]
        with server._lock:
          n = server.calls[doc] = server.calls.get(doc, 0) + 1
          server.headers.append(dict(self.headers))
          script = server._scripts.get(doc, ["ok"])
        time.sleep(server.delay)
        server.answer(self, script[min(n, len(script)) - 1], n)

    self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self._http.daemon_threads = True
    self.url = f"http://127.0.0.1:{self._http.server_address[1]}/v1"
    threading.Thread(target=self._http.serve_forever, daemon=True).start()

  def script(self, doc: str, faults: list[str]) -> None:
    self._scripts[doc] = faults

  def close(self):
    self._http.shutdown()
    self._http.server_close()

  @staticmethod
  def answer(h: http.server.BaseHTTPRequestHandler, fault: str, n: int) -> None:
    """Writes the answer `fault` names to the request `h` (its `n`-th for the document)."""
    if fault == "reset":
      h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
      h.connection.close()
      h.close_connection = True
      return
    status, ctype, headers = 200, "application/json", {}
    if fault == "ok":
      data = json.dumps(_completion("2"))
    elif fault == "html":
      ctype, data = "text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>"
    elif fault == "empty_choices":
      data = json.dumps({"id": "x", "choices": []})
    elif fault == "no_choices":
      data = json.dumps({"id": "x", "object": "chat.completion"})
    elif fault == "no_message":
      data = json.dumps({"choices": [{"index": 0, "finish_reason": "stop"}]})
    elif fault == "wrong_types":
      data = json.dumps({"choices": "2"} if n % 2 else {"choices": [{"message": {"content": 2}}]})
    elif fault == "truncated":
      data = json.dumps(_completion("2"))[:30]
    elif fault == "echo_401":
      status = 401
      data = json.dumps({"error": {"message": "invalid key", "request_headers": dict(h.headers)}})
    elif fault == "slow":
      data = json.dumps(_completion("2"))
      h.send_response(200)
      h.send_header("Content-Type", ctype)
      h.send_header("Content-Length", str(len(data)))
      h.end_headers()
      h.wfile.flush()
      time.sleep(3)
      try:
        h.wfile.write(data.encode())
      except OSError:
        pass  # the client gave up
      return
    elif fault in ("429", "500"):
      status, data = int(fault), json.dumps({"error": {"message": "busy"}})
      headers = {"Retry-After": "0.01"} if fault == "429" else {}
    else:
      raise ValueError(f"unknown fault {fault!r}")
    raw = data.encode()
    h.send_response(status)
    for k, v in headers.items():
      h.send_header(k, v)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(raw)))
    h.end_headers()
    h.wfile.write(raw)


@pytest.fixture(name="fault_server")
def fault_server_fixture():
  server = FaultServer()
  yield server
  server.close()
