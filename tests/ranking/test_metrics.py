"""Invariants of every registered metric, parity with rax 0.4.0, and bucket aggregation."""

import functools
import inspect
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rax

from rankjax import registry
from rankjax.ranking import metrics
from rankjax.ranking import utils as ru

METRIC_NAMES = sorted(metrics.METRICS)
RAX_METRICS = {
  "ndcg": rax.ndcg_metric,
  "dcg": rax.dcg_metric,
  "mrr": rax.mrr_metric,
  "precision": rax.precision_metric,
}
# rax's MRR and precision take no weights.
RAX_WEIGHTED = {"ndcg", "dcg"}


def _batch(seed, shape=(6, 9)):
  """Distinct random scores, graded labels, weights and a mask with a fully masked list."""
  rng = np.random.default_rng(seed)
  scores = rng.normal(size=shape).astype(np.float32)
  labels = rng.integers(0, 5, size=shape).astype(np.float32)
  weights = rng.uniform(0.5, 2.0, size=shape).astype(np.float32)
  where = rng.uniform(size=shape) < 0.75
  where[1] = False
  labels[2] = 0.0  # A list without relevant items.
  return jnp.asarray(scores), jnp.asarray(labels), jnp.asarray(weights), jnp.asarray(where)


def test_every_metric_compared_with_rax_is_registered():
  assert set(RAX_METRICS) <= set(metrics.METRICS)


def test_get_metric_unknown_lists_known_names():
  with pytest.raises(KeyError, match="unknown metric 'map'.*ndcg.*pnr"):
    metrics.get_metric("map")


@pytest.mark.parametrize(
  "name,use_weights",
  [
    (name, use_weights)
    for name in sorted(RAX_METRICS)
    for use_weights in (False, True)
    if name in RAX_WEIGHTED or not use_weights
  ],
)
@pytest.mark.parametrize("topn", [None, 1, 4])
def test_matches_rax(name, use_weights, topn):
  scores, labels, weights, where = _batch(0)
  kwargs = {"where": where, "topn": topn}
  if use_weights:
    kwargs["weights"] = weights
  ours = functools.partial(metrics.get_metric(name), no_relevant="zero", **kwargs)
  theirs = functools.partial(RAX_METRICS[name], **kwargs)
  np.testing.assert_allclose(
    ours(scores, labels, reduce_fn=None),
    theirs(scores, labels, reduce_fn=None),
    rtol=1e-6,
    atol=1e-7,
  )
  np.testing.assert_allclose(ours(scores, labels), theirs(scores, labels), rtol=1e-6)


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_masked_items_are_ignored(name):
  metric_fn = jax.jit(metrics.get_metric(name), static_argnames=("topn", "reduce_fn"))
  scores, labels, weights, where = _batch(1)
  noise = jnp.asarray(np.random.default_rng(2).normal(size=scores.shape) * 100, jnp.float32)
  for topn in (None, 3):
    np.testing.assert_allclose(
      metric_fn(scores, labels, where=where, weights=weights, topn=topn, reduce_fn=None),
      metric_fn(
        jnp.where(where, scores, noise),
        jnp.where(where, labels, jnp.abs(noise)),
        where=where,
        weights=jnp.where(where, weights, noise),
        topn=topn,
        reduce_fn=None,
      ),
      rtol=1e-6,
    )


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_all_masked_and_no_relevant_lists_are_excluded(name):
  metric_fn = metrics.get_metric(name)
  scores, labels, weights, where = _batch(3)
  values = metric_fn(scores, labels, where=where, weights=weights, reduce_fn=None)
  assert values[1] == 0.0 and values[2] == 0.0
  kept = np.asarray([0, 3, 4, 5])
  np.testing.assert_allclose(
    metric_fn(scores, labels, where=where, weights=weights),
    np.mean(np.asarray(values)[kept]),
    rtol=1e-6,
  )
  assert metric_fn(scores, labels, where=jnp.zeros_like(where)) == 0.0
  # "zero" counts the no-relevant list (not the empty one) as 0, "one" as 1.
  counted = np.asarray([0, 2, 3, 4, 5])
  for option, fill in (("zero", 0.0), ("one", 1.0)):
    per_list = metric_fn(scores, labels, where=where, reduce_fn=None, no_relevant=option)
    assert per_list[2] == fill
    np.testing.assert_allclose(
      metric_fn(scores, labels, where=where, no_relevant=option),
      np.mean(np.asarray(per_list)[counted]),
      rtol=1e-6,
    )


