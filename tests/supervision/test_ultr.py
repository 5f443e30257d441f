"""Unbiased click supervision (supervision.ultr, click_models.intervention) on simulated logs.

The world (as tests/sim/test_clicks.py's IPS test): 200 queries of 20 documents, graded labels from
a linear function of 4 features, clicks from PBM with strong position bias (theta_k = k ** -2).
Three quarters of the 16,000 sessions come from a logging ranker that orders by feature 3, which is
unrelated to relevance, a quarter from a random ranker (the ranking variety intervention
harvesting needs). Naive clicks learn feature 3; each unbiased method must not. Rankers are linear,
trained full-batch on every session through `step.train_step`, so objectives with variables go
through the trainer's own path.
"""

import functools
import json
import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from train_helpers import tiny_config, tiny_dataset

from rankjax import supervision
from rankjax.cli import clicks as clicks_cli
from rankjax.click_models import intervention
from rankjax.click_models.log import ClickLog
from rankjax.configs import default as config_defaults
from rankjax.data import aggregate, readers, schema, store
from rankjax.engine import evaluate, train
from rankjax.engine import step as step_lib
from rankjax.ranking import metrics
from rankjax.sim import clicks as sim_lib
from rankjax.supervision import ultr

ETA = 2.0
TRUE_THETA = np.arange(1, 11, dtype=np.float64) ** -ETA
ULTR = sorted(
  name
  for name, objective in supervision.OBJECTIVES.items()
  if objective.__module__ == ultr.__name__
)  # the objectives defined there


class Linear(nn.Module):
  @nn.compact
  def __call__(self, batch, train=False):
    del train
    return nn.Dense(1, use_bias=False)(batch["features"])[..., 0]


def _lists(num_queries=200, seed=0):
  rng = np.random.default_rng(seed)
  w_true = np.array([1.0, -0.5, 0.8, 0.0], np.float32)  # feature 3 is irrelevant
  lists = []
  for i in range(num_queries):
    x = rng.normal(size=(20, 4)).astype(np.float32)
    y = np.digitize(x @ w_true, [-0.5, 0.5, 1.2, 2.0]).astype(np.float32)
    lists.append(
      schema.RankingList(
        qid=str(i), doc_ids=[f"{i}-{j}" for j in range(20)], features=x, labels={"human": y}
      )
    )
  return lists


def _simulate(lists, loggers, seed=3):
  """One click log from several logging rankers, {logger: sessions}, over the same pairs."""
  logs = [
    sim_lib.simulate(
      lists, sessions=n, eta=ETA, noise=0.05, logger=logger, zipf=0.3, seed=seed + i
    ).log
    for i, (logger, n) in enumerate(loggers.items())
  ]
  doc, click, mask = (
    np.concatenate([getattr(l, f) for l in logs]) for f in ("doc", "click", "mask")
  )
  return ClickLog(doc, click, mask, logs[0].pairs)


def _batch(lists, log):
  """Every session as one list: features, clicks, shown ranks."""
  feats = np.concatenate([x.features for x in lists])
  b = log.num_sessions
  return {
    "features": jnp.asarray(feats[log.doc]),
    "label_click": jnp.asarray(log.click),
    "mask_click": jnp.asarray(log.mask),
    "mask": jnp.asarray(log.mask),
    "list_valid": jnp.ones((b,), bool),
    "position": jnp.asarray(np.where(log.mask, np.arange(1, log.num_ranks + 1), 0)),
  }


def _config(objective="single", weights="none", steps=1000, **supervision_kw):
  config = config_defaults.default_config()
  config.total_steps = steps
  # DLA's authors: AdamW with the gradient's global norm clipped at 0.5.
  config.optimizer.update({"lr": 0.05, "warmup_steps": 0, "weight_decay": 0.0, "clip_norm": 0.5})
  config.supervision.update(
    {"objective": objective, "source": "click", "weights": weights, **supervision_kw}
  )
  return config


