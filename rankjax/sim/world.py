r"""The demo world: a simulation (not real users or real annotators) for the embedded study.

Documents have two hidden parts; a query-document pair's true relevance combines both:

  quality    q_d  ~ N(0, 1) per document (authority, quality: the same in every query it appears in)
  semantic   s_qd ~ N(0, 1) per (query, document) (how well the text matches the query)
  relevance  r_qd = (w_s s_qd + w_q q_d) / sqrt(w_s^2 + w_q^2)          (~ N(0, 1))
  human      grade(r_qd)                   (the evaluation labels: truth)
  LLM        grade((s_qd + e) / sqrt(1 + llm_noise^2)),  e ~ N(0, llm_noise)   (semantic only)
  clicks     `rankjax.sim.clicks` on the human grades: Zipf query frequencies, a noisy
             logging ranker, PBM examination k^-eta, so clicks see both parts, with position bias,
             and a query seen in few sessions has few clicks.

grade(x) = number of GRADE_CUTS below x: 0-4 with shares 50 / 25 / 15 / 7 / 3 %.

Every query draws `docs_per_query` documents from a pool of `num_docs`, so documents recur across
queries. The log is aggregated as a real one (`rankjax.data.aggregate`: CTR per pair, global CTR
per document, query frequency = sessions, quantile buckets over queries); queries that no session
issued are not in the data. The ranker's features are what a search engine observes:

  0 term_overlap     s_qd + N(0, feature_noise)       semantic proxy
  1 embedding_sim    s_qd + N(0, feature_noise)       a second, independent semantic proxy
  2 doc_ctr          the document's global CTR, smoothed: (clicks + m mean CTR) / (impressions + m)
  3 doc_impressions  the document's impressions in the log
  4 query_freq       the query's session count

So the document part is observable only through click statistics, reliably for documents shown
often. Extras carry the hidden `semantic` and `quality` for the analyses, beside the aggregator's
click statistics (`global_ctr`, ...). Splits are by query: train (click, LLM and human labels),
validation and test (evaluated against human labels).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

from rankjax.click_models import PBM, fit
from rankjax.data import aggregate, schema, store
from rankjax.data.readers.common import Interaction, Session
from rankjax.sim.clicks import simulate

GRADE_CUTS = (0.0, 0.674, 1.282, 1.881)  # standard normal quantiles 0.50, 0.75, 0.90, 0.97
FEATURES = ("term_overlap", "embedding_sim", "doc_ctr", "doc_impressions", "query_freq")


@dataclasses.dataclass(frozen=True)
class WorldConfig:
  """The world's parameters (all of them; see the module docstring)."""

  num_queries: int = 1000
  docs_per_query: int = 10
  num_docs: int = 4000
  sessions: int = 30000
  zipf: float = 1.1
  eta: float = 1.0
  click_noise: float = 0.1
  logger_noise: float = 1.0
  semantic_weight: float = 1.0
  quality_weight: float = 1.0
  llm_noise: float = 0.5
  feature_noise: float = 0.5
  ctr_prior: float = 5.0
  validation_fraction: float = 0.1
  test_fraction: float = 0.3
  seed: int = 0


def grade(x: np.ndarray) -> np.ndarray:
  """0-4 grades: how many of `GRADE_CUTS` lie below x.

  >>> grade(np.array([-1.0, 0.5, 1.0, 1.5, 3.0])).tolist()
  [0.0, 1.0, 2.0, 3.0, 4.0]
  """
  return np.searchsorted(np.asarray(GRADE_CUTS), x).astype(np.float32)


def _hidden(cfg: WorldConfig, rng: np.random.Generator):
  """Per query: doc indices [Q, n] and semantic [Q, n]; per doc: quality [D]."""
  if cfg.docs_per_query > cfg.num_docs:
    raise ValueError(f"docs_per_query {cfg.docs_per_query} > num_docs {cfg.num_docs}")
  quality = rng.normal(size=cfg.num_docs)
  docs = np.stack(
    [rng.choice(cfg.num_docs, cfg.docs_per_query, replace=False) for _ in range(cfg.num_queries)]
  )
  semantic = rng.normal(size=docs.shape)
  return docs, semantic, quality


def _sessions(sim) -> list[Session]:
  log = sim.log
  out = []
  for n in range(log.num_sessions):
    m = log.mask[n]
    docs = [log.pairs[i][1] for i in log.doc[n][m]]
    clicks = log.click[n][m].astype(int).tolist()
    out.append(
      Session(
        str(n),
        [
          Interaction(
            sim.qids[sim.query[n]],
            docs,
            list(range(1, len(docs) + 1)),
            clicks,
            click_ranks=[r + 1 for r, c in enumerate(clicks) if c],
          )
        ],
      )
    )
  return out


