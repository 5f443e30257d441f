"""Extending the annotation modes: a mode defined here, its record entered with one
`registry.register` call and its templates written to a directory of their own
(`prompts.load(..., template_dir=...)`), runs through `runner` and a backend, and through
`rankjax annotate run --mode toy_ternary --template-dir DIR`, with no other edit.

The toy is a pointwise three-grade scale (0 not, 1 partly, 2 fully relevant). The backend is the
real `openai_http`, its transport replaced by a scripted model or talking to that model served on
loopback, so the backend's own choices (answer budget, grade logprobs, parsing, the expected grade
over 0..2) come from the record.
"""

import http.server
import json
import math
import threading

import pytest
from annotate_helpers import annotate_argv

from rankjax import cli, registry
from rankjax.annotate import modes, parsing, prompts, runner
from rankjax.annotate import store as store_lib
from rankjax.annotate.backends import openai_http
from rankjax.data.schema import RankingList

TERNARY = modes.Mode(
  "toy_ternary",
  "pointwise",
  max_grade=2,
  parse=lambda text, n: [parsing.parse_grade(text, 2)],
  answer=lambda labels: str(labels[0]),
)

TEMPLATE = """version: 1
[system]
Grade the document for the query: 0 not relevant, 1 partly relevant, 2 fully relevant.
Reply with a single digit and nothing else.
[user]
Query:
{query}

Document:
{document}

Grade (0-2):
"""


@pytest.fixture
def ternary(tmp_path):
  """The toy registered for one test (the registry is process-wide), and its template directory."""
  for lang in prompts.LANGS:
    (tmp_path / f"{TERNARY.name}.{lang}.txt").write_text(TEMPLATE, encoding="utf-8")
  registry.register(modes.MODES, TERNARY.name)(TERNARY)
  yield str(tmp_path)
  del modes.MODES[TERNARY.name]


def _scripted_model(payloads):
  """A chat model: grade 2 for documents about flights, 1 about travel, else 0, with grade-token
  logprobs (p = 0.7 on its grade, 0.3 on the next one up or down); 'off the scale' answers 3."""

  def post(payload):
    payloads.append(payload)
    user = payload["messages"][1]["content"].lower()
    grade = 2 if "flight" in user.split("document:")[1] else int("travel" in user)
    text = "3" if "off the scale" in user else str(grade)
    other = grade - 1 if grade else 1
    top = [
      {"token": str(grade), "logprob": math.log(0.7)},
      {"token": str(other), "logprob": math.log(0.3)},
    ]
    return {
      "choices": [
        {
          "message": {"content": text},
          "logprobs": {"content": [{"token": text, "top_logprobs": top}]},
        }
      ],
      "usage": {"prompt_tokens": 50, "completion_tokens": 1},
    }

  return post


def test_toy_mode_runs_through_the_runner_and_a_backend(ternary, tmp_path, monkeypatch):
  template = prompts.load(TERNARY.name, "zh", ternary)
  assert template.spec is TERNARY and template.version.startswith("toy_ternary.zh.v1+")
  lists = [
    RankingList(
      "q1",
      ["a", "b", "c", "d"],
      query="cheap flights",
      doc_texts=["Flights to Rome.", "Travel insurance.", "Bread.", "Off the scale."],
    )
  ]
  tasks, counts = runner.make_tasks(lists, template)
  assert counts["pairs"] == 4 and [t.doc_ids for t in tasks] == [("a",), ("b",), ("c",), ("d",)]
  backend = openai_http.OpenAIHttpBackend("http://scripted.invalid/v1", "scripted")
  payloads = []
  monkeypatch.setattr(backend, "_post", _scripted_model(payloads))
  with store_lib.Store(tmp_path / "toy.db") as st:
    summary = runner.annotate(tasks, backend, st, progress=False)
    rows = {r["doc_id"]: r for r in st.rows(mode=TERNARY.name)}
  assert (summary.pairs_ok, summary.pairs_failed) == (3, 1)
  assert {d: rows[d]["label"] for d in "abc"} == {"a": 2, "b": 1, "c": 0}
  assert rows["a"]["expected"] == pytest.approx(0.7 * 2 + 0.3 * 1)
  assert len(rows["a"]["probs"].split(",")) == TERNARY.max_grade + 1
  # A grade above the toy's scale is unparsable: re-asked once, then recorded as a failure.
  assert rows["d"]["status"] == "failed" and "outside 0..2" in rows["d"]["error"]
  assert {r["prompt_version"] for r in rows.values()} == {template.version}
  assert all(p["max_tokens"] == 16 and p["logprobs"] for p in payloads)


def test_an_unregistered_mode_is_an_unknown_name(tmp_path):
  (tmp_path / f"{TERNARY.name}.en.txt").write_text(TEMPLATE, encoding="utf-8")
  with pytest.raises(registry.UnknownName, match="unknown annotation mode 'toy_ternary'"):
    prompts.load(TERNARY.name, "en", str(tmp_path))


@pytest.fixture(name="scripted_server")
def fixture_scripted_server():
  """The scripted model as an OpenAI-compatible chat endpoint on loopback: (base URL, the
  requests it got)."""
  payloads = []
  post = _scripted_model(payloads)

  class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
      pass

    def do_POST(self):  # pylint: disable=invalid-name  (http.server's name)
      body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
      data = json.dumps(post(body)).encode()
      self.send_response(200)
      self.send_header("Content-Type", "application/json")
      self.send_header("Content-Length", str(len(data)))
      self.end_headers()
      self.wfile.write(data)

  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  yield f"http://127.0.0.1:{server.server_address[1]}/v1", payloads
  server.shutdown()


def test_toy_mode_runs_through_rankjax_annotate_run(ternary, scripted_server, tmp_path, capsys):
  base_url, payloads = scripted_server
  log = tmp_path / "log.jsonl"
  log.write_text(
    json.dumps(
      {
        "query_id": "q1",
        "query": "cheap flights",
        "doc_ids": ["a", "b", "c"],
        "clicks": [0, 1, 0],
        "doc_texts": ["Flights to Rome.", "Travel insurance.", "Bread."],
      }
    )
    + "\n"
  )
  db = tmp_path / "toy.db"
  argv = annotate_argv(
    log,
    db,
    *("--mode", TERNARY.name, "--template-dir", ternary, "--lang", "zh", "--json"),
    base_url=base_url,
    model="scripted",
  )
  cli.main(argv)
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert summary["prompt_version"].startswith(f"{TERNARY.name}.zh.v1+")
  n = summary["pairs"]
  assert (n["done_this_run"], n["failed"], n["left"], summary["exit_status"]) == (3, 0, 0, 0)
  with store_lib.Store(db) as st:
    rows = {r["doc_id"]: r for r in st.rows(mode=TERNARY.name)}
  assert {d: r["label"] for d, r in rows.items()} == {"a": 2, "b": 1, "c": 0}
  assert len(payloads) == 3 and all(p["model"] == "scripted" for p in payloads)
  # Rerun: everything is stored, nothing is asked again.
  cli.main(argv)
  n = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["pairs"]
  assert (n["covered"], n["done"], n["done_this_run"]) == (3, 3, 0)
  assert len(payloads) == 3


def test_rankjax_annotate_run_offers_a_mode_registered_before_the_call(ternary, capsys):
  del ternary  # registered: --mode's choices are read from the registry when the command runs
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["annotate", "run", "--help"])
  assert exit_info.value.code == 0 and TERNARY.name in capsys.readouterr().out