def _train(batch, config):
  """The final TrainState of `config.total_steps` full-batch steps of `step.train_step`."""
  objective = supervision.get_objective(config.supervision.objective)
  model, tx = Linear(), step_lib.make_optimizer(config)
  state = step_lib.init_state(
    model,
    tx,
    jax.tree.map(lambda x: x[:1], batch),
    0,
    objective_init=functools.partial(objective.init, config=config),
  )
  step = functools.partial(
    step_lib.train_step, model=model, tx=tx, objective=objective, config=config
  )
  return jax.jit(
    lambda s, b: jax.lax.fori_loop(0, config.total_steps, lambda i, s: step(s, b)[0], s)
  )(state, batch)


def _ndcg(lists, state):
  x = jnp.asarray(np.stack([l.features for l in lists]))
  y = jnp.asarray(np.stack([l.labels["human"] for l in lists]))
  return float(
    metrics.ndcg_metric(Linear().apply({"params": state.params}, {"features": x}), y, topn=10)
  )


@pytest.fixture(scope="module")
def world():
  lists = _lists()
  log = _simulate(lists, {"feature:3": 12_000, "random": 4_000})
  return lists, log, _batch(lists, log)


@pytest.fixture(scope="module")
def naive_ndcg(world):
  lists, _, batch = world
  return _ndcg(lists, _train(batch, _config()))


# Measured: naive 0.73; DLA 0.996, two-tower 0.999, Regression-EM 0.96, IPS with harvested
# propensities 0.997. Propensities' largest error over ranks 1-10 (relative to rank 1): DLA 0.027,
# Regression-EM 0.028, intervention harvesting 0.016; the tolerances are about twice that.
@pytest.mark.slow
@pytest.mark.parametrize(
  "objective, tolerance", [("dla", 0.06), ("regression_em", 0.06), ("two_tower", None)]
)
def test_unbiased_objective_beats_naive_clicks(world, naive_ndcg, objective, tolerance):
  lists, _, batch = world
  state = _train(batch, _config(objective))
  ndcg = _ndcg(lists, state)
  assert ndcg > naive_ndcg + 0.15, (ndcg, naive_ndcg)
  if tolerance is not None:
    theta = np.asarray(supervision.OBJECTIVES[objective].propensities(state.objective))
    np.testing.assert_allclose(theta / theta[0], TRUE_THETA, atol=tolerance)
  else:  # the position tower learned the bias: lower logits further down
    assert np.all(np.diff(np.asarray(state.objective["params"]["position_logits"])[:5]) < 0)


def test_intervention_harvesting_recovers_propensities(world):
  _, log, _ = world
  h = intervention.estimate(*intervention.counts_from_log(log))
  np.testing.assert_allclose(h.theta, TRUE_THETA, atol=0.03)
  assert h.used.sum() == 90  # the random logger links every pair of ranks directly
  clipped = intervention.estimate(*intervention.counts_from_log(log), clip=0.05)
  np.testing.assert_allclose(clipped.theta, np.clip(h.theta, 0.05, 1.0))


@pytest.mark.slow
def test_ips_with_harvested_propensities_beats_naive_clicks(world, naive_ndcg):
  lists, log, batch = world
  theta = intervention.estimate(*intervention.counts_from_log(log)).theta
  ndcg = _ndcg(lists, _train(batch, _config(weights="ips_pbm", propensities=theta.tolist())))
  assert ndcg > naive_ndcg + 0.15, (ndcg, naive_ndcg)


def _tiny_batch(seed=0):
  rng = np.random.default_rng(seed)
  mask = np.array([[True] * 5 + [False] * 3, [True] * 8, [False] * 8])
  return {
    "label_click": jnp.asarray(rng.integers(0, 2, (3, 8)).astype(np.float32) * mask),
    "mask_click": jnp.asarray(mask),
    "mask": jnp.asarray(mask),
    "list_valid": jnp.array([True, True, False]),
    "position": jnp.asarray(np.where(mask, np.arange(1, 9), 0)),
  }


def _call(objective, scores, batch, config, variables=None):
  variables = variables or objective.init(jax.random.key(0), config)
  return objective.apply(scores, batch, step=0, config=config, variables=variables)


