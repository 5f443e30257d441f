"""A study's statistics: metrics per list and bucket over seeds, paired tests against the baseline.

Paired t-tests (scipy) on per-query values (each query's mean over seeds), Holm-corrected within
each metric over all (variant, bucket) comparisons.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from scipy import stats as scipy_stats

from rankjax.ranking import metrics as metrics_lib
from rankjax.study import signals as signals_lib

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


def per_list_metrics(scores: np.ndarray, data: dict) -> dict[str, np.ndarray]:
  """metric spec -> f32[N] per-list values (NaN for lists without a relevant document)."""
  labels, where = jnp.asarray(data["label"]), jnp.asarray(data["where"])
  counted = np.asarray(metrics_lib.has_relevant(labels, where))
  out = {}
  for spec in METRICS:
    name, topn = metrics_lib.parse_spec(spec)
    values = metrics_lib.get_metric(name)(
      jnp.asarray(scores), labels, where=where, topn=topn, reduce_fn=None
    )
    out[spec] = np.where(counted, np.asarray(values), np.nan)
  return out


def in_bucket(bucket: np.ndarray, name: str) -> np.ndarray:
  return np.ones(bucket.shape, bool) if name == "all" else bucket == BUCKETS.index(name)


def display_order(variants: dict) -> tuple[list[str], list[str]]:
  """(variants in the order a report lists them, the references among them).

  A reference trains on the labels the study evaluates against (`source="human"`): it is the
  ceiling the others are read against, not a contender, so reports list it last and mark it.

  >>> display_order({"human": {"source": "human"}, "click": {"source": "click"}, "llm": {}})
  (['click', 'llm', 'human'], ['human'])
  """
  references = [v for v, over in variants.items() if over.get("source") == "human"]
  return [v for v in variants if v not in references] + references, references


def summarize(
  scores: dict[str, list[np.ndarray]], data: dict, study, baselines: dict | None = None
) -> dict:
  """Metrics per variant and bucket over seeds, paired tests vs the baseline, and the analyses.

  `baselines` (name -> description) are rows scored outside rankjax's trainer
  (`rankjax.study.baselines`); they are summarised and tested as the variants are.
  """
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
            "mean": float(np.mean(means)),
            "std": float(np.std(means)),
            "lists": int(np.sum(~np.isnan(runs[0][spec][sel]))),
          }
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

  variants = {**study.variants.to_dict(), **(baselines or {})}
  order, references = display_order(variants)
  relevant = data["label"] >= study.relevant_label
  analyses: dict = {}
  for v, runs in scores.items():
    row = {}
    aucs = [signals_lib.auc_per_list(s, relevant, where) for s in runs]
    for b in BUCKETS:
      sel = in_bucket(bucket, b)
      vals = [float(np.nanmean(a[sel])) for a in aucs if np.any(~np.isnan(a[sel]))]
      if vals:
        row[f"auc/{b}"] = {"mean": float(np.mean(vals)), "std": float(np.std(vals))}
    for e in tuple(study.doc_signals) + tuple(study.semantic_signals):
      rhos = [signals_lib.spearman_per_list(s, data[e], where) for s in runs]
      vals = [float(np.nanmean(r)) for r in rhos if np.any(~np.isnan(r))]
      if vals:  # no list with enough varying items: no correlation to report
        row[f"spearman/{e}"] = {"mean": float(np.mean(vals)), "std": float(np.std(vals))}
    analyses[v] = row
  return {
    "metrics": table,
    "tests": tests,
    "analyses": analyses,
    "baseline": study.baseline,
    "seeds": list(study.seeds),
    "variants": variants,
    "baselines": list(baselines or {}),
    "left_out": [],  # the runner's notes on baselines it could not run
    "order": order,
    "references": references,
    "split": study.split,
    "relevant_label": study.relevant_label,
    "doc_signals": list(study.doc_signals),
    "semantic_signals": list(study.semantic_signals),
  }
