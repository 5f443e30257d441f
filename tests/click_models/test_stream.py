"""The streamed fit (`rankjax.click_models.stream`): the full-batch fit's parameters from
minibatches, on one device or eight, from memory or from shards, with the pair tables whole on
each device or split over them by pair id; checked against numpy EMs in
float64 written here, and DBN's E-step against brute-force enumeration of its hidden variables.

The log: 3,000 pages of 6 ranks over 40 (query, document) pairs drawn at random, each rank hidden
with probability 0.15 (so pages have holes and ragged ends), clicks sampled from each model with
random parameters.
"""

import functools
import itertools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rankjax import click_models as cm
from rankjax.click_models import identification, intervention, stream
from rankjax.data.readers.common import Interaction, Session

PAGES, RANKS, PAIRS = 3000, 6, 40
# One batch size, iteration count and smoothing throughout: the tests share compiled programs.
BATCH, ITERATIONS, SMOOTHING = 700, 10, 0.5
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@functools.cache
def click_log(name: str, pages: int = PAGES, ranks: int = RANKS) -> cm.ClickLog:
  """Pages with holes, clicks sampled from the model `name` with parameters in [0.1, 0.9]."""
  rng = np.random.default_rng(0)
  doc = rng.integers(0, PAIRS, (pages, ranks)).astype(np.int32)
  mask = rng.random((pages, ranks)) < 0.85
  mask[:, 0] |= ~mask.any(1)
  model = cm.get(name)
  params = {
    k: v if k in model.fixed else jnp.asarray(rng.uniform(0.1, 0.9, np.shape(v)), jnp.float32)
    for k, v in model.init(PAIRS, ranks).items()
  }
  click = np.asarray(model.sample(jax.random.key(1), params, doc, mask))
  return cm.ClickLog(doc, click, mask, [("q", str(i)) for i in range(PAIRS)])


def assert_same_params(a, b, atol):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]), atol=atol, err_msg=k)


STREAMED = [(n, m) for n in sorted(cm.MODELS) for m in cm.get(n).methods if m != "gradient"]


@functools.cache
def fits(name: str, method: str):
  """(full-batch fit, streamed fit) of `click_log(name)`."""
  log, model = click_log(name), cm.get(name)
  kw = {"method": method, "iterations": ITERATIONS, "smoothing": SMOOTHING}
  return cm.fit(model, log, **kw), cm.fit(model, log, batch_sessions=BATCH, **kw)


@pytest.mark.parametrize("name, method", STREAMED)
def test_streamed_fit_equals_the_full_batch_fit(name, method):
  full, streamed = fits(name, method)
  # The same sums in another order, in float32, over 10 iterations.
  assert_same_params(full.params, streamed.params, atol=2e-5)
  assert streamed.train["log_likelihood"] == pytest.approx(full.train["log_likelihood"], abs=1e-6)
  assert (streamed.iterations, streamed.method) == (full.iterations, full.method)


def test_streamed_fit_does_not_depend_on_the_batch_size():
  small = stream.run_em(
    cm.get("dbn"),
    cm.LogSource(click_log("dbn")),
    params=None,
    iterations=ITERATIONS,
    smoothing=SMOOTHING,
    batch_sessions=128,
  )[0]
  assert_same_params(fits("dbn", "em")[1].params, small, atol=1e-5)


def numpy_pbm_em(log: cm.ClickLog, iterations: int, smoothing: float) -> dict:
  """PBM EM in float64, written independently of rankjax."""
  doc, click, w = log.doc, log.click.astype(np.float64), log.mask.astype(np.float64)
  theta, alpha = np.full(log.num_ranks, 0.5), np.full(log.num_pairs, 0.5)
  shown = np.bincount(doc.ravel(), w.ravel(), log.num_pairs)
  for _ in range(iterations):
    t, a = theta[None, :], alpha[doc]
    exam = np.where(click > 0, 1.0, t * (1 - a) / (1 - t * a))
    attract = np.where(click > 0, 1.0, a * (1 - t) / (1 - t * a))
    theta = (exam * w).sum(0) / w.sum(0)
    alpha = (np.bincount(doc.ravel(), (attract * w).ravel(), log.num_pairs) + smoothing / 2) / (
      shown + smoothing
    )
  return {"theta": theta, "alpha": alpha}


