"""Agreement between two labelings of the same items (LLM vs human grades, LLM vs CTR).

All functions take equal-length 1-D arrays of paired labels (drop unpaired items before calling).
Grades are integers 0..K-1.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats


def confusion_matrix(a, b, num_classes: int) -> np.ndarray:
  """int64 [K, K]: rows a's grade, columns b's grade.

  >>> confusion_matrix([0, 1, 1], [0, 1, 0], 2).tolist()
  [[1, 0], [1, 1]]
  """
  m = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(m, (np.asarray(a, int), np.asarray(b, int)), 1)
  return m


def weighted_kappa(a, b, num_classes: int, weights: str = "quadratic") -> float:
  """Cohen's kappa with disagreement weights w_ij = |i-j|^p (p=1 linear, 2 quadratic, or 0/1
  for "none"): 1 - sum w O / sum w E, E the outer product of the marginals.

  >>> weighted_kappa([0, 1, 2, 3], [0, 1, 2, 3], 4)
  1.0
  """
  o = confusion_matrix(a, b, num_classes).astype(float)
  i, j = np.indices(o.shape)
  w = {
    "none": (i != j).astype(float),
    "linear": np.abs(i - j).astype(float),
    "quadratic": (i - j) ** 2.0,
  }[weights]
  e = np.outer(o.sum(1), o.sum(0)) / o.sum()
  denom = (w * e).sum()
  return float(1 - (w * o).sum() / denom) if denom else float("nan")


def krippendorff_alpha(a, b, num_classes: int, level: str = "ordinal") -> float:
  """Krippendorff's alpha for two coders who both labelled every item.

  From the coincidence matrix o (each item adds (a, b) and (b, a)), n_c its margins, n = sum:
  alpha = 1 - (n - 1) sum o_ck d2_ck / sum n_c n_k d2_ck, with d2 = (c - k)^2 ("interval") or
  (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2 ("ordinal").

  >>> round(krippendorff_alpha([0, 1, 2, 2], [0, 1, 2, 2], 3), 6)
  1.0
  """
  c = confusion_matrix(a, b, num_classes).astype(float)
  o = c + c.T
  n_c = o.sum(1)
  n = n_c.sum()
  i, j = np.indices(o.shape)
  if level == "interval":
    d2 = (i - j) ** 2.0
  elif level == "ordinal":
    cum = np.concatenate([[0], np.cumsum(n_c)])
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    d2 = (cum[hi + 1] - cum[lo] - (n_c[i] + n_c[j]) / 2) ** 2
  else:
    raise ValueError(f"level {level!r}: 'ordinal' or 'interval'")
  expected = (np.outer(n_c, n_c) * d2).sum()
  return float(1 - (n - 1) * (o * d2).sum() / expected) if expected else float("nan")


def spearman(a, b) -> float:
  """Spearman's rank correlation (NaN when either side is constant)."""
  a, b = np.asarray(a, float), np.asarray(b, float)
  if len(a) < 2 or a.std() == 0 or b.std() == 0:
    return float("nan")
  return float(stats.spearmanr(a, b).statistic)


def bootstrap_ci(
  statistic, a, b, *, confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
  """Confidence interval of `statistic(a, b)` by the bootstrap over pairs (scipy.stats.bootstrap,
  paired, BCa), seeded: the same pairs give the same interval. (nan, nan) when it cannot be
  estimated (fewer than 3 pairs, or the statistic undefined on the resamples: constant labels).

  >>> lo, hi = bootstrap_ci(spearman, [0, 1, 2, 3, 4, 4, 2, 1], [0, 1, 2, 4, 4, 3, 2, 0])
  >>> bool(lo < spearman([0, 1, 2, 3, 4, 4, 2, 1], [0, 1, 2, 4, 4, 3, 2, 0]) <= hi <= 1)
  True
  """
  a, b = np.asarray(a), np.asarray(b)
  if len(a) < 3:
    return float("nan"), float("nan")
  with warnings.catch_warnings():
    # Degenerate resamples (every label equal) make the interval nan, which is what it returns.
    warnings.simplefilter("ignore", stats.DegenerateDataWarning)
    warnings.simplefilter("ignore", RuntimeWarning)
    ci = stats.bootstrap(
      (a, b),
      statistic,
      paired=True,
      vectorized=False,
      n_resamples=n_resamples,
      confidence_level=confidence,
      rng=np.random.default_rng(seed),
    ).confidence_interval
  return float(ci.low), float(ci.high)


def summary(llm, human, num_classes: int, *, n_resamples: int = 1000, seed: int = 0) -> dict:
  """n, exact agreement, quadratic kappa, ordinal alpha and Spearman of paired grades, and 95%
  bootstrap confidence intervals (`bootstrap_ci`, `<name>_ci95`: [low, high]) of the last three."""
  llm, human = np.asarray(llm, int), np.asarray(human, int)
  if not len(llm):
    return {"n": 0}
  stats_ = {
    "kappa_quadratic": lambda a, b: weighted_kappa(a, b, num_classes),
    "alpha_ordinal": lambda a, b: krippendorff_alpha(a, b, num_classes),
    "spearman": spearman,
  }
  out = {"n": int(len(llm)), "exact": float((llm == human).mean())}
  for name, f in stats_.items():
    out[name] = f(llm, human)
  for name, f in stats_.items():
    out[f"{name}_ci95"] = list(bootstrap_ci(f, llm, human, n_resamples=n_resamples, seed=seed))
  return out
