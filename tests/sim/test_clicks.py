"""`rankjax clicks simulate` and rankjax.sim.clicks: layout, Zipf queries, known truth."""

import json
import pathlib

import numpy as np
import pytest

from rankjax import cli, registry
from rankjax import click_models as cm
from rankjax.cli import clicks as clicks_cli
from rankjax.data import aggregate, readers, schema
from rankjax.sim import clicks as sim_lib

FIX = pathlib.Path(__file__).parent.parent / "fixtures" / "logs"


def _lists(num_queries=30, num_docs=20, seed=0):
  rng = np.random.default_rng(seed)
  return [
    schema.RankingList(
      qid=f"q{i}",
      doc_ids=[f"q{i}-d{j}" for j in range(num_docs)],
      labels={"human": rng.integers(0, 5, num_docs).astype(np.float32)},
    )
    for i in range(num_queries)
  ]


def test_tool_writes_the_generic_layout_from_qrels(tmp_path):
  out = tmp_path / "log.jsonl"
  meta = clicks_cli.simulate(
    [
      "--qrels",
      str(FIX / "trec_quirks_qrels.txt"),
      "--sessions",
      "500",
      "--list-size",
      "3",
      "--eta",
      "1.5",
      "--output",
      str(out),
    ]
  )
  summary = readers.ReadSummary()
  sessions = list(readers.read_sessions("jsonl", out, summary))
  assert summary.sessions == 500 and summary.skipped == 0 and summary.clicks == meta["clicks"]
  assert {s.interactions[0].query_id for s in sessions} <= {"7", "8", "9"}
  np.testing.assert_allclose(meta["theta"], np.arange(1, 4) ** -1.5, rtol=1e-6)
  assert json.loads((tmp_path / "log.jsonl.meta.json").read_text())["simulated"] is True
  it = sessions[0].interactions[0]
  assert it.labels is not None and len(it.doc_ids) == len(it.labels) <= 3


def test_tool_reads_svmlight(shared_data, tmp_path):
  path = shared_data("lightgbm_lambdarank_example", "rank.test")
  out = tmp_path / "log.parquet"
  meta = clicks_cli.simulate(
    ["--svmlight", str(path), "--sessions", "300", "--model", "dbn", "--output", str(out)]
  )
  sessions = list(readers.read_sessions("parquet", out))
  assert len(sessions) == 300 and meta["queries"] == 50


def test_queries_follow_zipf():
  sim = sim_lib.simulate(_lists(), sessions=60_000, zipf=1.0, seed=1)
  counts = np.sort(np.bincount(sim.query, minlength=30))[::-1]
  expected = 60_000 * (1 / np.arange(1, 31)) / (1 / np.arange(1, 31)).sum()
  np.testing.assert_allclose(counts[:5], expected[:5], rtol=0.05)


def test_truth_and_doc_quality():
  lists = _lists()
  plain = sim_lib.simulate(lists, sessions=10, seed=0)
  labels = np.concatenate([x.labels["human"] for x in lists])
  np.testing.assert_allclose(plain.truth["alpha"], sim_lib.attractiveness(labels, 0.1, 4.0))
  noisy = sim_lib.simulate(lists, sessions=10, doc_quality=1.0, seed=0)
  assert np.abs(noisy.truth["alpha"] - plain.truth["alpha"]).mean() > 0.05


@pytest.mark.slow
def test_pbm_undoes_strong_position_bias_that_naive_ctr_keeps():
  sim = sim_lib.simulate(_lists(), sessions=40_000, eta=2.0, logger_noise=1.5, zipf=0.5, seed=2)
  fit = cm.fit(cm.get("pbm"), sim.log, iterations=100, smoothing=0.0)
  theta = np.asarray(fit.params["theta"])
  np.testing.assert_allclose(theta / theta[0], sim.truth["theta"], atol=0.03)
  alpha_true = sim.truth["alpha"]
  agg = aggregate.ClickAggregator().add_all(
    readers.generic.group_sessions(
      ((f"row{i}", r) for i, r in enumerate(sim.records())), readers.ReadSummary()
    )
  )
  ctr = np.array([agg.pairs[q][d].ctr if d in agg.pairs[q] else np.nan for q, d in sim.log.pairs])
  seen = np.isfinite(ctr)
  alpha_pbm = np.asarray(fit.params["alpha"]) * theta[0]
  # CTR underestimates attractiveness by the examination probability of where a doc was shown.
  # Errors weighted by impressions (a doc shown only at rank 10 is examined 1% of the time).
  w = np.array([agg.pairs[q][d].impressions if d in agg.pairs[q] else 0 for q, d in sim.log.pairs])[
    seen
  ]
  err_pbm = np.average(np.abs(alpha_pbm[seen] - alpha_true[seen]), weights=w)
  err_ctr = np.average(np.abs(ctr[seen] - alpha_true[seen]), weights=w)
  assert err_pbm < 0.05 and err_pbm < err_ctr / 3, (err_pbm, err_ctr)


