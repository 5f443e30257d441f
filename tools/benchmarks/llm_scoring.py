"""Pointwise LLM scoring throughput: the JAX backend vs HF transformers + torch, same prompts.

Each method scores p(grade) at the answer position of the same pointwise prompts (TREC Session
shown results when the data is present, else synthetic pairs) and reports pairs/s after a warm-up
pass (compilation excluded). JAX: with and without the shared-prefix KV cache. torch (if
installed): batched, right-padded, last-token logits, eager and optionally `torch.compile`; the
largest difference of its grade probabilities from JAX's is reported as a check that all score
the same thing.

  python tools/benchmarks/llm_scoring.py --model smollm2 --pairs 64 --batch-size 16
  python tools/benchmarks/llm_scoring.py --model smollm2 --pairs 4096 --batch-size 256 \\
      --torch-dtype bfloat16 --compile   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from rankjax import paths  # noqa: E402
from rankjax.annotate import prompts  # noqa: E402
from rankjax.annotate import runner  # noqa: E402
from rankjax.annotate.backends import jax_local  # noqa: E402
from rankjax.data.schema import RankingList  # noqa: E402


def load_tasks(n: int, max_doc_words: int):
  trec = paths.data_path("trec_session_2012_2013", "sessiontrack2012.xml")
  if trec.exists():
    lists, _ = runner.lists_from_log("trec-session", [str(trec)])
    source = "trec_session_2012"
  else:
    rng = np.random.default_rng(0)
    words = "search rank query document jaguar speed bread tax cat car web page".split()
    lists = [RankingList(f"q{q}", [f"d{i}" for i in range(10)],
                         query=" ".join(rng.choice(words, 3)),
                         doc_texts=[" ".join(rng.choice(words, 60)) for _ in range(10)])
             for q in range(-(-n // 10))]
    source = "synthetic"
  tasks, _ = runner.make_tasks(lists, prompts.load("pointwise_graded"), max_doc_words=max_doc_words)
  return tasks[:n], source


def time_jax(backend, tasks):
  list(backend.process(tasks, lambda: False))  # compile every bucket
  start = time.perf_counter()
  results = list(backend.process(tasks, lambda: False))
  return time.perf_counter() - start, results


def time_torch(path, tokenizer, tasks, batch_size, dtype, compile_):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  device = "cuda" if torch.cuda.is_available() else "cpu"
  model = transformers.AutoModelForCausalLM.from_pretrained(
      path.parent, gguf_file=path.name, dtype=getattr(torch, dtype)).to(device).eval()
  forward = torch.compile(model) if compile_ else model
  grade_ids = torch.tensor([tokenizer.encode(str(g), add_special_tokens=False)[0]
                            for g in range(5)], device=device)
  encoded = [tokenizer.encode(tokenizer.apply_chat_template(
      t.messages(), tokenize=False, add_generation_prompt=True), add_special_tokens=False)
             for t in tasks]
  order = np.argsort([len(e) for e in encoded])  # same length bucketing idea as the JAX side

  def run():
    out = {}
    for s in range(0, len(order), batch_size):
      idx = order[s:s + batch_size]
      width = max(len(encoded[i]) for i in idx)
      ids = torch.zeros((len(idx), width), dtype=torch.long)
      mask = torch.zeros_like(ids)
      for r, i in enumerate(idx):
        ids[r, :len(encoded[i])] = torch.tensor(encoded[i])
        mask[r, :len(encoded[i])] = 1
      with torch.inference_mode():
        logits = forward(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        last = logits[torch.arange(len(idx)), mask.sum(1).to(device) - 1].float()
        lp = torch.log_softmax(last, -1)[:, grade_ids]
      for r, i in enumerate(idx):
        out[int(i)] = lp[r].cpu().numpy()
    return out

  run()
  if device == "cuda":
    torch.cuda.synchronize()
  start = time.perf_counter()
  out = run()
  return time.perf_counter() - start, out, device


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--model", default="smollm2")
  p.add_argument("--pairs", type=int, default=64)
  p.add_argument("--batch-size", type=int, default=16)
  p.add_argument("--max-doc-words", type=int, default=160)
  p.add_argument("--max-len", type=int, default=512)
  p.add_argument("--jax-dtype", default="float32", choices=("float32", "bfloat16"))
  p.add_argument("--torch-dtype", default="float32", choices=("float32", "bfloat16"))
  p.add_argument("--compile", action="store_true", help="also time torch.compile")
  p.add_argument("--no-torch", action="store_true")
  args = p.parse_args(argv)

  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  tasks, source = load_tasks(args.pairs, args.max_doc_words)
  path = jax_local.resolve_model(args.model)
  shared = jax_local.JaxLocalBackend.from_path(args.model, dtype=getattr(jnp, args.jax_dtype),
                                               batch_size=args.batch_size, max_len=args.max_len)
  # pylint: disable-next=protected-access
  full = jax_local.JaxLocalBackend(shared.config, shared._params, shared.tokenizer,
                                   model_name=shared.model, share_prefix=False,
                                   batch_size=args.batch_size, max_len=args.max_len + 256)
  prefix_len = shared._prefix(tasks[0].template)[1]  # pylint: disable=protected-access
  mean_len = float(np.mean([len(shared.encode(t)) for t in tasks]))
  out = {"source": source, "pairs": len(tasks), "batch_size": args.batch_size,
         "prefix_tokens": prefix_len, "mean_pair_tokens": round(mean_len, 1),
         "device": str(jax.devices()[0].device_kind), "num_devices": jax.device_count()}
  seconds, res_shared = time_jax(shared, tasks)
  out["jax_shared_prefix_pairs_per_s"] = round(len(tasks) / seconds, 2)
  seconds, _ = time_jax(full, tasks)
  out["jax_full_prompt_pairs_per_s"] = round(len(tasks) / seconds, 2)
  if not args.no_torch:
    try:
      import torch  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      out["torch"] = "not installed"
    else:
      jax_probs = {(r.task.qid, r.task.doc_ids[0]): np.asarray(r.probs[0]) for r in res_shared}
      for name, comp in [("eager", False)] + ([("compile", True)] if args.compile else []):
        seconds, lp, device = time_torch(path, shared.tokenizer, tasks, args.batch_size,
                                         args.torch_dtype, comp)
        out[f"torch_{name}_{args.torch_dtype}_pairs_per_s"] = round(len(tasks) / seconds, 2)
        diffs = []
        for i, t in enumerate(tasks):
          pr = np.exp(lp[i] - lp[i].max())
          diffs.append(np.abs(pr / pr.sum() - jax_probs[(t.qid, t.doc_ids[0])]).max())
        out[f"torch_{name}_max_prob_diff_vs_jax"] = float(np.max(diffs))
        out["torch_device"] = device
  print(json.dumps(out))
  return out


if __name__ == "__main__":
  main()