@pytest.mark.parametrize("name", ULTR)
def test_masked_items_and_empty_lists_are_ignored(name):
  objective, config = supervision.OBJECTIVES[name], _config(name)
  batch = _tiny_batch()
  scores = jnp.asarray(np.random.default_rng(1).normal(size=(3, 8)), jnp.float32)
  loss, aux, state = _call(objective, scores, batch, config)
  # Change everything outside the real items: labels, scores, positions, and the padding list.
  junk = {
    **batch,
    "label_click": jnp.where(batch["mask"], batch["label_click"], 1.0),
    "position": jnp.where(batch["mask"], batch["position"], 3),
  }
  junk_scores = jnp.where(batch["mask"] & batch["list_valid"][:, None], scores, 50.0)
  loss2, aux2, state2 = _call(objective, junk_scores, junk, config)
  np.testing.assert_allclose(loss, loss2, rtol=1e-6)
  for a, b in zip(jax.tree.leaves((aux, state)), jax.tree.leaves((aux2, state2))):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  # No real item at all: zero loss and zero, finite gradients.
  empty = {**batch, "mask": jnp.zeros((3, 8), bool)}
  variables = objective.init(jax.random.key(0), config)
  grads = jax.grad(
    lambda s, v: _call(objective, s, empty, config, {**variables, "params": v})[0], argnums=(0, 1)
  )(scores, variables["params"])
  assert float(_call(objective, scores, empty, config)[0]) == 0.0
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("name", ULTR)
def test_bad_configuration_is_a_clear_error(name):
  objective = supervision.OBJECTIVES[name]
  with pytest.raises(ValueError, match=f"'{name}' learns its own position bias.*'ips_pbm'"):
    _call(objective, jnp.zeros((3, 8)), _tiny_batch(), _config(name, weights="ips_pbm"))
  no_clicks = {k: v for k, v in _tiny_batch().items() if not k.endswith("_click")}
  with pytest.raises(KeyError, match=f"objective '{name}' trains on clicks"):
    _call(objective, jnp.zeros((3, 8)), no_clicks, _config(name))


def test_regression_em_steps():
  config = _config("regression_em", em_decay=0.5, num_positions=3)
  variables = {"params": {}, "state": {"exam": jnp.array([0.8, 0.2, 0.1]), "seen": jnp.ones(3)}}
  batch = {
    "label_click": jnp.array([[1.0, 0.0, 0.0]]),
    "mask_click": jnp.ones((1, 3), bool),
    "mask": jnp.ones((1, 3), bool),
    "list_valid": jnp.ones((1,), bool),
    "position": jnp.array([[1, 2, 5]]),
  }  # rank 5 counts as the last modelled rank, 3
  scores = jnp.array([[0.0, 1.0, -1.0]])
  regression_em = supervision.OBJECTIVES["regression_em"]
  loss, _, state = _call(regression_em, scores, batch, config, variables)
  theta, gamma = np.array([0.8, 0.2, 0.1]), 1 / (1 + np.exp(-np.array([0.0, 1.0, -1.0])))
  c = np.array([1.0, 0.0, 0.0])
  p_exam = c + (1 - c) * theta * (1 - gamma) / (1 - theta * gamma)
  p_rel = c + (1 - c) * (1 - theta) * gamma / (1 - theta * gamma)
  np.testing.assert_allclose(state["exam"], 0.5 * theta + p_exam, rtol=1e-6)
  np.testing.assert_allclose(state["seen"], 0.5 + np.ones(3), rtol=1e-6)
  bce = -(p_rel * np.log(gamma) + (1 - p_rel) * np.log(1 - gamma))
  np.testing.assert_allclose(loss, bce.mean(), rtol=1e-5)


def test_optimizer_scales_objective_updates_and_decays_only_the_model():
  config = _config(steps=10, objective_lr_scale=2.0)
  config.optimizer.update({"lr": 0.1, "weight_decay": 0.5, "clip_norm": 1e9})
  tx = step_lib.make_optimizer(config)
  params = ({"w": jnp.ones(2)}, {"p": jnp.ones(3)})
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  # First Adam step: -lr * sign(grad), plus decoupled weight decay lr * 0.5 * param on the model.
  np.testing.assert_allclose(updates[0]["w"], -0.1 * (1 + 0.5), rtol=1e-5)
  np.testing.assert_allclose(updates[1]["p"], -0.1 * 2.0, rtol=1e-5)


