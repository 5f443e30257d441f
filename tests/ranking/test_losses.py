"""Invariants of every registered loss, and parity with rax 0.4.0."""

import functools
import inspect

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import rax

from rankjax import registry
from rankjax.ranking import lambdaweights, losses

LOSS_NAMES = sorted(losses.LOSSES)

# rax's counterparts; approx_t12n is broken on current JAX, so ApproxNDCG is
# built from the plain metric with rax's approximate ranks (what approx_t12n does).
RAX_LOSSES = {
  "softmax": rax.softmax_loss,
  "listmle": rax.listmle_loss,
  "pairwise_logistic": rax.pairwise_logistic_loss,
  "pairwise_hinge": rax.pairwise_hinge_loss,
  "sigmoid": rax.pointwise_sigmoid_loss,
  "mse": rax.pointwise_mse_loss,
  "approx_ndcg": lambda s, y, **kw: (
    -rax.ndcg_metric(s, y, rank_fn=rax.utils.approx_ranks, cutoff_fn=rax.utils.approx_cutoff, **kw)
  ),
  "lambda": functools.partial(
    rax.pairwise_logistic_loss,
    lambdaweight_fn=functools.partial(rax.dcg_lambdaweight, normalize=True),
  ),
}
# rax's ListMLE has no per-item weights.
RAX_WITHOUT_WEIGHTS = {"listmle"}


def _batch(seed, shape=(5, 8), distinct_labels=False):
  """Random scores, graded labels, weights and a mask with one fully masked list."""
  rng = np.random.default_rng(seed)
  scores = rng.normal(size=shape).astype(np.float32)
  if distinct_labels:
    labels = np.stack([rng.permutation(shape[-1]) for _ in range(shape[0])]).astype(np.float32) / 2
  else:
    labels = rng.integers(0, 5, size=shape).astype(np.float32)
  weights = rng.uniform(0.5, 2.0, size=shape).astype(np.float32)
  where = rng.uniform(size=shape) < 0.7
  where[1] = False
  return jnp.asarray(scores), jnp.asarray(labels), jnp.asarray(weights), jnp.asarray(where)


def _labels_for(name, labels):
  # The sigmoid loss takes probabilities; everything else graded labels.
  return labels / 4.0 if name == "sigmoid" else labels


def test_every_loss_compared_with_rax_is_registered():
  assert set(RAX_LOSSES) <= set(losses.LOSSES)


def test_get_loss_unknown_lists_known_names():
  with pytest.raises(KeyError, match="unknown loss 'nope'.*approx_ndcg.*softmax"):
    losses.get_loss("nope")
  with pytest.raises(registry.UnknownName, match="unknown loss 'nope'"):
    losses.get_loss({"name": "nope"})


