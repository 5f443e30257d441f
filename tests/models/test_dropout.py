"""Hash dropout masks: rate, independence, determinism, and the same mask in the backward pass."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rankjax.models.layers import dropout


def _mask(key, shape=(512, 1024), rate=0.1):
  x = jnp.ones(shape)
  return np.asarray(
    dropout.Dropout(rate).apply({}, x, deterministic=False, rngs={"dropout": key}) != 0
  )


def _z(observed, expected, n):
  """Standard score of a count against a binomial(n, expected)."""
  return (observed - n * expected) / np.sqrt(n * expected * (1 - expected))


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_rate_scale_and_unbiased_mean(rate):
  x = jnp.full((512, 1024), 3.0)
  y = np.asarray(
    dropout.Dropout(rate).apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)})
  )
  kept = y != 0
  assert abs(_z(kept.sum(), 1 - rate, kept.size)) < 5
  np.testing.assert_allclose(y[kept], 3.0 / (1 - rate), rtol=1e-6)
  assert abs(y.mean() - 3.0) < 5 * 3.0 * np.sqrt(rate / (1 - rate) / y.size)


def test_pairs_are_independent():
  """Joint keep frequencies of neighbours (along rows and columns), of the same element under two
  keys, and of two keys split from one, match p^2 within 5 standard scores."""
  p = 0.9
  a, b = _mask(jax.random.key(1)), _mask(jax.random.key(2))
  c, d = (_mask(k) for k in jax.random.split(jax.random.key(3)))
  pairs = {
    "next element": (a[:, :-1], a[:, 1:]),
    "next row": (a[:-1], a[1:]),
    "other key": (a, b),
    "split keys": (c, d),
    "element 2^16 on": (a.ravel()[:-65536], a.ravel()[65536:]),
  }
  for name, (u, v) in pairs.items():
    both = np.sum(u & v)
    assert abs(_z(both, p * p, u.size)) < 5, (name, both / u.size)


def test_other_seeds_are_not_the_same_bits_at_permuted_indices():
  """Seeds (s0 ^ d, s1 ^ e) against (s0, s1) at index ^ d: a single keyed round, pcg(i ^ s0) ^ s1,
  would give the same bits up to the xor with e (the top bit: identical masks, permuted); the
  second round makes them independent."""
  index = jnp.arange(1 << 20, dtype=jnp.uint32)
  seeds = jnp.array([12345, 678], jnp.uint32)
  other = seeds ^ jnp.array([1 << 10, 1], jnp.uint32)
  a = np.asarray(dropout.keyed_hash(index ^ jnp.uint32(1 << 10), seeds) >> 31)
  b = np.asarray(dropout.keyed_hash(index, other) >> 31)
  assert abs(_z(np.sum(a == b), 0.5, a.size)) < 5


def test_deterministic_in_the_key_and_off_when_deterministic():
  key = jax.random.key(7)
  np.testing.assert_array_equal(_mask(key), _mask(key))
  assert not np.array_equal(_mask(key), _mask(jax.random.key(8)))
  x = jnp.arange(12.0).reshape(3, 4)
  np.testing.assert_array_equal(dropout.Dropout(0.3).apply({}, x, deterministic=True), x)
  np.testing.assert_array_equal(
    dropout.Dropout(0.0).apply({}, x, deterministic=False, rngs={"dropout": key}), x
  )


def test_gradient_uses_the_forward_mask():
  x = jax.random.normal(jax.random.key(0), (64, 32))
  key = jax.random.key(5)
  f = lambda x: dropout.Dropout(0.25).apply({}, x, deterministic=False, rngs={"dropout": key})
  y, grad = f(x), jax.grad(lambda x: jnp.sum(f(x)))(x)
  np.testing.assert_allclose(np.asarray(grad), np.where(np.asarray(y) != 0, 1 / 0.75, 0), rtol=1e-6)


def test_prng_masks_are_flax_dropout_and_bad_settings_are_named():
  x = jnp.ones((8, 16))
  key = jax.random.key(3)

  class Wrapped(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dropout(0.5, name="Dropout_0")(x, deterministic=False)

  ours = dropout.Dropout(0.5, masks="prng").apply({}, x, deterministic=False, rngs={"dropout": key})
  theirs = Wrapped().apply({}, x, rngs={"dropout": key})
  np.testing.assert_array_equal(ours, theirs)
  with pytest.raises(ValueError, match="masks 'philox'"):
    dropout.Dropout(0.1, masks="philox").apply({}, x, deterministic=False, rngs={"dropout": key})
  with pytest.raises(ValueError, match="rate 1.5"):
    dropout.Dropout(1.5).apply({}, x, deterministic=False, rngs={"dropout": key})