def test_unknown_no_relevant_option():
  with pytest.raises(
    registry.UnknownName, match="unknown no_relevant convention 'skip'; known: .*exclude"
  ):
    metrics.ndcg_metric(jnp.zeros(3), jnp.ones(3), no_relevant="skip")


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_vmap_equals_loop(name):
  metric_fn = functools.partial(metrics.get_metric(name), topn=5, reduce_fn=None, no_relevant="one")
  scores, labels, weights, where = _batch(4)
  vmapped = jax.vmap(lambda s, y, w, m: metric_fn(s, y, weights=w, where=m))(
    scores, labels, weights, where
  )
  looped = [
    metric_fn(s, y, weights=w, where=m) for s, y, w, m in zip(scores, labels, weights, where)
  ]
  np.testing.assert_allclose(vmapped, np.stack(looped), rtol=1e-6)
  np.testing.assert_allclose(
    vmapped, metric_fn(scores, labels, weights=weights, where=where), rtol=1e-6
  )


@pytest.mark.parametrize("name", METRIC_NAMES)
@pytest.mark.parametrize("topn", [None, 3])
def test_joint_permutation_changes_nothing(name, topn):
  metric_fn = functools.partial(metrics.get_metric(name), topn=topn, reduce_fn=None)
  scores, labels, weights, where = _batch(5)  # Continuous scores: no ties.
  perm = np.random.default_rng(6).permutation(scores.shape[-1])
  np.testing.assert_allclose(
    metric_fn(scores, labels, where=where, weights=weights),
    metric_fn(scores[:, perm], labels[:, perm], where=where[:, perm], weights=weights[:, perm]),
    rtol=1e-6,
  )


def _err_reference(scores, labels, topn, max_label=4.0):
  """Chapelle's cascade, one list at a time."""
  out = []
  for s, y in zip(scores, labels):
    order = sorted(range(len(s)), key=lambda i: -s[i])[:topn]
    reach, err = 1.0, 0.0
    for rank, i in enumerate(order, start=1):
      stop = (2.0 ** y[i] - 1) / 2.0**max_label
      err += reach * stop / rank
      reach *= 1 - stop
    out.append(err)
  return np.asarray(out)


@pytest.mark.parametrize("topn", [None, 3])
def test_err_matches_cascade_reference(topn):
  scores, labels, _, _ = _batch(7)
  np.testing.assert_allclose(
    metrics.err_metric(scores, labels, topn=topn, reduce_fn=None, no_relevant="zero"),
    _err_reference(np.asarray(scores), np.asarray(labels), topn),
    rtol=1e-5,
  )


def test_pnr_matches_pair_count():
  scores, labels, _, _ = _batch(8)
  scores = jnp.round(scores)  # Ties, which count as neither.
  expected = []
  for s, y in zip(np.asarray(scores), np.asarray(labels)):
    conc = sum(y[i] > y[j] and s[i] > s[j] for i in range(len(s)) for j in range(len(s)))
    disc = sum(y[i] > y[j] and s[i] < s[j] for i in range(len(s)) for j in range(len(s)))
    expected.append(conc / max(disc, 1))
  np.testing.assert_allclose(
    metrics.pnr_metric(scores, labels, reduce_fn=None, no_relevant="zero"), expected, rtol=1e-6
  )


def test_ties_rank_earlier_items_first():
  labels = jnp.array([0.0, 1.0, 0.0])
  assert metrics.mrr_metric(jnp.array([1.0, 1.0, 0.0]), labels) == 0.5
  assert metrics.mrr_metric(jnp.array([0.0, 1.0, 1.0]), labels) == 1.0


def test_gains():
  scores, labels = jnp.array([3.0, 2.0, 1.0]), jnp.array([1.0, 3.0, -2.0])
  discounts = 1.0 / np.log2(np.arange(2, 5))
  np.testing.assert_allclose(
    metrics.dcg_metric(scores, labels, gain_fn=metrics.linear_gain), discounts @ [1, 3, 0]
  )
  np.testing.assert_allclose(metrics.dcg_metric(scores, labels), discounts @ [1, 7, 0])


def test_relevance_level():
  scores, labels = jnp.array([3.0, 2.0, 1.0]), jnp.array([1.0, 2.0, 0.0])
  assert metrics.mrr_metric(scores, labels, relevance_level=2) == 0.5
  np.testing.assert_allclose(metrics.precision_metric(scores, labels, relevance_level=2), 1 / 3)


def test_has_relevant():
  labels = jnp.array([[0.0, 0.3], [0.0, -2.0], [1.0, 0.0]])
  np.testing.assert_array_equal(metrics.has_relevant(labels), [True, False, True])
  np.testing.assert_array_equal(
    metrics.has_relevant(labels, jnp.array([[True, True], [True, True], [False, True]])),
    [True, False, False],
  )


def _host_bucket_means(values, buckets, where):
  out = {}
  for index, name in enumerate(metrics.BUCKETS):
    chosen = where & ((buckets == index) if index < 3 else True)
    if chosen.any():
      out[name] = float(values[chosen].mean())
      out[f"count/{name}"] = float(chosen.sum())
  return out