def numpy_ubm_em(log: cm.ClickLog, iterations: int, smoothing: float) -> dict:
  """UBM EM in float64: examination per (rank, rank of the last click above; 0 none)."""
  doc, click, mask = log.doc, log.click.astype(np.float64), log.mask
  k = log.num_ranks
  prev = np.zeros(doc.shape, int)
  for r in range(1, k):
    prev[:, r] = np.where((click[:, r - 1] > 0) & mask[:, r - 1], r, prev[:, r - 1])
  cell = np.arange(k) * k + prev
  gamma, alpha = np.full(k * k, 0.5), np.full(log.num_pairs, 0.5)
  w = mask.astype(np.float64)
  shown = np.bincount(doc.ravel(), w.ravel(), log.num_pairs)
  cells = np.bincount(cell.ravel(), w.ravel(), k * k)
  for _ in range(iterations):
    g, a = gamma[cell], alpha[doc]
    exam = np.where(click > 0, 1.0, g * (1 - a) / (1 - g * a))
    attract = np.where(click > 0, 1.0, a * (1 - g) / (1 - g * a))
    num = np.bincount(cell.ravel(), (exam * w).ravel(), k * k)
    gamma = np.where(cells > 0, num / np.maximum(cells, 1), gamma)
    alpha = (np.bincount(doc.ravel(), (attract * w).ravel(), log.num_pairs) + smoothing / 2) / (
      shown + smoothing
    )
  return {"gamma": gamma.reshape(k, k), "alpha": alpha}


def numpy_counts(log: cm.ClickLog, name: str, smoothing: float) -> dict:
  """Cascade's and SDBN's closed forms, counted in numpy."""
  click, mask = (log.click > 0) & log.mask, log.mask
  ranks = np.arange(1, log.num_ranks + 1)
  first = np.where(click.any(1), click.argmax(1) + 1, 0)
  last = np.where(click.any(1), log.num_ranks - click[:, ::-1].argmax(1), 0)

  def ratio(values, where):
    num = np.bincount(log.doc[where], values[where].astype(np.float64), log.num_pairs)
    den = np.bincount(log.doc[where], minlength=log.num_pairs)
    return (num + smoothing / 2) / (den + smoothing)

  if name == "cascade":
    return {"alpha": ratio(click, mask & ((ranks <= first[:, None]) | (first[:, None] == 0)))}
  examined = mask & ((ranks <= last[:, None]) | (last[:, None] == 0))
  return {
    "alpha": ratio(click, examined),
    "sigma": ratio(ranks == last[:, None], click),
    "gamma": np.float64(1.0),
  }


@pytest.mark.parametrize("name", ["pbm", "ubm", "cascade", "sdbn"])
def test_streamed_fit_equals_a_float64_numpy_fit(name):
  log = click_log(name)
  reference = {
    "pbm": lambda: numpy_pbm_em(log, ITERATIONS, SMOOTHING),
    "ubm": lambda: numpy_ubm_em(log, ITERATIONS, SMOOTHING),
    "cascade": lambda: numpy_counts(log, "cascade", SMOOTHING),
    "sdbn": lambda: numpy_counts(log, "sdbn", SMOOTHING),
  }[name]()
  assert_same_params(fits(name, cm.get(name).methods[0])[1].params, reference, atol=1e-5)


def brute_force_dbn_sums(params: dict, log: cm.ClickLog) -> dict:
  """DBN's expected counts by enumerating every page's hidden attraction, satisfaction and
  continuation bits (float64): the user skips hidden ranks, so a page is its shown ranks."""
  alpha, sigma, gamma = (np.asarray(params[k], np.float64) for k in ("alpha", "sigma", "gamma"))
  k = log.num_ranks
  bits = np.array(list(itertools.product([0, 1], repeat=3 * k)), bool)  # [configs, 3K]
  a, s, g = bits[:, :k], bits[:, k : 2 * k], bits[:, 2 * k :]
  sums = {
    "alpha": np.zeros((2, log.num_pairs)),
    "sigma": np.zeros((2, log.num_pairs)),
    "gamma": np.zeros(2),
  }
  for doc, click, mask in zip(log.doc, log.click > 0, log.mask):
    d, c, n = doc[mask], click[mask], mask.sum()
    examined = np.ones((len(bits), n + 1), bool)
    for r in range(n):  # E_{r+1} = E_r and not (clicked and satisfied) and continued
      examined[:, r + 1] = examined[:, r] & ~(examined[:, r] & a[:, r] & s[:, r]) & g[:, r]
    clicks = examined[:, :n] & a[:, :n]
    p = np.prod(np.where(a[:, :n], alpha[d], 1 - alpha[d]), 1)
    p *= np.prod(np.where(s[:, :n], sigma[d], 1 - sigma[d]), 1)
    p *= np.prod(np.where(g[:, :n], gamma, 1 - gamma), 1)
    post = np.where((clicks == c).all(1), p, 0.0)
    post /= post.sum()
    np.add.at(sums["alpha"], (0, d), post @ a[:, :n])
    np.add.at(sums["alpha"], (1, d), 1)
    satisfied = post @ (s[:, :n] & clicks)
    np.add.at(sums["sigma"], (0, d[c]), satisfied[c])
    np.add.at(sums["sigma"], (1, d[c]), 1)
    sums["gamma"] += [
      post @ examined[:, 1:n].sum(1),
      post @ (examined[:, : n - 1] & ~(clicks & s[:, :n])[:, : n - 1]).sum(1),
    ]
  return sums


