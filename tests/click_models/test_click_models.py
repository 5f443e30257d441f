"""Click models recover known parameters from simulated logs, within stated tolerances.

Each log: 10 queries x 12 documents, pages show a random 10 of a query's documents in random
order (so every pair is seen at every rank), 30,000 pages, clicks simulated from the model itself.
"""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from rankjax import click_models as cm
from rankjax import registry
from rankjax.data import readers

N, K, Q, D = 30_000, 10, 10, 12
THETA = 1 / np.arange(1, K + 1) ** 0.9


@functools.cache
def pages():
  rng = np.random.default_rng(0)
  qs = rng.integers(0, Q, N)
  doc = np.stack([q * D + rng.permutation(D)[:K] for q in qs]).astype(np.int32)
  pairs = [(str(q), str(d)) for q in range(Q) for d in range(D)]
  return doc, np.ones((N, K), bool), pairs, rng


def simulate(name, params, seed=1):
  doc, mask, pairs, _ = pages()
  params = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
  click = cm.get(name).sample(jax.random.key(seed), params, doc, mask)
  return cm.ClickLog(doc, np.asarray(click), mask, pairs)


def true_alpha(seed=2):
  return np.random.default_rng(seed).uniform(0.1, 0.9, Q * D)


@pytest.mark.parametrize("method", ["em", "gradient"])
def test_pbm_recovers_propensities_and_attractiveness(method):
  alpha = true_alpha()
  log = simulate("pbm", {"theta": THETA, "alpha": alpha})
  r = cm.fit(
    cm.get("pbm"), log, method=method, iterations=100 if method == "em" else 300, smoothing=0.0
  )
  theta = np.asarray(cm.get("pbm").propensity(r.params))
  # PBM is identified up to theta * c, alpha / c: compare theta / theta_1 and alpha * theta_1.
  np.testing.assert_allclose(theta / theta[0], THETA, atol=0.03)
  assert np.abs(np.asarray(r.params["alpha"]) * theta[0] - alpha).mean() < 0.03


def test_ubm_recovers_examination_without_previous_click():
  alpha = true_alpha()
  gamma = np.tril(np.full((K, K), 0.7), -1) + np.diag(np.full(K, 0.0))
  gamma[:, 0] = THETA  # no click above: PBM-like decay
  log = simulate("ubm", {"gamma": gamma, "alpha": alpha})
  r = cm.fit(cm.get("ubm"), log, iterations=100, smoothing=0.0)
  g = np.asarray(r.params["gamma"])
  np.testing.assert_allclose(g[:, 0] / g[0, 0], THETA, atol=0.05)
  assert np.abs(np.asarray(r.params["alpha"]) * g[0, 0] - alpha).mean() < 0.04


def test_cascade_closed_form_recovers_attractiveness():
  alpha = true_alpha() * 0.5  # keep lower ranks examined often enough
  log = simulate("cascade", {"alpha": alpha})
  r = cm.fit(cm.get("cascade"), log, smoothing=0.0)
  assert r.method == "counts"
  assert np.abs(np.asarray(r.params["alpha"]) - alpha).mean() < 0.03


@pytest.mark.slow
def test_sdbn_counts_and_dbn_em_and_gradient_recover_parameters():
  alpha, sigma = true_alpha() * 0.6, true_alpha(3)
  log = simulate("sdbn", {"alpha": alpha, "sigma": sigma, "gamma": 1.0})
  r = cm.fit(cm.get("sdbn"), log, smoothing=0.0)
  assert np.abs(np.asarray(r.params["alpha"]) - alpha).mean() < 0.03
  # SDBN's sigma (last clicks / clicks) overstates satisfaction, since a last click may also be
  # followed by examinations without clicks; its ranking of alpha * sigma still matches the truth.
  rel = np.asarray(cm.get("sdbn").relevance(r.params))
  assert scipy.stats.spearmanr(rel, alpha * sigma).statistic > 0.9

  log = simulate("dbn", {"alpha": alpha, "sigma": sigma, "gamma": 0.85})
  for method, iterations in (("em", 100), ("gradient", 400)):
    r = cm.fit(cm.get("dbn"), log, method=method, iterations=iterations, smoothing=0.0)
    assert abs(float(r.params["gamma"]) - 0.85) < 0.03, method
    assert np.abs(np.asarray(r.params["alpha"]) - alpha).mean() < 0.05, method
    assert np.abs(np.asarray(r.params["sigma"]) - sigma).mean() < 0.06, method


