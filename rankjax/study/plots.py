"""The study's plots: NDCG@10 by bucket and variant, and score histograms."""

from __future__ import annotations

import matplotlib
import numpy as np

from rankjax.study import stats

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top


def plot_bars(summary: dict, path):
  """Saves `bars_figure(summary)` to path."""
  fig = bars_figure(summary)
  fig.savefig(path, dpi=120)
  plt.close(fig)


def bars_figure(summary: dict):
  """NDCG@10 by bucket (groups) and variant (bars), error bars one std over seeds.

  The y axis starts at 0, so bar heights compare honestly; references are hatched and last.
  """
  variants = summary["order"]
  fig, ax = plt.subplots(figsize=(10, 4))
  width = 0.8 / len(variants)
  colors = plt.get_cmap("tab10" if len(variants) <= 10 else "tab20").colors
  for i, v in enumerate(variants):
    cells = summary["metrics"][v]["ndcg@10"]
    reference = v in summary["references"]
    ax.bar(
      [j + i * width for j, b in enumerate(stats.BUCKETS) if b in cells],
      [cells[b]["mean"] for b in stats.BUCKETS if b in cells],
      width,
      yerr=[cells[b]["std"] for b in stats.BUCKETS if b in cells],
      label=f"{v} (reference)" if reference else v,
      color=colors[i % len(colors)],
      hatch="//" if reference else None,
      edgecolor="black" if reference else None,
      capsize=2,
    )
  ax.set_xticks([j + 0.4 - width / 2 for j in range(len(stats.BUCKETS))], stats.BUCKETS)
  ax.set_xlabel("query-frequency bucket")
  ax.set_ylabel("NDCG@10 (human labels)")
  ax.set_title(f"NDCG@10 by bucket, mean ± std over seeds {summary['seeds']}", fontsize=10)
  highs = [
    c["mean"] + c["std"] for v in variants for c in summary["metrics"][v]["ndcg@10"].values()
  ]
  ax.set_ylim(0.0, min(1.0, max(highs) * 1.15 + 0.05))
  ax.grid(axis="y", alpha=0.3)
  ax.set_axisbelow(True)
  ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: bars stay visible
  fig.tight_layout()
  return fig


def plot_histograms(scores: dict, data: dict, study, path):
  """Per variant (a grid, three per row), scores standardised within each query: relevant vs
  non-relevant documents (first seed)."""
  where = data["where"]
  relevant = data["label"] >= study.relevant_label
  order = [v for v in stats.display_order(study.variants.to_dict())[0] if v in scores]
  columns = min(3, len(order))
  rows = -(-len(order) // columns)
  fig, axes = plt.subplots(
    rows, columns, figsize=(4 * columns, 3 * rows), sharex=True, sharey=True, squeeze=False
  )
  bins = np.linspace(-3, 3, 31)
  for ax, v in zip(axes.flat, order):
    s = scores[v][0]
    count = np.maximum(where.sum(1, keepdims=True), 1)
    mean = np.sum(s * where, 1, keepdims=True) / count
    std = np.sqrt(np.sum((s - mean) ** 2 * where, 1, keepdims=True) / count)
    z = (s - mean) / np.maximum(std, 1e-6)
    ax.hist(z[where & relevant], bins, alpha=0.6, density=True, label="relevant")
    ax.hist(z[where & ~relevant], bins, alpha=0.6, density=True, label="non-relevant")
    ax.set_title(v, fontsize=10)
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)
  for ax in axes.flat[len(order) :]:
    ax.set_visible(False)
  for ax in axes[-1]:
    ax.set_xlabel("score (z within query)")
  for ax in axes[:, 0]:
    ax.set_ylabel("density")
  axes.flat[0].legend(fontsize=8)
  fig.suptitle(
    f"Scores of relevant (human label >= {study.relevant_label}) and non-relevant documents",
    fontsize=11,
  )
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
