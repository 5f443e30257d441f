"""Extending the click models: a model defined here, entered with one `registry.register` call, is
simulated by name through `rankjax.sim.clicks` and fitted through `rankjax.click_models.fit`, and
by `rankjax clicks simulate --model toy_dctr` and `rankjax clicks fit --model toy_dctr`, with no
other edit.

The toy is the document-based CTR model (DCTR, Chuklin et al. 2015, section 3.2): no position
bias, P(C_k = 1) = alpha_{q,d}, whose MLE is the pair's click-through rate.
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rankjax import cli, registry
from rankjax import click_models as cm
from rankjax.click_models.base import segment_sums, smoothed_ratio
from rankjax.data import schema
from rankjax.sim import clicks as sim_lib

QRELS = pathlib.Path(__file__).parent.parent / "fixtures" / "logs" / "trec_quirks_qrels.txt"


def _init(num_pairs, num_ranks):
  del num_ranks
  return {"alpha": jnp.full((num_pairs,), 0.5)}


def _click_probs(params, doc, click, mask):
  del click, mask
  return params["alpha"][doc]


def _sample(key, params, doc, mask):
  return (jax.random.bernoulli(key, params["alpha"][jnp.asarray(doc)]) & mask).astype(jnp.float32)


def _count_sums(doc, click, mask, num_pairs, num_ranks):
  del num_ranks
  return {"alpha": segment_sums(click, doc, mask, num_pairs)}


def _m_step(params, sums, smoothing):
  del params
  return {"alpha": smoothed_ratio(sums["alpha"], smoothing)}


def _simulation_params(alpha, num_ranks, eta, gamma):
  del num_ranks, eta, gamma
  return {"alpha": alpha}


DCTR = cm.ClickModel(
  "toy_dctr",
  _init,
  _click_probs,
  _sample,
  relevance=lambda p: p["alpha"],
  simulation_params=_simulation_params,
  count_sums=_count_sums,
  m_step=_m_step,
)


@pytest.fixture
def dctr():
  """DCTR registered for one test (the registry is process-wide: other tests must not see it)."""
  registry.register(cm.MODELS, DCTR.name)(DCTR)
  yield DCTR.name
  del cm.MODELS[DCTR.name]


def test_toy_model_is_simulated_and_fitted_by_name(dctr):
  rng = np.random.default_rng(0)
  lists = [
    schema.RankingList(
      qid=f"q{i}",
      doc_ids=[f"q{i}-d{j}" for j in range(5)],
      labels={"human": rng.integers(0, 5, 5).astype(np.float32)},
    )
    for i in range(4)
  ]
  sim = sim_lib.simulate(lists, sessions=40_000, model=dctr, list_size=5, zipf=0.0, seed=0)
  assert sim.config["model"] == dctr and set(sim.truth) == {"alpha"}
  model = cm.get(dctr)
  assert model.methods[0] == "counts" and "em" not in model.methods
  counts = cm.fit(model, sim.log, smoothing=0.0)
  # Each pair is shown ~10,000 times: the CTR's standard error is <= 0.005.
  np.testing.assert_allclose(counts.params["alpha"], sim.truth["alpha"], atol=0.025)
  gradient = cm.fit(model, sim.log, method="gradient", iterations=300, learning_rate=0.1)
  np.testing.assert_allclose(gradient.params["alpha"], counts.params["alpha"], atol=0.02)
  assert counts.train["log_likelihood"] >= gradient.train["log_likelihood"] - 1e-4


def test_unregistered_toy_is_an_unknown_name():
  with pytest.raises(registry.UnknownName, match="unknown click model 'toy_dctr'; known: .*pbm"):
    sim_lib.simulate([], sessions=1, model=DCTR.name)


def test_toy_model_is_simulated_and_fitted_by_the_rankjax_program(dctr, tmp_path, capsys):
  log = tmp_path / "log.jsonl"
  cli.main(
    [
      "clicks",
      "simulate",
      "--qrels",
      str(QRELS),
      "--sessions",
      "4000",
      "--list-size",
      "3",
      "--model",
      dctr,
      "--output",
      str(log),
    ]
  )
  meta = json.loads((tmp_path / "log.jsonl.meta.json").read_text())
  assert meta["model"] == dctr and json.loads(capsys.readouterr().out)["model"] == dctr
  cli.main(
    [
      "clicks",
      "fit",
      "--format",
      "jsonl",
      str(log),
      "--model",
      dctr,
      "--max-rank",
      "3",
      "--smoothing",
      "0",
    ]
  )
  fit = json.loads(capsys.readouterr().out)
  assert (fit["model"], fit["method"], fit["pages"]) == (dctr, "counts", 4000)
  assert "propensities" not in fit  # DCTR has no position bias
  # The fitted CTRs explain the held-out pages as well as they explain the training pages.
  assert fit["test"]["log_likelihood"] == pytest.approx(fit["train"]["log_likelihood"], abs=0.05)
