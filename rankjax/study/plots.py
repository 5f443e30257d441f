"""The study's plots: NDCG@10 by bucket and variant, and score histograms."""

from __future__ import annotations

import matplotlib
import numpy as np

from rankjax.study import stats

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top


def plot_bars(summary: dict, path):
  """NDCG@10 by bucket (groups) and variant (bars), error bars one std over seeds."""
  variants = list(summary["metrics"])
  fig, ax = plt.subplots(figsize=(7, 3.5))
  width = 0.8 / len(variants)
  for i, v in enumerate(variants):
    cells = summary["metrics"][v]["ndcg@10"]
    x = [j + i * width for j, b in enumerate(stats.BUCKETS) if b in cells]
    ax.bar(
      x,
      [cells[b]["mean"] for b in stats.BUCKETS if b in cells],
      width,
      yerr=[cells[b]["std"] for b in stats.BUCKETS if b in cells],
      label=v,
      capsize=2,
    )
  ax.set_xticks([j + 0.4 - width / 2 for j in range(len(stats.BUCKETS))], stats.BUCKETS)
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
    std = np.sqrt(
      np.sum((s - mean) ** 2 * where, 1, keepdims=True) / np.maximum(where.sum(1, keepdims=True), 1)
    )
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