def test_held_out_likelihood_prefers_the_generating_model():
  log = simulate("pbm", {"theta": THETA, "alpha": true_alpha()})
  train, test = log.split(0.2)
  scores = {
    name: cm.evaluate(cm.get(name), cm.fit(cm.get(name), train).params, test)
    for name in ("pbm", "cascade", "sdbn")
  }
  assert (
    scores["pbm"]["log_likelihood"]
    > scores["sdbn"]["log_likelihood"]
    > scores["cascade"]["log_likelihood"]
  )
  for s in scores.values():
    assert s["log_likelihood"] < 0 and s["perplexity"] > 1 and len(s["perplexity_by_rank"]) == K
  # PBM's perplexity is close to that of the true parameters.
  truth = cm.evaluate(
    cm.get("pbm"),
    {"theta": jnp.asarray(THETA, jnp.float32), "alpha": jnp.asarray(true_alpha(), jnp.float32)},
    test,
  )
  assert abs(scores["pbm"]["perplexity"] - truth["perplexity"]) < 0.01


@pytest.mark.slow
def test_masked_ranks_change_nothing():
  log = simulate("pbm", {"theta": THETA, "alpha": true_alpha()}).take(np.arange(2000))
  wide = cm.ClickLog(
    np.pad(log.doc, ((0, 0), (0, 2))),
    np.pad(log.click, ((0, 0), (0, 2))),
    np.pad(log.mask, ((0, 0), (0, 2))),
    log.pairs,
  )
  for name in ("ubm", "cascade", "dbn"):  # the models whose probabilities depend on clicks above
    m = cm.get(name)
    a = cm.fit(m, log, iterations=3)
    b = cm.fit(m, wide, iterations=3)
    np.testing.assert_allclose(
      np.asarray(m.relevance(a.params)), np.asarray(m.relevance(b.params)), atol=1e-5
    )
    np.testing.assert_allclose(a.train["log_likelihood"], b.train["log_likelihood"], rtol=1e-5)


def test_unknown_model_and_method_are_errors():
  with pytest.raises(registry.UnknownName, match="unknown click model 'pscm'; known: .*pbm"):
    cm.get("pscm")
  log = simulate("pbm", {"theta": THETA, "alpha": true_alpha()})
  with pytest.raises(ValueError, match="fitted by"):
    cm.fit(cm.get("cascade"), log, method="em")
  with pytest.raises(registry.UnknownName, match="unknown fit method 'newton'; known: .*gradient"):
    cm.fit(cm.get("pbm"), log, method="newton")


def test_fits_a_real_log(shared_data):
  trec = shared_data("trec_session_2012_2013")
  log = cm.ClickLog.from_sessions(
    readers.read_sessions("trec-session", trec / "sessiontrack2013.xml")
  )
  summary = readers.ReadSummary()
  list(readers.read_sessions("trec-session", trec / "sessiontrack2013.xml", summary))
  assert log.num_sessions == summary.interactions and log.click.sum() <= summary.clicks
  for name in cm.MODELS:
    r = cm.fit(cm.get(name), log, iterations=20)
    rel = np.asarray(cm.get(name).relevance(r.params))
    assert (
      rel.shape == (log.num_pairs,)
      and np.isfinite(rel).all()
      and np.isfinite(r.train["perplexity"])
    )


