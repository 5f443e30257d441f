r"""Pointwise LLM relevance scoring throughput: the JAX backend vs HF transformers + torch.

Every method scores p(grade) at the answer position of the same pointwise prompts and the table
gives pairs/s after a warm-up pass over all of them (compilation excluded), timed up to the last
score on the host. Prompts are the TREC Session 2012 shown results when the data is present (else
synthetic pairs); `--prompt-tokens N` cuts each document so the whole chat-rendered prompt is about
N tokens (the issue's "512-token prompts").

Rows:
  * rankjax JAX backend (`JaxLocalBackend.score_encoded`, pre-tokenized pairs): the instruction
    prefix computed once (shared KV cache) or the full prompt per pair, each attention
    implementation asked for (`--attention`); and the shared-prefix backend end to end
    (`process`: chat rendering and tokenization on a host thread included).
  * HF `LlamaForCausalLM` in torch (if installed), eager and `torch.compile`, batched and
    right-padded to the same length buckets as JAX, the strongest plain recipe: the decoder's
    hidden states, then the LM head on each row's last real position only. Its grade
    probabilities are compared with JAX's (max |diff|), a check that all rows score the same thing.

`--random-init` replaces the weights with random ones of the same shape (written once as an HF
safetensors directory that both frameworks load), for machines where the model file cannot go:
throughput does not depend on the values. `--save-shape DIR` writes a model's config and tokenizer
(no weights) for that.

  PYTHONPATH=. .venv/bin/python tools/benchmarks/llm_scoring.py --pairs 64 --batch-size 16
  # GPU: SmolLM2-135M's shape, 512-token prompts, bf16
  python tools/benchmarks/llm_scoring.py --model DIR --random-init --prompt-tokens 512 \
      --pairs 8192 --batch-size 256 --dtype bfloat16 --attention xla,cudnn --torch eager,compile
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import pathlib
import tempfile
import time

import numpy as np

from rankjax.annotate import prompts, runner
from rankjax.annotate.backends import jax_local
from rankjax.annotate.tasks import Task
from rankjax.data import paths
from rankjax.data.schema import RankingList


def load_lists(n: int) -> tuple[list[RankingList], str]:
  trec = paths.data_path("trec_session_2012_2013", "sessiontrack2012.xml")
  if trec.exists():
    lists, _ = runner.lists_from_log("trec-session", [str(trec)])
    return lists, "TREC Session 2012 shown results"
  rng = np.random.default_rng(0)
  words = "search rank query document jaguar speed bread tax cat car web page".split()
  return [
    RankingList(
      f"q{q}",
      [f"d{i}" for i in range(10)],
      query=" ".join(rng.choice(words, 3)),
      doc_texts=[" ".join(rng.choice(words, 60)) for _ in range(10)],
    )
    for q in range(-(-n // 10))
  ], "synthetic pairs"


def make_tasks(n: int, max_doc_words: int, prompt_tokens: int, tokenizer, render):
  """`n` pointwise tasks (cycling through the pairs); with `prompt_tokens`, documents are cut or
  extended (repeating their own text) so each rendered prompt is about that many tokens."""
  lists, source = load_lists(n)
  words = None if prompt_tokens else max_doc_words
  tasks, _ = runner.make_tasks(lists, prompts.load("pointwise_graded"), max_doc_words=words)
  tasks = [tasks[i % len(tasks)] for i in range(n)]
  if not prompt_tokens:
    return tasks, source
  out = []
  for t in tasks:
    empty = len(
      tokenizer.encode(
        render(Task(t.template, t.qid, t.doc_ids, t.query, ("",)).messages()),
        add_special_tokens=False,
      )
    )
    doc = tokenizer.encode(t.docs[0], add_special_tokens=False)
    doc = (doc * (prompt_tokens // max(len(doc), 1) + 1))[: max(prompt_tokens - empty, 1)]
    out.append(Task(t.template, t.qid, t.doc_ids, t.query, (tokenizer.decode(doc),)))
  return out, f"{source}, documents fitted to {prompt_tokens}-token prompts"


def random_hf_dir(shape_dir: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
  """A random-weight HF safetensors copy of the model in `shape_dir` (config + tokenizer)."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  torch.manual_seed(0)
  config = transformers.AutoConfig.from_pretrained(shape_dir)
  transformers.AutoModelForCausalLM.from_config(config).save_pretrained(out)
  transformers.AutoTokenizer.from_pretrained(shape_dir).save_pretrained(out)
  return out


