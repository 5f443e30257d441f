r"""The study: supervision variants over seeds, evaluated per frequency bucket, and report.md.

A config with a `study` section is a study (`rankjax train` dispatches it to `run`):

  config.study.variants        name -> overrides of `config.supervision` (objective, source, ...);
                               e.g. {"click": {"source": "click", "weights": "ips_pbm"}, ...}
  config.study.baseline        the variant the others are tested against (e.g. "click")
  config.study.seeds           training seeds; every variant trains once per seed
  config.study.split           the evaluation split (human labels)
  config.study.relevant_label  human label from which a document counts as relevant (AUC)
  config.study.doc_signals     per-item extras of document-level click statistics (global_ctr)
  config.study.semantic_signals per-item semantic match: extras (the world's "semantic") or
                               "term_overlap", computed from the query and document texts

The data is `config.data`'s, as for one run (`rankjax.engine.data_source`): e.g. the simulated
demo world (`data.name = "demo_world"`, its parameters `data.world`), which the report describes.

Every (variant, seed) trains in `<workdir>/runs/<variant>/seed<k>` with `train.train_and_evaluate`
(and so resumes), then scores the evaluation split. What a variant's supervision needs before
training (a learned gate fitted on `config.supervision.gate.fit_split`, IPS propensities from the
world) its runs prepare themselves (`rankjax.supervision.prepare`); the notes they leave (the
fitted gate) go into the report. The report (`<workdir>/report.md`,
`ndcg10_by_bucket.png`, `score_histograms.png`, `study.json`) has:

- NDCG@{1,3,5,10} and ERR@10 per bucket (high, medium, low, all) as mean +- std over seeds;
- paired t-tests (scipy) of each variant against the baseline on per-query values (each query's
  mean over seeds), Holm-corrected within each metric over all (variant, bucket) comparisons;
- (i) reliance on document-level click signals and (iii) on semantic match: the mean over queries
  of the Spearman correlation between a model's scores and the signal within the query;
- (ii) separation of relevant from non-relevant documents: per-query AUC and score histograms.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import time

import jax
import jax.numpy as jnp
import matplotlib
import ml_collections
import numpy as np
from scipy import stats as scipy_stats

from rankjax.engine import data_source
from rankjax.engine import evaluate
from rankjax.engine import mesh as mesh_lib
from rankjax.ranking import metrics as metrics_lib
from rankjax import models
from rankjax.engine import train
from rankjax.data import pipeline
from rankjax.data import store

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top

METRICS = ("ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "err@10")
BUCKETS = metrics_lib.BUCKETS  # high, medium, low, all


def holm(pvalues) -> np.ndarray:
  """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1).

  >>> holm([0.01, 0.04, 0.03]).round(2).tolist()
  [0.03, 0.06, 0.06]
  """
  p = np.asarray(pvalues, np.float64)
  m = p.size
  order = np.argsort(p)
  adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
  out = np.empty(m)
  out[order] = np.minimum(adjusted, 1.0)
  return out


def auc_per_list(scores, relevant, where) -> np.ndarray:
  """f64[N]: P(score of a relevant item > a non-relevant one), ties 1/2; NaN without both kinds.

  >>> auc_per_list(np.array([[3., 1., 2., 0.]]), np.array([[1, 0, 1, 0]], bool),
  ...              np.array([[1, 1, 1, 0]], bool)).tolist()
  [1.0]
  """
  s = np.asarray(scores, np.float64)
  pos = np.asarray(relevant) & where
  neg = ~np.asarray(relevant) & where
  diff = s[:, :, None] - s[:, None, :]
  pair = pos[:, :, None] & neg[:, None, :]
  wins = np.sum(pair * ((diff > 0) + 0.5 * (diff == 0)), axis=(1, 2))
  count = pair.sum(axis=(1, 2))
  return np.where(count > 0, wins / np.maximum(count, 1), np.nan)


def spearman_per_list(scores, signal, where) -> np.ndarray:
  """f64[N]: Spearman correlation within each list; NaN where either side is constant.

  >>> spearman_per_list(np.array([[1., 2., 3., 9.]]), np.array([[10., 20., 30., 0.]]),
  ...                   np.array([[1, 1, 1, 0]], bool)).tolist()
  [1.0]
  """
  out = np.full(len(scores), np.nan)
  for i, (s, x, m) in enumerate(zip(scores, signal, where)):
    if m.sum() > 2 and np.ptp(s[m]) > 0 and np.ptp(x[m]) > 0:
      out[i] = scipy_stats.spearmanr(s[m], x[m]).statistic
  return out


_TOKEN = re.compile(r"[\u3400-\u9fff]|\w+")  # CJK characters one by one, other words whole


def term_overlap(query: str, doc: str) -> float:
  """Share of the query's distinct terms that occur in the document (lower case).

  >>> term_overlap("Jaguar car price", "the price of a jaguar"), term_overlap("北京天气", "天气预报")
  (0.6666666666666666, 0.5)
  """
  q = set(_TOKEN.findall(query.lower()))
  return len(q & set(_TOKEN.findall(doc.lower()))) / len(q) if q else 0.0


def _text(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


def available_signals(layout: dict) -> list[str]:
  """The per-item signals a split offers the analyses: its extras, and term_overlap with text."""
  return list(layout["extras"]) + (["term_overlap"] if layout["query"] and layout["doc_texts"]
                                   else [])


def padded_split(split, extras=()) -> dict[str, np.ndarray]:
  """The evaluation split as arrays [N, Lmax]: human labels, masks, bucket, requested signals.

  A signal is a per-item extra, or "term_overlap" computed from the query and document texts.
  """
  n, size = len(split), int(split.lengths.max())
  out = {"label": np.zeros((n, size), np.float32), "where": np.zeros((n, size), bool),
         "bucket": np.zeros(n, np.int32), "qid": []}
  for e in extras:
    out[e] = np.zeros((n, size), np.float32)
  for i in range(n):
    rec = split[i]
    k = len(rec["doc_ids"])
    labels = rec["label_human"]
    out["label"][i, :k] = np.nan_to_num(labels)
    out["where"][i, :k] = ~np.isnan(labels)
    out["bucket"][i] = rec["bucket"]
    out["qid"].append(_text(rec["qid"]))
    for e in extras:
      if e == "term_overlap" and "extra_term_overlap" not in rec:
        out[e][i, :k] = [term_overlap(_text(rec["query"]), _text(d)) for d in rec["doc_texts"]]
      else:
        out[e][i, :k] = rec[f"extra_{e}"]
  return out


def per_list_metrics(scores: np.ndarray, data: dict) -> dict[str, np.ndarray]:
  """metric spec -> f32[N] per-list values (NaN for lists without a relevant document)."""
  labels, where = jnp.asarray(data["label"]), jnp.asarray(data["where"])
  counted = np.asarray(metrics_lib.has_relevant(labels, where))
  out = {}
  for spec in METRICS:
    name, topn = evaluate.parse_metric(spec)
    values = metrics_lib.get_metric(name)(jnp.asarray(scores), labels, where=where, topn=topn,
                                          reduce_fn=None)
    out[spec] = np.where(counted, np.asarray(values), np.nan)
  return out


def in_bucket(bucket: np.ndarray, name: str) -> np.ndarray:
  return np.ones(bucket.shape, bool) if name == "all" else bucket == BUCKETS.index(name)


def variant_config(config, variant: str, seed: int, data_path):
  """The single-run config of one (variant, seed): the base config without `study`, the
  variant's overrides merged into `config.supervision`.

  What the variant's supervision needs before training (a learned gate's fit, IPS propensities
  from the world) is prepared by the run itself (`rankjax.supervision.prepare`).
  """
  base = config.to_dict()
  study = base.pop("study")
  cfg = ml_collections.ConfigDict(base)
  cfg.seed = seed
  cfg.data.path = str(data_path)
  cfg.data.list_sizes = tuple(cfg.data.list_sizes)
  cfg.supervision.update(study["variants"][variant])
  return cfg


def score_run(cfg, state, split, mesh) -> np.ndarray:
  """f32[N, Lmax] scores of a trained state on a split (0 past each list's end)."""
  _, model = models.build(cfg.model)
  step = evaluate.make_eval_step(model, ("ndcg@10",), "human", mesh)
  variables = {"params": state.params, **state.model_state}
  widths = pipeline.token_widths(split, cfg.data.token_buckets)
  _, by_index = evaluate.evaluate_split(step, variables, split, batch_size=cfg.eval.batch_size,
                                        list_sizes=cfg.data.list_sizes, token_widths=widths,
                                        mesh=mesh, with_scores=True)
  out = np.zeros((len(split), int(split.lengths.max())), np.float32)
  for i, row in by_index.items():
    out[i, :len(row)] = row
  return out


def run(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
  """Runs the study in `workdir`; returns its summary (also in study.json) and writes report.md."""
  start = time.perf_counter()
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  study = config.study
  if study.baseline not in study.variants:
    raise ValueError(f"baseline {study.baseline!r} is not a variant: {sorted(study.variants)}")
  if not jax.config.jax_compilation_cache_dir:
    # Seeds of a variant compile the same programs: a persistent cache compiles them once.
    jax.config.update("jax_compilation_cache_dir", str(workdir / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  data_path, meta = data_source.resolve(config, workdir)
  split = store.open_split(data_path, study.split)
  signals = tuple(study.doc_signals) + tuple(study.semantic_signals)
  missing = [e for e in signals if e not in available_signals(split.layout)]
  if missing:
    raise ValueError(f"{data_path}: no per-item signals {missing}; it has "
                     f"{available_signals(split.layout)} (config.study.doc_signals / "
                     "semantic_signals)")
  data = padded_split(split, signals)
  mesh = mesh_lib.make_mesh()
  scores: dict[str, list[np.ndarray]] = {}
  preparation: dict[str, list[str]] = {}  # variant -> its runs' distinct preparation notes
  for variant in study.variants:
    for seed in study.seeds:
      cfg = variant_config(config, variant, seed, data_path)
      print(f"study: {variant}, seed {seed}", flush=True)
      out = train.train_and_evaluate(cfg, workdir / "runs" / variant / f"seed{seed}",
                                     metadata=meta)
      scores.setdefault(variant, []).append(score_run(cfg, out["state"], split, mesh))
      notes = preparation.setdefault(variant, [])
      notes += [n for n in out["preparation"] if n not in notes]
  summary = summarize(scores, data, study)
  summary["seconds"] = time.perf_counter() - start
  summary["world"] = meta
  summary["preparation"] = preparation
  if jax.process_index() == 0:
    plot_bars(summary, workdir / "ndcg10_by_bucket.png")
    plot_histograms(scores, data, study, workdir / "score_histograms.png")
    (workdir / "study.json").write_text(json.dumps(summary, indent=1))
    (workdir / "report.md").write_text(report(summary, config))
  return summary


def summarize(scores: dict[str, list[np.ndarray]], data: dict, study) -> dict:
  """Metrics per variant and bucket over seeds, paired tests vs the baseline, and the analyses."""
  where, bucket = data["where"], data["bucket"]
  per_seed = {v: [per_list_metrics(s, data) for s in runs] for v, runs in scores.items()}
  table: dict = {}
  for v, runs in per_seed.items():
    for spec in METRICS:
      for b in BUCKETS:
        sel = in_bucket(bucket, b)
        means = [float(np.nanmean(r[spec][sel])) for r in runs if np.any(~np.isnan(r[spec][sel]))]
        if means:
          table.setdefault(v, {}).setdefault(spec, {})[b] = {
              "mean": float(np.mean(means)), "std": float(np.std(means)),
              "lists": int(np.sum(~np.isnan(runs[0][spec][sel])))}
  tests: dict = {}
  for spec in METRICS:
    cells, pvalues = [], []
    base = np.mean([r[spec] for r in per_seed[study.baseline]], axis=0)
    for v in per_seed:
      if v == study.baseline:
        continue
      x = np.mean([r[spec] for r in per_seed[v]], axis=0)
      for b in BUCKETS:
        sel = in_bucket(bucket, b) & ~np.isnan(x) & ~np.isnan(base)
        if sel.sum() > 1 and np.any(x[sel] != base[sel]):
          cells.append((v, b, float(np.mean(x[sel] - base[sel]))))
          pvalues.append(float(scipy_stats.ttest_rel(x[sel], base[sel]).pvalue))
    for (v, b, diff), p, adj in zip(cells, pvalues, holm(pvalues) if pvalues else []):
      tests.setdefault(v, {}).setdefault(spec, {})[b] = {"diff": diff, "p": p, "p_holm": float(adj)}

  relevant = data["label"] >= study.relevant_label
  analyses: dict = {}
  for v, runs in scores.items():
    row = {}
    aucs = [auc_per_list(s, relevant, where) for s in runs]
    for b in BUCKETS:
      sel = in_bucket(bucket, b)
      vals = [float(np.nanmean(a[sel])) for a in aucs if np.any(~np.isnan(a[sel]))]
      if vals:
        row[f"auc/{b}"] = {"mean": float(np.mean(vals)), "std": float(np.std(vals))}
    for e in tuple(study.doc_signals) + tuple(study.semantic_signals):
      rhos = [spearman_per_list(s, data[e], where) for s in runs]
      vals = [float(np.nanmean(r)) for r in rhos if np.any(~np.isnan(r))]
      if vals:  # no list with enough varying items: no correlation to report
        row[f"spearman/{e}"] = {"mean": float(np.mean(vals)), "std": float(np.std(vals))}
    analyses[v] = row
  return {"metrics": table, "tests": tests, "analyses": analyses, "baseline": study.baseline,
          "seeds": list(study.seeds), "variants": study.variants.to_dict(),
          "split": study.split, "relevant_label": study.relevant_label,
          "doc_signals": list(study.doc_signals), "semantic_signals": list(study.semantic_signals)}


def plot_bars(summary: dict, path):
  """NDCG@10 by bucket (groups) and variant (bars), error bars one std over seeds."""
  variants = list(summary["metrics"])
  fig, ax = plt.subplots(figsize=(7, 3.5))
  width = 0.8 / len(variants)
  for i, v in enumerate(variants):
    cells = summary["metrics"][v]["ndcg@10"]
    x = [j + i * width for j, b in enumerate(BUCKETS) if b in cells]
    ax.bar(x, [cells[b]["mean"] for b in BUCKETS if b in cells], width,
           yerr=[cells[b]["std"] for b in BUCKETS if b in cells], label=v, capsize=2)
  ax.set_xticks([j + 0.4 - width / 2 for j in range(len(BUCKETS))], BUCKETS)
  ax.set_ylabel("NDCG@10 (human labels)")
  ax.legend(fontsize=8, ncol=3)
  lows = [c["mean"] - c["std"] for v in variants for c in summary["metrics"][v]["ndcg@10"].values()]
  ax.set_ylim(max(0.0, min(lows) - 0.05), None)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_histograms(scores: dict, data: dict, study, path):
  """Per variant, scores standardised within each query: relevant vs non-relevant (first seed)."""
  where = data["where"]
  relevant = data["label"] >= study.relevant_label
  fig, axes = plt.subplots(1, len(scores), figsize=(3 * len(scores), 2.6), sharey=True)
  for ax, (v, runs) in zip(np.atleast_1d(axes), scores.items()):
    s = runs[0]
    mean = np.sum(s * where, 1, keepdims=True) / np.maximum(where.sum(1, keepdims=True), 1)
    std = np.sqrt(np.sum((s - mean) ** 2 * where, 1, keepdims=True) /
                  np.maximum(where.sum(1, keepdims=True), 1))
    z = (s - mean) / np.maximum(std, 1e-6)
    bins = np.linspace(-3, 3, 31)
    ax.hist(z[where & relevant], bins, alpha=0.6, density=True, label="relevant")
    ax.hist(z[where & ~relevant], bins, alpha=0.6, density=True, label="non-relevant")
    ax.set_title(v, fontsize=9)
    ax.set_xlabel("score (z within query)", fontsize=8)
  np.atleast_1d(axes)[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _cell(m: dict, test: dict | None) -> str:
  mark = ""
  if test is not None and test["p_holm"] < 0.05:
    mark = " ▲" if test["diff"] > 0 else " ▼"
  return f"{m['mean']:.4f} ± {m['std']:.4f}{mark}"


def _one_line(section) -> str:
  """A section that names a thing, with its options: "lambda (lambdaweight=ndcg2, topn=10)"."""
  options = ", ".join(f"{k}={v}" for k, v in section.items() if k != "name")
  return f"{section.name} ({options})" if options else section.name


def report(summary: dict, config) -> str:
  """report.md: setting, metric tables, tests, analyses."""
  base = summary["baseline"]
  lines = ["# rankjax study report", ""]
  if summary.get("world"):
    meta = summary["world"]
    params = ", ".join(f"{k}={v}" for k, v in meta["world"].items())
    lines += ["Data: **the demo world, a simulation** (`rankjax/data/demo_world.py`), not real "
              f"users or annotators. Parameters: {params}"
              + f". Lists: {meta['lists']}; {meta['clicks']} simulated clicks; PBM propensities "
              "fitted on the log: " + ", ".join(f"{p:.2f}" for p in meta["propensities"]) + ".", ""]
  else:
    lines += [f"Data: `{config.data.path or config.data.name}`.", ""]
  lines += [f"Evaluation split `{summary['split']}` against human labels; seeds "
            f"{summary['seeds']}; {config.total_steps} steps, loss `{_one_line(config.loss)}`, "
            f"model `{config.model.name}`. Study time {summary['seconds']:.0f} s.", "",
            "Variants (overrides of `config.supervision`):", ""]
  for v, over in summary["variants"].items():
    lines.append(f"- **{v}**: " + ", ".join(f"{k}={val}" for k, val in over.items()))
  notes = [n for per in summary.get("preparation", {}).values() for n in per]
  for note in dict.fromkeys(notes):  # what the runs prepared (a learned gate's fit), once each
    lines += ["", note]
  lines += ["", "Cells: mean ± std over seeds. ▲/▼: significantly better/worse than "
            f"**{base}** "
            "(paired t-test over queries, each query's value averaged over seeds; Holm-corrected "
            "within each metric over all variant × bucket comparisons; adjusted p < 0.05).", ""]
  for spec in METRICS:
    lines += [f"## {spec.upper()}", "", "| variant | " + " | ".join(BUCKETS) + " |",
              "|---|" + "---|" * len(BUCKETS)]
    for v, per in summary["metrics"].items():
      cells = per.get(spec, {})
      tests = summary["tests"].get(v, {}).get(spec, {})
      lines.append(f"| {v} | " + " | ".join(
          _cell(cells[b], tests.get(b)) if b in cells else "" for b in BUCKETS) + " |")
    first = next(iter(summary["metrics"].values()))[spec]
    lines += ["| lists | " + " | ".join(str(first[b]["lists"]) if b in first else "0"
                                        for b in BUCKETS) + " |", ""]
  lines += ["![NDCG@10 by bucket and variant](ndcg10_by_bucket.png)", "",
            f"## Paired tests against {base} (NDCG@10)", "",
            "| variant | bucket | mean difference | p | p (Holm) |", "|---|---|---|---|---|"]
  for v, per in summary["tests"].items():
    for b, t in per.get("ndcg@10", {}).items():
      lines.append(f"| {v} | {b} | {t['diff']:+.4f} | {t['p']:.3g} | {t['p_holm']:.3g} |")
  named = lambda signals: ", ".join(f"`{e}`" for e in signals) or "none configured"
  lines += ["", "## Analyses", "",
            "(i) Reliance on document-level click signals and (iii) on semantic match: mean over "
            "queries of the within-query Spearman correlation of the model's scores with the "
            f"document-level signals ({named(summary['doc_signals'])}) and the semantic ones "
            f"({named(summary['semantic_signals'])}). (ii) Separation: mean per-query AUC of "
            f"relevant (human label >= {summary['relevant_label']}) vs non-relevant documents.", ""]
  cols = [f"spearman/{e}" for e in summary["doc_signals"] + summary["semantic_signals"]] + [
      f"auc/{b}" for b in BUCKETS]
  lines += ["| variant | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
  for v, row in summary["analyses"].items():
    lines.append(f"| {v} | " + " | ".join(
        f"{row[c]['mean']:.3f} ± {row[c]['std']:.3f}" if c in row else "" for c in cols) + " |")
  lines += ["", "![Scores of relevant and non-relevant documents](score_histograms.png)", ""]
  return "\n".join(lines)
