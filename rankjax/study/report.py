"""report.md: the study's setting, metric tables with significance marks, tests and analyses."""

from __future__ import annotations

from rankjax.study import stats


def cell(m: dict, test: dict | None) -> str:
  """A table cell: "mean ± std" with ▲/▼ where the Holm-corrected test is significant."""
  mark = ""
  if test is not None and test["p_holm"] < 0.05:
    mark = " ▲" if test["diff"] > 0 else " ▼"
  return f"{m['mean']:.4f} ± {m['std']:.4f}{mark}"


def _one_line(section) -> str:
  """A section that names a thing, with its options: "lambda (lambdaweight=ndcg2, topn=10)"."""
  options = ", ".join(f"{k}={v}" for k, v in section.items() if k != "name")
  return f"{section.name} ({options})" if options else section.name


def _name(summary: dict, variant: str) -> str:
  return f"{variant} (reference)" if variant in summary["references"] else variant


def metric_table(summary: dict, spec: str) -> list[str]:
  """The Markdown table of one metric: a row per variant (in `summary["order"]`), a column per
  bucket, the number of lists below."""
  lines = [
    "| variant | "
    + " | ".join(_bucket(b, summary.get("bucket_ranges")) for b in stats.BUCKETS)
    + " |",
    "|---|" + "---|" * len(stats.BUCKETS),
  ]
  for v in summary["order"]:
    cells = summary["metrics"][v].get(spec, {})
    tests = summary["tests"].get(v, {}).get(spec, {})
    lines.append(
      f"| {_name(summary, v)} | "
      + " | ".join(cell(cells[b], tests.get(b)) if b in cells else "" for b in stats.BUCKETS)
      + " |"
    )
  first = next(iter(summary["metrics"].values()))[spec]
  lines.append(
    "| lists | "
    + " | ".join(str(first[b]["lists"]) if b in first else "0" for b in stats.BUCKETS)
    + " |"
  )
  return lines


def _bucket(name: str, ranges: dict | None) -> str:
  """A bucket's column name with its query frequency range from the dataset, where it has one:
  "high (freq 9..40)"."""
  r = (ranges or {}).get(name)
  if not r or not r["queries"]:
    return name
  span = f"{r['min']:g}" if r["min"] == r["max"] else f"{r['min']:g}..{r['max']:g}"
  return f"{name} (freq {span})"


def report(summary: dict, config) -> str:
  """report.md: setting, metric tables, tests, analyses; variants in `summary["order"]`."""
  base = summary["baseline"]
  order = summary["order"]
  lines = ["# rankjax study report", ""]
  if summary.get("world"):
    meta = summary["world"]
    params = ", ".join(f"{k}={v}" for k, v in meta["world"].items())
    lines += [
      "Data: **the demo world, a simulation** (`rankjax/sim/world.py`), not real "
      f"users or annotators. Parameters: {params}"
      + f". Lists: {meta['lists']}; {meta['clicks']} simulated clicks; PBM propensities "
      "fitted on the log: " + ", ".join(f"{p:.2f}" for p in meta["propensities"]) + ".",
      "",
    ]
  else:
    lines += [f"Data: `{config.data.path or config.data.name}`.", ""]
  lines += [
    f"Evaluation split `{summary['split']}` against human labels; seeds "
    f"{summary['seeds']}; {config.total_steps} steps, loss `{_one_line(config.loss)}`, "
    f"model `{config.model.name}`. Study time {summary['seconds']:.0f} s (the runs' training "
    f"and scoring: {summary['run_seconds']:.0f} s, summed over runs).",
    "",
    "Variants (overrides of `config.supervision`) and baselines (`config.study.baselines`, "
    "`config.study.runs`):",
    "",
  ]
  for v in order:
    over = ", ".join(f"{k}={val}" for k, val in summary["variants"][v].items())
    kind = " (baseline, not trained by rankjax)" if v in summary["baselines"] else ""
    lines.append(f"- **{_name(summary, v)}**{kind}: {over}")
  for note in summary["left_out"]:
    lines += ["", note]
  if summary["references"]:
    lines += [
      "",
      "A reference trains on the human labels the evaluation uses: it is the ceiling the other "
      "variants are read against, listed last.",
    ]
  notes = [n for per in summary.get("preparation", {}).values() for n in per]
  for note in dict.fromkeys(notes):  # what the runs prepared (a learned gate's fit), once each
    lines += ["", note]
  lines += [
    "",
    "Cells: mean ± std over seeds. ▲/▼: significantly better/worse than "
    f"**{base}** "
    "(paired t-test over queries, each query's value averaged over seeds; Holm-corrected "
    "within each metric over all variant × bucket comparisons; adjusted p < 0.05).",
    "",
  ]
  for spec in stats.METRICS:
    lines += [f"## {spec.upper()}", "", *metric_table(summary, spec), ""]
  lines += ["![NDCG@10 by bucket and variant](ndcg10_by_bucket.png)", ""]
  for spec in stats.METRICS:
    lines += [
      f"## Paired tests against {base} ({spec.upper()})",
      "",
      "| variant | bucket | mean difference | p | p (Holm) |",
      "|---|---|---|---|---|",
    ]
    for v in order:
      for b, t in summary["tests"].get(v, {}).get(spec, {}).items():
        lines.append(
          f"| {_name(summary, v)} | {b} | {t['diff']:+.4f} | {t['p']:.3g} | {t['p_holm']:.3g} |"
        )
    lines.append("")
  named = lambda signals: ", ".join(f"`{e}`" for e in signals) or "none configured"
  lines += [
    "## Analyses",
    "",
    "(i) Reliance on document-level click signals and (iii) on semantic match: mean over "
    "queries of the within-query Spearman correlation of the model's scores with the "
    f"document-level signals ({named(summary['doc_signals'])}) and the semantic ones "
    f"({named(summary['semantic_signals'])}). (ii) Separation: mean per-query AUC of "
    f"relevant (human label >= {summary['relevant_label']}) vs non-relevant documents.",
    "",
  ]
  cols = [f"spearman/{e}" for e in summary["doc_signals"] + summary["semantic_signals"]] + [
    f"auc/{b}" for b in stats.BUCKETS
  ]
  lines += ["| variant | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
  for v in order:
    row = summary["analyses"][v]
    lines.append(
      f"| {_name(summary, v)} | "
      + " | ".join(f"{row[c]['mean']:.3f} ± {row[c]['std']:.3f}" if c in row else "" for c in cols)
      + " |"
    )
  lines += ["", "![Scores of relevant and non-relevant documents](score_histograms.png)", ""]
  return "\n".join(lines)