def save_shape(model: str, out: str) -> None:
  import transformers  # pylint: disable=g-import-not-at-top

  path = jax_local.resolve_model(model)
  kw = {"gguf_file": path.name} if path.is_file() else {}
  where = path.parent if path.is_file() else path
  transformers.AutoConfig.from_pretrained(where, **kw).save_pretrained(out)
  transformers.AutoTokenizer.from_pretrained(where, **kw).save_pretrained(out)
  print(f"wrote the config and tokenizer of {path} to {out}")


def timed(fn):
  fn()  # warm-up: compiles every shape
  start = time.perf_counter()
  out = fn()
  return time.perf_counter() - start, out


def jax_rows(args, model_path, tasks, dtype):
  """([(name, seconds, {task index: grade probs})], shared prefix tokens) of the JAX variants."""
  import jax  # pylint: disable=g-import-not-at-top

  base = jax_local.JaxLocalBackend.from_path(model_path, dtype=dtype, batch_size=args.batch_size)

  def backend(attention, share, max_len=args.max_len):
    return jax_local.JaxLocalBackend(
      dataclasses.replace(base.config, attention=attention),
      base._params,
      base.tokenizer,  # pylint: disable=protected-access
      model_name=base.model,
      share_prefix=share,
      batch_size=args.batch_size,
      max_len=max_len,
    )

  rows = []
  prefix_len = 0
  index = {id(t): i for i, t in enumerate(tasks)}
  full_attention = (args.full_attention or args.attention).split(",")
  for share, attentions in ((True, args.attention.split(",")), (False, full_attention)):
    ids = backend("xla", share).encode_all(tasks)  # the same tokens for every attention
    # The longest pair is the last bucket: fixed-length prompts run unpadded.
    max_len = max(max(len(x) for x in ids), args.max_len if share else 0)
    for attention in attentions:
      name = f"rankjax JAX, {'shared prefix' if share else 'full prompt'}, {attention} attention"
      print(f"  {name} ...", flush=True)
      try:
        be = backend(attention, share, max_len)
        batches = be.length_batches(list(zip(tasks, ids)))
        sec, results = timed(lambda: list(be.score_encoded(batches)))  # pylint: disable=cell-var-from-loop
        rows.append((name, sec, {index[id(r.task)]: np.asarray(r.probs[0]) for r in results}))
        print(f"    {len(tasks) / sec:,.0f} pairs/s", flush=True)
        if share:
          prefix_len = be._prefix(tasks[0].template)[1]  # pylint: disable=protected-access
        if share and attention == attentions[0]:
          name = f"rankjax JAX, shared prefix, {attention} attention, end to end (tokenizing too)"
          sec, _ = timed(lambda: list(be.process(tasks, lambda: False)))  # pylint: disable=cell-var-from-loop
          rows.append((name, sec, None))
          print(f"    {len(tasks) / sec:,.0f} pairs/s", flush=True)
      except Exception as e:  # pylint: disable=broad-except  (one failing row must not hide others)
        rows.append((name, f"failed: {type(e).__name__}: {str(e).splitlines()[0][:100]}", None))
      jax.clear_caches()
  return rows, prefix_len