def simulated_log_file(path, docs_per_query: int, **simulate):
  """20 queries' simulated PBM clicks (20,000 sessions) written to `path` as jsonl; the
  simulation."""
  from rankjax.data import schema
  from rankjax.data.readers.generic import write_jsonl
  from rankjax.sim import clicks as sim_lib

  rng = np.random.default_rng(0)
  lists = [
    schema.RankingList(
      qid=str(q),
      doc_ids=[f"{q}-{d}" for d in range(docs_per_query)],
      labels={"human": rng.integers(0, 5, docs_per_query).astype(np.float32)},
    )
    for q in range(20)
  ]
  sim = sim_lib.simulate(lists, sessions=20_000, eta=1.0, zipf=0.5, seed=0, **simulate)
  with open(path, "w") as f:
    write_jsonl(sim.records(), f)
  return sim


def test_cli_fits_a_log_file_and_prints_propensities(tmp_path, capsys):
  from rankjax.cli.clicks import fit

  sim = simulated_log_file(tmp_path / "log.jsonl", 15)
  out = fit(["--format", "jsonl", str(tmp_path / "log.jsonl"), "--smoothing", "0"])
  assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out
  np.testing.assert_allclose(out["propensities"], sim.truth["theta"], atol=0.05)
  assert out["test"]["sessions"] + out["train"]["sessions"] == 20_000
  assert abs(out["test"]["sessions"] - 4000) < 5 * np.sqrt(0.16 * 20_000)  # each at 0.2
  assert out["test"]["perplexity"] > 1


def test_cli_streams_fit_and_harvest(tmp_path, capsys):
  from rankjax.cli.clicks import fit, harvest

  path = str(tmp_path / "log.jsonl")
  sim = simulated_log_file(path, 12, list_size=6)
  flags = ["--format", "jsonl", path, "--max-rank", "6", "--smoothing", "0"]
  shards = tmp_path / "shards"
  out = fit([*flags, "--batch-sessions", "1024", "--shards", str(shards)])
  assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out
  assert out["pages"] == 20_000 and out["identification"]["identified"]
  assert out["test"]["sessions"] + out["train"]["sessions"] == 20_000
  assert (shards / "pairs.jsonl").exists() and (shards / "train" / "meta.json").exists()
  np.testing.assert_allclose(out["propensities"], sim.truth["theta"], atol=0.05)
  split = fit([*flags, "--batch-sessions", "1024", "--shard-pairs"])
  np.testing.assert_allclose(split["propensities"], out["propensities"], atol=1e-5)
  assert split["test"]["log_likelihood"] == pytest.approx(out["test"]["log_likelihood"], abs=1e-6)
  # In memory, the same sessions are held out: the same fit.
  memory = fit(flags)
  assert memory["test"]["sessions"] == out["test"]["sessions"]
  np.testing.assert_allclose(memory["propensities"], out["propensities"], atol=1e-4)
  assert memory["test"]["log_likelihood"] == pytest.approx(out["test"]["log_likelihood"], abs=1e-4)
  # Harvesting reads every page either way: the same counts, the same propensities.
  flags = flags[:5]
  streamed = harvest([*flags, "--batch-sessions", "1024"])
  assert streamed["propensities"] == harvest(flags)["propensities"]
  split = harvest([*flags, "--batch-sessions", "1024", "--shard-pairs"])
  assert split["propensities"] == streamed["propensities"]
  with pytest.raises(SystemExit) as usage:
    harvest([*flags, "--shard-pairs"])
  assert usage.value.code == 2
  assert "--shard-pairs streams the fit: give --batch-sessions too" in capsys.readouterr().err
  with pytest.raises(SystemExit) as usage:  # argparse's usage error, before the heavy imports
    fit([*flags, "--batch-sessions", "0"])
  assert usage.value.code == 2
  assert "--batch-sessions: 0: want a positive count" in capsys.readouterr().err
  with pytest.raises(SystemExit, match="--method counts: pbm is fitted by em, gradient"):
    fit([*flags, "--method", "counts"])
