"""Agreement of stored LLM labels with human labels and with clicks, overall and per bucket.

Joins the annotation store (one model, mode and prompt version) with the click log's lists: human
grades (clipped to 0..4; TREC's -2 "spam" counts as 0; binary modes compare with human >= 1) and
per-pair CTR. Writes `report.md` (confusion matrix, quadratic weighted Cohen's kappa, ordinal
Krippendorff's alpha, Spearman; Spearman with CTR) and `confusion.png`, `buckets.png`.

  D=../shared/data/trec_session_2012_2013
  python tools/agreement_report.py --format trec-session $D/sessiontrack2012.xml \\
      $D/sessiontrack2013.xml --labels $D/relevance2012.txt --labels $D/relevance2013.txt \\
      --store /tmp/ann.db --model SmolLM2-135M-Instruct.Q4_1.gguf --out /tmp/agreement
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from rankjax import cli  # noqa: E402
from rankjax.annotate import agreement  # noqa: E402
from rankjax.annotate import modes  # noqa: E402
from rankjax.annotate import runner  # noqa: E402
from rankjax.annotate import store as store_lib  # noqa: E402
from rankjax.data import readers  # noqa: E402
from rankjax.data import schema  # noqa: E402


def join(lists, rows, binary: bool):
  """Per paired item: (bucket, llm label, llm expected or NaN, human grade or NaN, ctr)."""
  by_key = {(r["qid"], r["doc_id"]): r for r in rows}
  out = []
  for rl in lists:
    human = rl.labels.get("human", np.full(len(rl), np.nan))
    ctr = rl.labels.get("click", np.full(len(rl), np.nan))
    for i, d in enumerate(rl.doc_ids):
      r = by_key.get((rl.qid, d))
      if r is None:
        continue
      h = human[i]
      if np.isfinite(h):
        h = float(h >= 1) if binary else float(np.clip(h, 0, 4))
      out.append((rl.bucket, r["label"], np.nan if r["expected"] is None else r["expected"], h,
                  ctr[i]))
  return np.array(out, dtype=float).reshape(-1, 5)


def section(data, k):
  """Statistics of the joined rows `data`."""
  llm, expected, human, ctr = data[:, 1], data[:, 2], data[:, 3], data[:, 4]
  has_h = np.isfinite(human)
  s = {"pairs": int(len(data)), **agreement.summary(llm[has_h], human[has_h], k)}
  has_e = has_h & np.isfinite(expected)
  if has_e.any():
    s["spearman_expected_vs_human"] = agreement.spearman(expected[has_e], human[has_e])
  has_c = np.isfinite(ctr)
  s["spearman_llm_vs_ctr"] = agreement.spearman(llm[has_c], ctr[has_c])
  s["spearman_human_vs_ctr"] = agreement.spearman(human[has_c & has_h], ctr[has_c & has_h])
  return s


def write_report(out: pathlib.Path, title: str, data, k: int) -> dict:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  out.mkdir(parents=True, exist_ok=True)
  overall = section(data, k)
  buckets = {name: section(data[data[:, 0] == b], k) for b, name in enumerate(schema.BUCKETS)
             if (data[:, 0] == b).any()}
  has_h = np.isfinite(data[:, 3])
  cm = agreement.confusion_matrix(data[has_h, 1], data[has_h, 3], k)
  fmt = lambda v: "" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
  cols = ["pairs", "n", "exact", "kappa_quadratic", "alpha_ordinal", "spearman",
          "spearman_expected_vs_human", "spearman_llm_vs_ctr", "spearman_human_vs_ctr"]
  lines = [f"# {title}", "", "`n`: pairs with a human label. Kappa: quadratic weights; alpha: "
           "ordinal; CTR correlations are Spearman over pairs with clicks data.", "",
           "| bucket | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
  for name, s in [("all", overall)] + list(buckets.items()):
    lines.append(f"| {name} | " + " | ".join(fmt(s.get(c)) for c in cols) + " |")
  lines += ["", "Confusion matrix (rows: LLM label, columns: human grade):", "",
            "| LLM \\ human | " + " | ".join(map(str, range(k))) + " |", "|---" * (k + 1) + "|"]
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


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("files", nargs="+", help="click log files (the ones that were annotated)")
  p.add_argument("--format", required=True, choices=sorted(readers.FORMATS))
  p.add_argument("--labels", action="append",
                 help="human labels for the reader (TREC qrels, ...): once, or once per file")
  p.add_argument("--queries")
  p.add_argument("--encoding")
  p.add_argument("--store", required=True)
  p.add_argument("--model", required=True, help="the model name recorded in the store")
  p.add_argument("--mode", choices=list(modes.MODES), default="pointwise_graded")
  p.add_argument("--prompt-version", help="default: the one with most rows for model and mode")
  p.add_argument("--out", required=True, help="directory for report.md and the PNGs")
  args = p.parse_args(argv)
  options = {k: getattr(args, k) for k in ("queries", "encoding") if getattr(args, k) is not None}
  labels = args.labels or []
  if len(labels) > 1 and len(labels) != len(args.files):
    raise SystemExit(f"{len(labels)} --labels for {len(args.files)} files: one, or one per file")
  if len(labels) > 1:  # e.g. TREC: each year's log with its own qrels
    lists = [rl for f, lab in zip(args.files, labels)
             for rl in runner.lists_from_log(args.format, [f], labels=lab, **options)[0]]
  else:
    lists, _ = runner.lists_from_log(args.format, args.files,
                                     **({"labels": labels[0]} if labels else {}), **options)
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
  result = write_report(pathlib.Path(args.out), f"{args.model} / {version} vs human and clicks",
                        data, k)
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  cli.one_line_errors(main)()