def test_intervention_needs_ranks_linked_to_rank_one():
  imps = np.array([[5.0, 5.0, 0.0], [0.0, 0.0, 5.0]])  # rank 3 never shares a pair with 1 or 2
  with pytest.raises(ValueError, match=r"ranks \[3\] share no clicked"):
    intervention.estimate(imps, imps * 0.5)
  with pytest.raises(ValueError, match="want equal"):
    intervention.estimate(imps, imps[:1])


def test_intervention_command_line_without_ranking_variety(tmp_path):
  lists = _lists(5)
  sim = sim_lib.simulate(lists, sessions=200, eta=ETA, logger="feature:3", seed=5)
  path = tmp_path / "log.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in sim.records()))
  with pytest.raises(SystemExit, match=r"log.jsonl: ranks \[2, .*\] share no clicked"):
    clicks_cli.harvest(["--format", "jsonl", str(path)])


def test_intervention_counts_from_aggregated_sessions_and_command_line(tmp_path, capsys):
  lists = _lists(20)
  sim = sim_lib.simulate(lists, sessions=3000, eta=ETA, logger="random", seed=5)
  path = tmp_path / "log.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in sim.records()))
  agg = aggregate.ClickAggregator().add_all(readers.read_sessions("jsonl", path))
  imps, clicks = intervention.counts_from_aggregator(agg)
  want = intervention.counts_from_log(sim.log)
  index = {pair: i for i, pair in enumerate(sim.log.pairs)}
  order = [index[(q, d)] for q, docs in agg.pairs.items() for d in docs]
  np.testing.assert_array_equal(imps, want[0][order])
  np.testing.assert_array_equal(clicks, want[1][order])
  out = clicks_cli.harvest(["--format", "jsonl", str(path)])
  assert json.loads(capsys.readouterr().out) == out and out["pages"] == 3000
  np.testing.assert_allclose(
    out["propensities"], intervention.estimate(imps, clicks).theta, atol=1e-6
  )


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
  return tiny_dataset(tmp_path_factory.mktemp("data"))


def _objective_config(data_path, objective):
  return tiny_config(
    data_path, **{"supervision.objective": objective, "supervision.source": "click"}
  )


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["dla", "regression_em"])
def test_resume_restores_objective_variables_exactly(data_path, tmp_path, objective):
  a, b = tmp_path / "a", tmp_path / "b"
  full = train.train_and_evaluate(_objective_config(data_path, objective), a)
  init = supervision.OBJECTIVES[objective].init(None, _objective_config(data_path, objective))
  changed = [
    np.any(np.asarray(x) != np.asarray(y))
    for x, y in zip(jax.tree.leaves(full["state"].objective), jax.tree.leaves(init))
  ]
  assert changed and all(changed)  # trained (params) or updated (EM state) by the steps
  (b / "checkpoints").mkdir(parents=True)
  shutil.copytree(a / "checkpoints" / "3", b / "checkpoints" / "3")
  resumed = train.train_and_evaluate(_objective_config(data_path, objective), b)
  for x, y in zip(jax.tree.leaves(full["state"]), jax.tree.leaves(resumed["state"])):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert resumed["eval"] == full["eval"]


@pytest.mark.slow
def test_two_tower_position_tower_is_not_used_to_evaluate(data_path, tmp_path):
  out = train.train_and_evaluate(_objective_config(data_path, "two_tower"), tmp_path)
  tower = np.asarray(out["state"].objective["params"]["position_logits"])
  assert tower.shape == (10,) and np.any(tower != 0)
  trained = train.load_for_scoring(tmp_path, best=False)  # the last step: the run's evaluation
  # Scoring restores the model's variables only: no position tower among them.
  assert set(trained.variables) == {"params", *out["state"].model_state}
  assert jax.tree.structure(trained.variables["params"]) == jax.tree.structure(out["state"].params)
  # The checkpoint's ranker alone, scored as `rankjax score` does, gives the run's evaluation.
  config = trained.config
  eval_step = evaluate.make_eval_step(
    trained.model, config.eval.metrics, config.eval.label_source, trained.mesh
  )
  results, _ = evaluate.evaluate_split(
    eval_step,
    trained.variables,
    store.open_split(trained.data_path, "test"),
    batch_size=config.eval.batch_size,
    list_sizes=config.data.list_sizes,
    mesh=trained.mesh,
  )
  assert results == out["eval"]["test"]
