r"""Position propensities from the log alone by intervention harvesting (Agarwal et al., WSDM 2019).

When rankers that changed over the log showed the same (query, document) pair at different ranks,
those impressions are a harvested intervention. Under PBM the pair's CTR at rank k is
theta_k * r_d, so over the set S_kk' of pairs shown at both k and k'

    c_k^{kk'} = sum_{d in S_kk'} clicks_k(d) / impressions_k(d)

(each click weighed by 1 / the pair's impressions at that rank: the paper's interventional
weighting with one weight per pair and rank), and c_k'^{kk'} / c_k^{kk'} estimates
theta_k' / theta_k. All such ratios are combined by least squares on log theta with log theta_1 = 0,
each weighted by the inverse Poisson variance of its log ratio, 1 / (1 / m_k + 1 / m_k') with m the
clicks behind each side, so ranks never shown next to rank 1 are reached through others.

The result, relative to rank 1, goes to `config.supervision.propensities` of the `ips_pbm` weights
hook (whose `ips_clip` bounds the weights); `clip` here bounds the estimates themselves:

  rankjax clicks harvest --format jsonl /tmp/sim.jsonl
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rankjax.click_models import identification
from rankjax.click_models.log import ClickLog


@dataclasses.dataclass
class Harvest:
  """Propensities by rank relative to rank 1, and the evidence behind them.

  Attributes:
    theta: float64 [K], theta_1 = 1.
    pairs: int64 [K, K], how many (query, document) pairs were shown at both ranks.
    used: bool [K, K], rank pairs whose ratio entered the fit (enough pairs, clicks on both sides).
  """

  theta: np.ndarray
  pairs: np.ndarray
  used: np.ndarray


def counts_from_log(log: ClickLog) -> tuple[np.ndarray, np.ndarray]:
  """(impressions, clicks), float64 [P, K]: per (query, doc) pair and rank, over a click log.

  >>> log = ClickLog([[0, 1], [1, 0]], [[1, 0], [1, 1]], [[True, True], [True, True]],
  ...                [("q", "a"), ("q", "b")])
  >>> imps, clicks = counts_from_log(log)
  >>> imps.tolist(), clicks.tolist()
  ([[1.0, 1.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, 0.0]])
  """
  p, k = log.num_pairs, log.num_ranks
  ranks = np.broadcast_to(np.arange(k), log.doc.shape)[log.mask]
  impressions = np.zeros((p, k))
  clicks = np.zeros((p, k))
  np.add.at(impressions, (log.doc[log.mask], ranks), 1)
  np.add.at(clicks, (log.doc[log.mask], ranks), log.click[log.mask])
  return impressions, clicks


def counts_from_aggregator(agg, max_rank: int = 10) -> tuple[np.ndarray, np.ndarray]:
  """(impressions, clicks), float64 [P, max_rank], from a `rankjax.data.aggregate.ClickAggregator`.

  Unknown (0) and deeper ranks are left out.
  """
  stats = [s for docs in agg.pairs.values() for s in docs.values()]
  impressions = np.zeros((len(stats), max_rank))
  clicks = np.zeros((len(stats), max_rank))
  for i, s in enumerate(stats):
    for pos, n in s.impressions_by_pos.items():
      if 1 <= pos <= max_rank:
        impressions[i, pos - 1] = n
        clicks[i, pos - 1] = s.clicks_by_pos.get(pos, 0)
  return impressions, clicks


def estimate(
  impressions: np.ndarray, clicks: np.ndarray, *, min_pairs: int = 1, clip: float = 0.0
) -> Harvest:
  """Harvested-intervention propensities (module docstring) from per-pair, per-rank counts.

  Args:
    impressions: [P, K] times each (query, document) pair was shown at each rank.
    clicks: [P, K] its clicks there.
    min_pairs: a rank pair's ratio is used only if at least this many pairs were shown at both.
    clip: the estimates are clipped into [clip, 1] (0: not clipped; a noisy estimate may exceed 1).

  Raises:
    ValueError: when some rank is not connected to rank 1 by usable rank pairs.

  >>> theta = np.array([1.0, 0.5, 0.25])
  >>> rel = np.array([0.8, 0.4, 0.6])
  >>> imps = np.full((3, 3), 1000.0)  # every pair shown 1000 times at every rank
  >>> estimate(imps, imps * rel[:, None] * theta).theta.round(6).tolist()
  [1.0, 0.5, 0.25]
  """
  impressions = np.asarray(impressions, np.float64)
  clicks = np.asarray(clicks, np.float64)
  if impressions.shape != clicks.shape or impressions.ndim != 2:
    raise ValueError(
      f"impressions {impressions.shape} and clicks {clicks.shape}: want equal [P, K]"
    )
  shown = (impressions > 0).astype(np.float64)
  ctr = np.divide(clicks, impressions, out=np.zeros_like(clicks), where=impressions > 0)
  pairs = (shown.T @ shown).astype(np.int64)  # [k, k']: pairs shown at both
  c = ctr.T @ shown  # [k, k']: sum of CTR at k over pairs also shown at k'
  m = clicks.T @ shown  # [k, k']: clicks at k behind c
  k_count = impressions.shape[1]
  i, j = np.triu_indices(k_count, 1)
  ok = (pairs[i, j] >= min_pairs) & (m[i, j] > 0) & (m[j, i] > 0)
  used = np.zeros((k_count, k_count), bool)
  used[i[ok], j[ok]] = used[j[ok], i[ok]] = True
  unreached = identification.unreached_ranks(used)
  if unreached:
    raise ValueError(
      f"ranks {unreached} share no clicked (query, document) pair with rank 1, "
      f"directly or through other ranks; log more ranking variety or lower the rank "
      f"count"
    )
  i, j = i[ok], j[ok]
  ratio = np.log(c[j, i]) - np.log(c[i, j])  # log theta_j - log theta_i
  w = np.sqrt(1.0 / (1.0 / m[i, j] + 1.0 / m[j, i]))
  a = np.zeros((len(i), k_count))
  a[np.arange(len(i)), j] = 1.0
  a[np.arange(len(i)), i] = -1.0
  x = np.linalg.lstsq(a[:, 1:] * w[:, None], ratio * w, rcond=None)[0]
  theta = np.exp(np.concatenate([[0.0], x]))
  if clip > 0:
    theta = np.clip(theta, clip, 1.0)
  return Harvest(theta, pairs, used)