def test_dbn_e_step_equals_brute_force_enumeration():
  log = click_log("dbn", pages=200, ranks=3)
  rng = np.random.default_rng(5)
  params = {
    "alpha": rng.uniform(0.1, 0.9, PAIRS),
    "sigma": rng.uniform(0.1, 0.9, PAIRS),
    "gamma": np.float64(0.7),
  }
  got = cm.get("dbn").e_step(
    {k: jnp.asarray(v, jnp.float32) for k, v in params.items()},
    *map(jnp.asarray, (log.doc, log.click, log.mask)),
  )
  want = brute_force_dbn_sums(params, log)
  for key in want:
    np.testing.assert_allclose(np.stack(got[key]), want[key], rtol=1e-4, atol=1e-4, err_msg=key)


def test_first_pass_counts_are_the_logs_counts():
  log = click_log("dbn")
  impressions, clicks = intervention.counts_from_log(log)
  for name in ("pbm", "dbn"):  # PBM's EM runs on them; DBN's collects them in its first pass
    r = cm.fit(cm.get(name), log, iterations=2, batch_sessions=BATCH, collect_counts=True)
    np.testing.assert_array_equal(r.counts.impressions, impressions)
    np.testing.assert_array_equal(r.counts.clicks, clicks)
  want = identification.identify(log)
  got = identification.from_impressions(r.counts.impressions)
  assert got.as_dict() == want.as_dict()
  np.testing.assert_array_equal(got.shared, want.shared)


def test_compensated_sums_keep_what_float32_rounds_off():
  # 2^24 + 1 is not a float32: a plain float32 sum of 2^24 and a thousand ones stays at 2^24.
  acc = ((jnp.float32(2**24),), (jnp.float32(0),))
  add = jax.jit(stream._add)
  for _ in range(1000):
    acc = add(acc, (jnp.float32(1),))
  assert stream._to_host(acc)[0] == 2**24 + 1000
  assert float(acc[0][0]) != 2**24 + 1000  # the float32 sum alone lost them


def _sessions(log: cm.ClickLog):
  for n, (doc, click, mask) in enumerate(zip(log.doc, log.click, log.mask)):
    ranks = np.flatnonzero(mask)
    docs = [log.pairs[i][1] for i in doc[mask]]
    clicks = click[mask].astype(int).tolist()
    yield Session(str(n), [Interaction("q", docs, (ranks + 1).tolist(), clicks)])