def torch_row(model_path, tokenizer, render, tasks, buckets, batch_size, dtype, compiled):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  device = "cuda" if torch.cuda.is_available() else "cpu"
  path = pathlib.Path(model_path)  # an HF directory, or a GGUF file transformers dequantizes
  where, kw = (path.parent, {"gguf_file": path.name}) if path.is_file() else (path, {})
  model = (
    transformers.AutoModelForCausalLM.from_pretrained(where, dtype=getattr(torch, dtype), **kw)
    .to(device)
    .eval()
  )
  decoder = torch.compile(model.model) if compiled else model.model
  grade_ids = torch.tensor(
    [tokenizer.encode(str(g), add_special_tokens=False)[0] for g in range(5)], device=device
  )
  encoded = tokenizer([render(t.messages()) for t in tasks], add_special_tokens=False)["input_ids"]
  order = np.argsort([len(e) for e in encoded], kind="stable")
  batches = []
  for s in range(0, len(order), batch_size):
    idx = order[s : s + batch_size]
    longest = max(len(encoded[i]) for i in idx)
    width = next((b for b in buckets if b >= longest), longest)
    ids = torch.zeros((len(idx), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, i in enumerate(idx):
      ids[r, : len(encoded[i])] = torch.tensor(encoded[i])
      mask[r, : len(encoded[i])] = 1
    batches.append((idx, ids.to(device), mask.to(device)))

  def run():
    out = {}
    with torch.inference_mode():
      for idx, ids, mask in batches:
        hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
        last = hidden[torch.arange(len(idx), device=device), mask.sum(1) - 1]
        lp = torch.log_softmax(model.lm_head(last).float(), -1)[:, grade_ids].cpu().numpy()
        for r, i in enumerate(idx):
          p = np.exp(lp[r] - lp[r].max())
          out[int(i)] = p / p.sum()
    return out

  return timed(run)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--model", default="smollm2", help="smollm2, a .gguf file or an HF directory")
  p.add_argument(
    "--random-init",
    action="store_true",
    help="random weights of the model's shape (--model: an HF dir, no weights needed)",
  )
  p.add_argument("--save-shape", metavar="DIR", help="write --model's config and tokenizer, exit")
  p.add_argument("--pairs", type=int, default=64)
  p.add_argument("--batch-size", type=int, default=16)
  p.add_argument("--max-doc-words", type=int, default=160)
  p.add_argument("--prompt-tokens", type=int, default=0, help="fit documents to N-token prompts")
  p.add_argument("--max-len", type=int, default=512, help="longest pair after the prefix")
  p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  p.add_argument(
    "--attention",
    default="xla",
    help="comma list of llama.ATTENTION names (the first one also runs end to end)",
  )
  p.add_argument(
    "--full-attention",
    default="",
    help="attentions for the full-prompt rows (default: --attention)",
  )
  p.add_argument("--torch", default="eager", help="comma list of eager, compile; or none")
  args = p.parse_args(argv)
  if args.save_shape:
    return save_shape(args.model, args.save_shape)

  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  with tempfile.TemporaryDirectory() as tmp:
    model_path = str(
      random_hf_dir(pathlib.Path(args.model), pathlib.Path(tmp))
      if args.random_init
      else jax_local.resolve_model(args.model)
    )
    tokenizer = jax_local.gguf_weights.load_tokenizer(model_path)
    render = lambda m: tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
    tasks, source = make_tasks(
      args.pairs, args.max_doc_words, args.prompt_tokens, tokenizer, render
    )
    full_lengths = [
      len(x)
      for x in tokenizer([render(t.messages()) for t in tasks], add_special_tokens=False)[
        "input_ids"
      ]
    ]
    rows, prefix_len = jax_rows(args, model_path, tasks, getattr(jnp, args.dtype))
    torch_modes = [m for m in args.torch.split(",") if m != "none"]
    try:
      import torch  # pylint: disable=g-import-not-at-top

      torch_version = torch.__version__
    except ImportError:
      torch_modes, torch_version = [], "not installed"
    if torch_modes:
      buckets = jax_local.buckets_up_to(max(full_lengths))
      for mode in torch_modes:
        name = f"HF transformers + torch {torch_version}, {mode}, {args.dtype}"
        print(f"  {name} ...", flush=True)
        try:
          sec, probs = torch_row(
            model_path,
            tokenizer,
            render,
            tasks,
            buckets,
            args.batch_size,
            args.dtype,
            mode == "compile",
          )
          rows.append((name, sec, probs))
          print(f"    {len(tasks) / sec:,.0f} pairs/s", flush=True)
        except Exception as e:  # pylint: disable=broad-except
          rows.append((name, f"failed: {type(e).__name__}: {str(e).splitlines()[0][:100]}", None))

  ref = next((r[2] for r in rows if r[2] is not None), None)
  compiled = next((r[1] for r in rows if "compile" in r[0] and not isinstance(r[1], str)), None)
  print(
    f"\n{datetime.date.today()}, {jax.devices()[0].device_kind} ({jax.default_backend()}), "
    f"jax {jax.__version__}, torch {torch_version}; {len(tasks)} pairs ({source}), "
    f"prompts {np.mean(full_lengths):.0f} tokens on average ({min(full_lengths)}-"
    f"{max(full_lengths)}), shared prefix {prefix_len} tokens; batch {args.batch_size}, "
    f"{args.dtype}{', random weights' if args.random_init else ''}\n"
  )
  print("| method | pairs/s | prompt tokens/s | vs torch.compile | max abs diff of p(grade) |")
  print("|---|---:|---:|---:|---:|")
  for name, sec, probs in rows:
    if isinstance(sec, str):
      print(f"| {name} | {sec} | | | |")
      continue
    pairs = len(tasks) / sec
    diff = (
      f"{max(np.abs(probs[i] - ref[i]).max() for i in ref):.1e}"
      if probs is not None and probs is not ref
      else "reference"
      if probs is ref
      else "-"
    )
    speedup = f"{compiled / sec:.2f}x" if compiled else "-"
    print(f"| {name} | {pairs:,.0f} | {sum(full_lengths) / sec:,.0f} | {speedup} | {diff} |")
  return rows


if __name__ == "__main__":
  main()
