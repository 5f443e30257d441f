"""Invariants every registered click model keeps (parameterized over `click_models.MODELS`).

`sample` must draw clicks from the distribution whose conditionals `click_probs` states. For any
function f of the clicks above rank k, E[(C_k - P(C_k = 1 | C_<k)) f(C_<k)] = 0, so over sampled
pages the mean residual C_k - click_probs_k is 0 at every rank and within every group of pages
with the same last click above k (f an indicator). Given C_<k the residual has mean 0 and
variance p (1 - p) <= 1/4, independently across pages, so a group of n pages has a mean residual
with standard deviation <= 1 / (2 sqrt(n)); the tolerance is 5 of those, 2.5 / sqrt(n) (a false
alarm per group about 1 in 10^6, and the seeds are fixed). A model whose sampler ignored a click
above (say cascade clicking on after its first click) misses by far more in the groups with one.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rankjax import click_models as cm
from rankjax.click_models.base import previous_click_rank
from rankjax.data import schema
from rankjax.sim import clicks as sim_lib

PAGES, RANKS, PAIRS = 50_000, 6, 40


def _random_params(model: cm.ClickModel, rng) -> cm.Params:
  """Every probability parameter uniform in [0.1, 0.9], except those the model keeps fixed."""
  return {
    k: v if k in model.fixed else jnp.asarray(rng.uniform(0.1, 0.9, np.shape(v)), jnp.float32)
    for k, v in model.init(PAIRS, RANKS).items()
  }


def _pages(rng):
  """Pages of 1..RANKS results (masked below), random pairs."""
  doc = rng.integers(0, PAIRS, (PAGES, RANKS)).astype(np.int32)
  mask = np.arange(RANKS) < rng.integers(1, RANKS + 1, PAGES)[:, None]
  return doc, mask


@pytest.mark.parametrize("name", sorted(cm.MODELS))
def test_sample_agrees_with_click_probs(name):
  model = cm.get(name)
  rng = np.random.default_rng(0)
  params = _random_params(model, rng)
  doc, mask = _pages(rng)
  click = np.asarray(model.sample(jax.random.key(1), params, doc, mask))
  assert set(np.unique(click)) <= {0.0, 1.0} and not click[~mask].any()
  probs = np.asarray(model.click_probs(params, *map(jnp.asarray, (doc, click, mask))))
  residual = click - probs
  above = np.asarray(previous_click_rank(click, mask))
  checked = 0
  for k in range(RANKS):
    groups = {"any": mask[:, k], **{r: mask[:, k] & (above[:, k] == r) for r in range(k + 1)}}
    for last_click, rows in groups.items():
      n = rows.sum()
      if n < 200:  # too few pages for a useful tolerance
        continue
      checked += 1
      mean = residual[rows, k].mean()
      assert abs(mean) <= 2.5 / np.sqrt(n), (
        name,
        f"rank {k + 1}",
        f"last click {last_click}",
        f"click rate {click[rows, k].mean():.4f}",
        f"click_probs {probs[rows, k].mean():.4f}",
      )
  assert checked >= 2 * RANKS


@pytest.mark.parametrize("name", sorted(cm.MODELS))
def test_simulator_truth_has_the_shape_of_the_models_parameters(name):
  rng = np.random.default_rng(0)
  lists = [
    schema.RankingList(
      qid=f"q{i}",
      doc_ids=[f"d{j}" for j in range(8)],
      labels={"human": rng.integers(0, 5, 8).astype(np.float32)},
    )
    for i in range(5)
  ]
  sim = sim_lib.simulate(lists, sessions=300, model=name, list_size=RANKS, seed=0)
  init = cm.get(name).init(sim.log.num_pairs, RANKS)
  assert {k: np.shape(v) for k, v in sim.truth.items()} == {k: np.shape(v) for k, v in init.items()}
  assert all(((0 <= v) & (v <= 1)).all() for v in sim.truth.values())
  assert sim.config["model"] == name and sim.log.click.sum() > 0


@pytest.mark.parametrize("name", sorted(cm.MODELS))
def test_every_fit_method_beats_the_initial_parameters(name):
  model = cm.get(name)
  rng = np.random.default_rng(2)
  doc, mask = _pages(rng)
  doc, mask = doc[:5000], mask[:5000]
  pairs = [("q", str(i)) for i in range(PAIRS)]
  click = model.sample(jax.random.key(3), _random_params(model, rng), doc, mask)
  log = cm.ClickLog(doc, np.asarray(click), mask, pairs)
  start = cm.evaluate(model, model.init(PAIRS, RANKS), log)["log_likelihood"]
  for method in model.methods:
    r = cm.fit(model, log, method=method, iterations=30)
    assert r.method == method and r.train["log_likelihood"] > start, (name, method)
    assert np.asarray(model.relevance(r.params)).shape == (PAIRS,)