@pytest.mark.slow
def test_ips_with_pbm_propensities_beats_naive_clicks_under_strong_position_bias():
  """A linear ranker trained on simulated clicks; the logger ranks by a feature unrelated to
  relevance."""
  import jax
  import jax.numpy as jnp
  import ml_collections
  import optax

  from rankjax import supervision
  from rankjax.ranking import losses, metrics

  rng = np.random.default_rng(0)
  w_true = np.array([1.0, -0.5, 0.8, 0.0], np.float32)  # feature 3 is irrelevant
  lists = []
  for i in range(80):
    x = rng.normal(size=(20, 4)).astype(np.float32)
    y = np.digitize(x @ w_true, [-0.5, 0.5, 1.2, 2.0]).astype(np.float32)
    lists.append(
      schema.RankingList(
        qid=str(i), doc_ids=[f"{i}-{j}" for j in range(20)], features=x, labels={"human": y}
      )
    )
  sim = sim_lib.simulate(
    lists, sessions=8_000, eta=2.0, noise=0.05, logger="feature:3", zipf=0.3, seed=3
  )
  feats = np.concatenate([x.features for x in lists])
  x = jnp.asarray(feats[sim.log.doc])
  clicks, where = jnp.asarray(sim.log.click), jnp.asarray(sim.log.mask)
  positions = jnp.broadcast_to(jnp.arange(1, 11), clicks.shape)
  config = ml_collections.ConfigDict(
    {"supervision": {"propensities": sim.truth["theta"].tolist(), "ips_clip": 0.01}}
  )
  ips = supervision.WEIGHTS["ips_pbm"]({"position": positions}, config)

  def train(weights):
    loss = lambda w: losses.get_loss("softmax")(x @ w, clicks, where=where, weights=weights)  # noqa: E731
    opt = optax.adam(0.05)

    @jax.jit
    def run(w):
      def step(carry, _):
        w, s = carry
        u, s = opt.update(jax.grad(loss)(w), s)
        return (optax.apply_updates(w, u), s), None

      return jax.lax.scan(step, (w, opt.init(w)), None, length=200)[0][0]

    return run(jnp.zeros(4))

  all_x = jnp.asarray(np.stack([x.features for x in lists]))
  all_y = jnp.asarray(np.stack([x.labels["human"] for x in lists]))
  ndcg = {
    name: float(metrics.ndcg_metric(all_x @ train(w), all_y, topn=10))
    for name, w in (("naive", None), ("ips", ips))
  }
  assert ndcg["ips"] > ndcg["naive"] + 0.03, ndcg


@pytest.fixture(name="reverse_logger")
def fixture_reverse_logger():
  """A toy logging ranker registered for one test: the worst-labelled documents first."""
  registered = dict(sim_lib.LOGGERS)

  def worst_first(rng, lst, n, *, noise, fixed, argument):
    del rng, noise, fixed, argument
    return np.broadcast_to(-lst.labels["human"], (n, len(lst)))

  registry.register(sim_lib.LOGGERS, "toy-worst-first")(sim_lib.LoggingRanker(worst_first))
  yield "toy-worst-first"
  sim_lib.LOGGERS.clear()
  sim_lib.LOGGERS.update(registered)


def test_a_registered_logger_orders_the_pages_rankjax_clicks_simulates(reverse_logger, tmp_path):
  out = tmp_path / "log.jsonl"
  cli.main(
    [
      "clicks",
      "simulate",
      "--qrels",
      str(FIX / "trec_quirks_qrels.txt"),
      "--sessions",
      "50",
      "--logger",
      reverse_logger,
      "--output",
      str(out),
    ]
  )
  assert json.loads((tmp_path / "log.jsonl.meta.json").read_text())["logger"] == reverse_logger
  for session in readers.read_sessions("jsonl", out):
    labels = session.interactions[0].labels
    assert labels == sorted(labels)  # shown worst first


def test_logger_names_and_arguments_are_checked():
  lists = _lists(num_queries=2, num_docs=3)
  with pytest.raises(registry.UnknownName, match="unknown logger 'best'; known: .*random"):
    sim_lib.simulate(lists, sessions=1, logger="best")
  with pytest.raises(ValueError, match="'feature' needs its argument: feature:J"):
    sim_lib.simulate(lists, sessions=1, logger="feature")
  with pytest.raises(ValueError, match="'random' takes no argument"):
    sim_lib.simulate(lists, sessions=1, logger="random:3")
  with pytest.raises(ValueError, match="list 'q0' has no feature 0"):
    sim_lib.simulate(lists, sessions=1, logger="feature:0")