def test_fit_from_shards_equals_fit_from_memory(tmp_path):
  log = cm.ClickLog.from_sessions(_sessions(click_log("dbn")), RANKS)
  train, test, pairs = cm.write_shards(
    _sessions(click_log("dbn")), tmp_path, max_rank=RANKS, shard_sessions=700
  )
  assert pairs == log.pairs and test.num_sessions == 0 and train.num_sessions == PAGES
  assert len(list(train.chunks())) == -(-PAGES // 700)
  for name in ("pbm", "dbn"):
    model, kw = cm.get(name), {"iterations": ITERATIONS, "smoothing": SMOOTHING}
    em = cm.FIT_METHODS["em"]
    state = em.steps(
      model,
      log,
      em.start(model, log, None, 0.0),
      ITERATIONS,
      *map(jnp.asarray, (log.doc, log.click, log.mask)),
      learning_rate=0.0,
      smoothing=SMOOTHING,
    )
    full = em.params(model, state)
    streamed = stream.run_em(model, train, params=None, batch_sessions=BATCH, **kw)[0]
    assert_same_params(full, streamed, atol=2e-5)
  lines = (tmp_path / "pairs.jsonl").read_text().splitlines()
  assert [tuple(json.loads(x)) for x in lines] == log.pairs

  train, test, _ = cm.write_shards(
    _sessions(click_log("dbn")), tmp_path / "split", max_rank=RANKS, test_fraction=0.2
  )
  assert train.num_sessions + test.num_sessions == PAGES
  assert abs(test.num_sessions - 0.2 * PAGES) < 5 * np.sqrt(0.16 * PAGES)
  # The in-memory split holds out the same sessions.
  log = cm.ClickLog.from_sessions(_sessions(click_log("dbn")), max_rank=RANKS)
  for shards, pages in zip((train, test), log.split(0.2)):
    doc, click, mask = (np.concatenate(x) for x in zip(*shards.chunks()))
    np.testing.assert_array_equal(doc, pages.doc)
    np.testing.assert_array_equal(click, pages.click)
    np.testing.assert_array_equal(mask, pages.mask)


def test_gradient_has_no_streamed_form():
  with pytest.raises(ValueError, match="no streamed form"):
    cm.fit(cm.get("dbn"), click_log("dbn"), method="gradient", batch_sessions=BATCH)


_EIGHT_DEVICES = """
import json, sys
import jax
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_stream import BATCH, ITERATIONS, PAIRS, RANKS, SMOOTHING, STREAMED, click_log, fits
from rankjax import click_models as cm
from rankjax.click_models import stream

assert jax.device_count() == 8, jax.devices()
feed = stream._Feed(cm.LogSource(click_log("dbn")), BATCH, None)
assert feed.rows % 8 == 0 and len(next(iter(feed))[0].sharding.device_set) == 8
out = {"replicated": {}, "sharded": {}}
for name, method in STREAMED:
  if name in ("pbm", "dbn", "sdbn"):  # the pair-rank EM, EM by passes, counts
    out["replicated"][name] = {k: v.tolist() for k, v in fits(name, method)[1].params.items()}

# Pair shards on 3 of the devices: 40 pairs are 14 per device, the last slice padded.
mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:3]), ("data",))
feed = stream._Feed(cm.LogSource(click_log("pbm")), BATCH, mesh, shard_pairs=True)
table = stream._pair_rank_table(feed, False)[0]
params = feed.put(cm.get("ubm").init(PAIRS, RANKS), (True, False))  # alpha, gamma
out["shards"] = {
  "pair_rank": [s.data.shape for s in table.addressable_shards],
  "alpha": [s.data.shape for s in params["alpha"].addressable_shards],
  "gamma": [s.data.shape for s in params["gamma"].addressable_shards],
}
for name, method in STREAMED:
  r = cm.fit(
    cm.get(name), click_log(name), method=method, iterations=ITERATIONS, smoothing=SMOOTHING,
    batch_sessions=BATCH, mesh=mesh, shard_pairs=True, collect_counts=True,
  )
  out["sharded"][name] = {
    "params": {k: np.asarray(v).tolist() for k, v in r.params.items()},
    "log_likelihood": r.train["log_likelihood"],
    "impressions": r.counts.impressions.tolist(),
    "clicks": r.counts.clicks.tolist(),
  }
json.dump(out, sys.stdout)
"""


@pytest.mark.slow
def test_eight_devices_fit_as_one():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
  proc = subprocess.run(
    [sys.executable, "-c", _EIGHT_DEVICES, os.path.dirname(os.path.abspath(__file__))],
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout)
  assert set(out["replicated"]) == {"pbm", "dbn", "sdbn"}
  for name, params in out["replicated"].items():
    assert_same_params(fits(name, cm.get(name).methods[0])[1].params, params, atol=1e-5)

  # Split by pair id, each device holds its slice of the per-pair tables, the rest whole.
  assert out["shards"] == {
    "pair_rank": [[14, RANKS, 2]] * 3,
    "alpha": [[14]] * 3,
    "gamma": [[RANKS, RANKS]] * 3,
  }
  assert set(out["sharded"]) == {name for name, _ in STREAMED}
  for name, method in STREAMED:
    sharded, (_, replicated) = out["sharded"][name], fits(name, method)
    assert_same_params(replicated.params, sharded["params"], atol=2e-5)
    assert sharded["log_likelihood"] == pytest.approx(replicated.train["log_likelihood"], abs=1e-6)
    impressions, clicks = intervention.counts_from_log(click_log(name))
    np.testing.assert_array_equal(sharded["impressions"], impressions)
    np.testing.assert_array_equal(sharded["clicks"], clicks)