@pytest.mark.parametrize(
  "name,use_weights",
  [
    (name, use_weights)
    for name in sorted(RAX_LOSSES)
    for use_weights in (False, True)
    if not (use_weights and name in RAX_WITHOUT_WEIGHTS)
  ],
)
@pytest.mark.parametrize("reduce_fn", [jnp.mean, jnp.sum, None], ids=["mean", "sum", "none"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_rax(name, use_weights, reduce_fn, seed):
  scores, labels, weights, where = _batch(seed)
  labels = _labels_for(name, labels)
  kwargs = {"where": where, "reduce_fn": reduce_fn}
  if use_weights:
    kwargs["weights"] = weights
  ours = losses.get_loss(name)(scores, labels, **kwargs)
  theirs = RAX_LOSSES[name](scores, labels, **kwargs)
  np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


# rax's counterparts of `lambdaweights.LAMBDAWEIGHTS`, with normalize=True.
RAX_LAMBDAWEIGHTS = {"lambdarank": rax.dcg_lambdaweight, "ndcg2": rax.dcg2_lambdaweight}


@pytest.mark.parametrize("name", sorted(RAX_LAMBDAWEIGHTS))
@pytest.mark.parametrize("topn", [None, 3])
def test_lambdaweights_match_rax(name, topn):
  scores, labels, weights, where = _batch(2)
  ours = lambdaweights.LAMBDAWEIGHTS[name](scores, labels, where=where, weights=weights, topn=topn)
  theirs = RAX_LAMBDAWEIGHTS[name](
    scores, labels, where=where, weights=weights, topn=topn, normalize=True
  )
  np.testing.assert_allclose(ours.reshape(theirs.shape), theirs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", sorted(lambdaweights.LAMBDAWEIGHTS))
def test_lambdaweights_are_symmetric_and_zero_off_the_mask(name):
  scores, labels, weights, where = _batch(12)
  out = lambdaweights.LAMBDAWEIGHTS[name](scores, labels, where=where, weights=weights, topn=4)
  np.testing.assert_array_equal(out, jnp.swapaxes(out, -1, -2))
  np.testing.assert_array_equal(jnp.where(where[..., :, None] & where[..., None, :], 0.0, out), 0)


@pytest.mark.parametrize("lambdaweight", sorted(RAX_LAMBDAWEIGHTS))
@pytest.mark.parametrize("topn", [None, 3])
@pytest.mark.parametrize("spec_type", [dict, ml_collections.ConfigDict])
def test_lambda_options_from_a_spec_match_rax(lambdaweight, topn, spec_type):
  scores, labels, weights, where = _batch(2)
  spec = spec_type({"name": "lambda", "lambdaweight": lambdaweight, "topn": topn})
  ours = losses.get_loss(spec)(scores, labels, where=where, weights=weights)
  theirs = rax.pairwise_logistic_loss(
    scores,
    labels,
    where=where,
    weights=weights,
    lambdaweight_fn=functools.partial(RAX_LAMBDAWEIGHTS[lambdaweight], normalize=True, topn=topn),
  )
  np.testing.assert_allclose(ours, theirs, rtol=1e-5)
  direct = losses.lambda_loss(
    scores, labels, where=where, weights=weights, lambdaweight=lambdaweight, topn=topn
  )
  np.testing.assert_array_equal(ours, direct)


def test_lambda_takes_a_lambdaweight_function():
  scores, labels, weights, where = _batch(13)
  kwargs = {"where": where, "weights": weights, "topn": 5}
  np.testing.assert_array_equal(
    losses.lambda_loss(scores, labels, lambdaweight=lambdaweights.dcg2_lambdaweight, **kwargs),
    losses.lambda_loss(scores, labels, lambdaweight="ndcg2", **kwargs),
  )


def test_lambda_rejects_unknown_weighting():
  with pytest.raises(registry.UnknownName, match="unknown lambdaweight 'dcg3'.*ndcg2"):
    losses.lambda_loss(jnp.zeros(3), jnp.zeros(3), lambdaweight="dcg3")
  with pytest.raises(registry.UnknownName, match="unknown lambdaweight 'dcg3'"):
    losses.get_loss({"name": "lambda", "lambdaweight": "dcg3"})(jnp.zeros(3), jnp.zeros(3))


def test_get_loss_binds_options():
  scores, labels, _, where = _batch(14)
  sharp = losses.get_loss({"name": "approx_ndcg", "temperature": 0.1})(scores, labels, where=where)
  np.testing.assert_array_equal(
    sharp, losses.approx_ndcg_loss(scores, labels, where=where, temperature=0.1)
  )
  assert sharp != losses.get_loss("approx_ndcg")(scores, labels, where=where)
  assert losses.get_loss({"name": "softmax"}) is losses.softmax_loss


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_options_are_keyword_only_parameters_with_defaults(name):
  for option in losses.loss_options(losses.LOSSES[name]).values():
    assert option.default is not inspect.Parameter.empty, (name, option)


def test_get_loss_errors_name_what_is_wrong():
  with pytest.raises(
    ValueError,
    match=r"loss 'lambda' has no option\(s\) \['temprature'\]; "
    "its options: lambdaweight, topn, gain_fn",
  ):
    losses.get_loss({"name": "lambda", "temprature": 2.0})
  with pytest.raises(ValueError, match="needs a 'name'.*softmax"):
    losses.get_loss({"topn": 3})
  with pytest.raises(registry.UnknownName, match="unknown loss 'lamda'"):
    losses.get_loss({"name": "lamda"})
  with pytest.raises(TypeError, match="a name or a mapping"):
    losses.get_loss(3)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_masked_items_are_ignored(name):
  loss_fn = jax.jit(jax.value_and_grad(losses.get_loss(name)), static_argnames="reduce_fn")
  scores, labels, weights, where = _batch(3)
  labels = _labels_for(name, labels)
  value, grad = loss_fn(scores, labels, where=where, weights=weights)
  rng = np.random.default_rng(4)
  noise = jnp.asarray(rng.normal(size=scores.shape) * 100, jnp.float32)
  other_value, other_grad = loss_fn(
    jnp.where(where, scores, noise),
    jnp.where(where, labels, jnp.abs(noise)),
    where=where,
    weights=jnp.where(where, weights, jnp.abs(noise)),
  )
  np.testing.assert_allclose(value, other_value, rtol=1e-6)
  np.testing.assert_allclose(grad, other_grad, rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(jnp.where(where, 0.0, grad), 0.0)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_all_masked_lists(name):
  loss_fn = losses.get_loss(name)
  scores, labels, weights, where = _batch(5)
  labels = _labels_for(name, labels)
  nothing = jnp.zeros_like(where)
  for reduce_fn in (jnp.mean, jnp.sum):
    value, grad = jax.value_and_grad(loss_fn)(
      scores, labels, where=nothing, weights=weights, reduce_fn=reduce_fn
    )
    assert value == 0.0
    np.testing.assert_array_equal(grad, 0.0)
  # Within a batch, a fully masked list (row 1) adds nothing and gets no gradient.
  grad = jax.grad(loss_fn)(scores, labels, where=where, reduce_fn=jnp.sum)
  assert np.all(np.isfinite(grad))
  np.testing.assert_array_equal(grad[1], 0.0)
  unreduced = loss_fn(scores, labels, where=where, reduce_fn=None)
  np.testing.assert_array_equal(unreduced[1], 0.0)


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("magnitude", [1e4, -1e4])
def test_extreme_scores_stay_finite(name, magnitude):
  loss_fn = losses.get_loss(name)
  scores, labels, weights, where = _batch(6)
  labels = _labels_for(name, labels)
  signs = jnp.where(jnp.arange(scores.shape[-1]) % 2 == 0, 1.0, -0.5)
  scores = magnitude * signs * jnp.ones_like(scores)
  value, grad = jax.value_and_grad(loss_fn)(scores, labels, where=where, weights=weights)
  assert np.isfinite(value)
  assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_vmap_equals_loop(name):
  loss_fn = losses.get_loss(name)
  scores, labels, weights, where = _batch(7)
  labels = _labels_for(name, labels)
  per_list = functools.partial(loss_fn, reduce_fn=jnp.sum)
  vmapped = jax.vmap(lambda s, y, w, m: per_list(s, y, weights=w, where=m))(
    scores, labels, weights, where
  )
  looped = [
    per_list(s, y, weights=w, where=m) for s, y, w, m in zip(scores, labels, weights, where)
  ]
  np.testing.assert_allclose(vmapped, np.stack(looped), rtol=1e-6)
  np.testing.assert_allclose(
    jnp.sum(vmapped), per_list(scores, labels, weights=weights, where=where), rtol=1e-5
  )


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_joint_permutation_changes_nothing(name):
  loss_fn = jax.jit(jax.value_and_grad(losses.get_loss(name)))
  # Distinct labels: ListMLE orders equal labels by list position.
  scores, labels, weights, where = _batch(8, distinct_labels=True)
  labels = _labels_for(name, labels)
  perm = np.random.default_rng(9).permutation(scores.shape[-1])
  value, grad = loss_fn(scores, labels, where=where, weights=weights)
  value_p, grad_p = loss_fn(
    scores[:, perm], labels[:, perm], where=where[:, perm], weights=weights[:, perm]
  )
  np.testing.assert_allclose(value, value_p, rtol=1e-5)
  np.testing.assert_allclose(grad[:, perm], grad_p, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_unit_weights_equal_no_weights(name):
  loss_fn = losses.get_loss(name)
  scores, labels, _, where = _batch(10)
  labels = _labels_for(name, labels)
  np.testing.assert_allclose(
    loss_fn(scores, labels, where=where, weights=jnp.ones_like(scores)),
    loss_fn(scores, labels, where=where),
    rtol=1e-6,
  )


@pytest.mark.parametrize("name", ["sigmoid", "mse"])
def test_pointwise_weights_scale_terms(name):
  loss_fn = losses.get_loss(name)
  scores, labels, weights, where = _batch(11)
  labels = _labels_for(name, labels)
  np.testing.assert_allclose(
    loss_fn(scores, labels, where=where, weights=weights, reduce_fn=None),
    weights * loss_fn(scores, labels, where=where, reduce_fn=None),
    rtol=1e-6,
  )


def test_listmle_weights_scale_positions():
  # A weight of 0 on the top-labelled item drops exactly its Plackett-Luce term.
  scores, labels = jnp.array([0.3, -1.0, 2.0]), jnp.array([2.0, 0.0, 1.0])
  full = losses.listmle_loss(scores, labels)
  first_term = jax.nn.logsumexp(scores) - scores[0]
  np.testing.assert_allclose(
    losses.listmle_loss(scores, labels, weights=jnp.array([0.0, 1.0, 1.0])),
    full - first_term,
    rtol=1e-6,
  )


def test_softmax_gradient_is_softmax_minus_labels():
  scores, labels = jnp.array([0.5, -1.0, 2.0]), jnp.array([0.0, 1.0, 0.0])
  np.testing.assert_allclose(
    jax.grad(losses.softmax_loss)(scores, labels), jax.nn.softmax(scores) - labels, rtol=1e-6
  )


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_signature_is_raxs(name):
  params = inspect.signature(losses.get_loss(name)).parameters
  assert list(params)[:2] == ["scores", "labels"]
  for keyword, default in (("where", None), ("weights", None), ("reduce_fn", jnp.mean)):
    assert params[keyword].kind is inspect.Parameter.KEYWORD_ONLY
    assert params[keyword].default is default