def make_world(cfg: WorldConfig) -> tuple[dict[str, list[schema.RankingList]], dict]:
  """The world's splits ({"train", "validation", "test"} -> lists) and its metadata.

  Metadata: the config, PBM propensities fitted on the simulated log (for `ips_pbm`), the true
  examination k^-eta, the bucket summary and list counts.
  """
  rng = np.random.default_rng(cfg.seed)
  docs, semantic, quality = _hidden(cfg, rng)
  ws, wq = cfg.semantic_weight, cfg.quality_weight
  relevance = (ws * semantic + wq * quality[docs]) / np.hypot(ws, wq)
  human = grade(relevance)
  seen = semantic + rng.normal(0, cfg.llm_noise, semantic.shape)  # the annotator's view
  llm = grade(seen / np.hypot(1, cfg.llm_noise))
  qids = [f"q{i}" for i in range(cfg.num_queries)]
  doc_names = [f"d{d}" for d in range(cfg.num_docs)]
  lists = [
    schema.RankingList(
      qid=qids[i], doc_ids=[doc_names[d] for d in docs[i]], labels={"human": human[i]}
    )
    for i in range(cfg.num_queries)
  ]
  sim = simulate(
    lists,
    sessions=cfg.sessions,
    model="pbm",
    list_size=cfg.docs_per_query,
    zipf=cfg.zipf,
    eta=cfg.eta,
    noise=cfg.click_noise,
    logger="noisy-label",
    logger_noise=cfg.logger_noise,
    max_label=len(GRADE_CUTS),
    seed=cfg.seed,
  )
  pbm = fit(PBM, sim.log, iterations=50)
  theta = np.asarray(pbm.params["theta"], np.float64)

  agg = aggregate.ClickAggregator().add_all(_sessions(sim))
  mean_ctr = sum(agg.doc_clicks.values()) / max(sum(agg.doc_impressions.values()), 1)
  where = {
    (qids[i], doc_names[d]): (i, j) for i in range(cfg.num_queries) for j, d in enumerate(docs[i])
  }
  out = []
  for lst in aggregate.to_ranking_lists(agg, freq_by="sessions", bucket_method="quantile"):
    idx = [where[(lst.qid, d)] for d in lst.doc_ids]
    qi, dj = np.array([i for i, _ in idx]), np.array([j for _, j in idx])
    s, q = semantic[qi, dj], quality[docs[qi, dj]]
    impressions = np.array([agg.doc_impressions[d] for d in lst.doc_ids], np.float32)
    clicks = np.array([agg.doc_clicks[d] for d in lst.doc_ids], np.float32)
    doc_ctr = (clicks + cfg.ctr_prior * mean_ctr) / (impressions + cfg.ctr_prior)
    noise = rng.normal(0, cfg.feature_noise, (2, len(lst)))
    lst.features = np.stack(
      [s + noise[0], s + noise[1], doc_ctr, impressions, np.full(len(lst), lst.query_freq)], axis=1
    ).astype(np.float32)
    lst.labels = {"click": lst.labels["click"], "llm": llm[qi, dj], "human": human[qi, dj]}
    lst.extras = {**lst.extras, "semantic": s.astype(np.float32), "quality": q.astype(np.float32)}
    out.append(lst)
  order = rng.permutation(len(out))
  n_test = int(round(cfg.test_fraction * len(out)))
  n_val = int(round(cfg.validation_fraction * len(out)))
  splits = {
    "train": [out[i] for i in order[n_test + n_val :]],
    "validation": [out[i] for i in order[n_test : n_test + n_val]],
    "test": [out[i] for i in order[:n_test]],
  }
  freq = {lst.qid: lst.query_freq for lst in out}
  buckets = {lst.qid: lst.bucket for lst in out}
  meta = {
    "world": dataclasses.asdict(cfg),
    "propensities": (theta / theta[0]).tolist(),
    "true_examination": (np.arange(1, cfg.docs_per_query + 1.0) ** -cfg.eta).tolist(),
    "buckets": aggregate.bucket_summary(agg, buckets, freq),
    "lists": {k: len(v) for k, v in splits.items()},
    "clicks": int(sim.log.click.sum()),
  }
  return splits, meta


def build(directory, cfg: WorldConfig) -> tuple[pathlib.Path, dict]:
  """The world as a prepared dataset under `directory` (built once), and its metadata."""
  directory = pathlib.Path(directory)
  name = "demo_world"
  meta_path = directory / f"{name}.json"
  path = directory / name / store.VERSION
  if meta_path.exists() and (path / "dataset_info.json").exists():
    meta = json.loads(meta_path.read_text())
    if meta["world"] == dataclasses.asdict(cfg):
      return store.ensure_dataset(directory, name, dict), meta
    raise ValueError(
      f"{meta_path}: the world there was built with other parameters "
      f"({meta['world']}); use another directory"
    )
  splits, meta = make_world(cfg)
  path = store.write_dataset(
    directory, name=name, splits=splits, description="rankjax demo world (a simulation)"
  )
  meta_path.write_text(json.dumps(meta, indent=1))
  return path, meta