def test_bucket_stats_match_host_and_add_across_batches():
  rng = np.random.default_rng(9)
  values = rng.uniform(size=40).astype(np.float32)
  buckets = rng.integers(-1, 2, size=40).astype(np.int32)  # No "low" list at all.
  where = rng.uniform(size=40) < 0.8
  stats_fn = jax.jit(metrics.bucket_stats)
  whole = stats_fn(values, buckets, where)
  parts = [
    stats_fn(values[i : i + 10], buckets[i : i + 10], where[i : i + 10]) for i in range(0, 40, 10)
  ]
  summed = functools.reduce(lambda a, b: jax.tree.map(jnp.add, a, b), parts)
  expected = _host_bucket_means(values, buckets, where)
  assert "low" not in expected
  for stats in (whole, summed):
    got = metrics.finalize_bucket_stats(stats)
    assert got.keys() == expected.keys()
    for key in expected:
      np.testing.assert_allclose(got[key], expected[key], rtol=1e-6)


_SHARDED_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from rankjax.ranking import metrics

    assert jax.device_count() == 8, jax.devices()
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(64, 10)).astype(np.float32)
    labels = rng.integers(0, 5, size=(64, 10)).astype(np.float32)
    where = rng.uniform(size=(64, 10)) < 0.9
    buckets = rng.integers(-1, 3, size=64).astype(np.int32)

    @jax.jit
    def stats(scores, labels, where, buckets):
      values = metrics.ndcg_metric(scores, labels, where=where, topn=5, reduce_fn=None)
      return metrics.bucket_stats(values, buckets, metrics.has_relevant(labels, where))

    mesh = jax.make_mesh((8,), ("data",))
    shard = lambda x: jax.device_put(x, NamedSharding(mesh, P("data")))
    args = [shard(a) for a in (scores, labels, where, buckets)]
    assert len(args[0].sharding.device_set) == 8
    out = metrics.finalize_bucket_stats(stats(*args))
    json.dump(out, sys.stdout)
""")


def test_bucket_stats_sharded_over_8_devices_equal_host():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
  proc = subprocess.run(
    [sys.executable, "-c", _SHARDED_SCRIPT],
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr
  sharded = json.loads(proc.stdout)

  rng = np.random.default_rng(0)
  scores = rng.normal(size=(64, 10)).astype(np.float32)
  labels = rng.integers(0, 5, size=(64, 10)).astype(np.float32)
  where = rng.uniform(size=(64, 10)) < 0.9
  buckets = rng.integers(-1, 3, size=64).astype(np.int32)
  values = np.asarray(metrics.ndcg_metric(scores, labels, where=where, topn=5, reduce_fn=None))
  expected = _host_bucket_means(values, buckets, np.asarray(metrics.has_relevant(labels, where)))
  assert sharded.keys() == expected.keys()
  for key in expected:
    np.testing.assert_allclose(sharded[key], expected[key], rtol=1e-5)


@pytest.mark.parametrize("list_size", [7, ru.PAIRWISE_MAX_LIST_SIZE + 3])
def test_ranking_orders_match_numpy(list_size):
  """Both code paths (pairwise for short lists, sorting for long) rank like lexsort."""
  rng = np.random.default_rng(12)
  keys = rng.integers(0, 4, size=(5, list_size)).astype(np.float32)  # Many ties.
  where = rng.uniform(size=keys.shape) < 0.8
  values = rng.uniform(size=keys.shape).astype(np.float32)
  index = np.arange(list_size)
  expected_ranks, expected_sorted, expected_products = [], [], []
  for k, m, v in zip(keys, where, values):
    order = np.lexsort((index, -np.where(m, k, 0), ~m))
    rank = np.empty(list_size, int)
    rank[order] = index + 1
    expected_ranks.append(rank)
    expected_sorted.append(v[order])
    reach = np.concatenate([[1.0], np.cumprod(v[order])[:-1]])
    expected_products.append(reach[rank - 1])
  np.testing.assert_array_equal(ru.ranks(keys, where), expected_ranks)
  np.testing.assert_array_equal(ru.sort_by(keys, [values], where)[0], expected_sorted)
  np.testing.assert_allclose(ru.product_ahead(keys, values, where), expected_products, rtol=1e-5)


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_signature(name):
  params = inspect.signature(metrics.get_metric(name)).parameters
  assert list(params)[:2] == ["scores", "labels"]
  for keyword, default in (
    ("where", None),
    ("weights", None),
    ("topn", None),
    ("reduce_fn", jnp.mean),
    ("no_relevant", "exclude"),
  ):
    assert params[keyword].kind is inspect.Parameter.KEYWORD_ONLY
    assert params[keyword].default == default
