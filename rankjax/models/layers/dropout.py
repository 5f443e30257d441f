"""Dropout whose masks cost a few integer operations per element, inside the kernel that uses them.

`flax.linen.Dropout` draws a uniform float per element from the step's PRNG key. On GPU, XLA
computes jax's default threefry bits inside the fusion that applies the mask, at about 100 integer
operations per element; "rbg" keys lower to XLA's RngBitGenerator, whose bits XLA writes to memory
and reads back through transposes (about 1.7 GB more traffic per BERT-base layer at 16 x 32 x 128
tokens). Both were measured on the PTX and HLO of the step compiled for an H200
(`tools/benchmarks/gpu_compile_report.py`).

`Dropout(masks="hash")` draws two 32-bit seeds per call from the same PRNG key and derives each
element's bit from its flat index with two keyed rounds of the PCG hash (Jarzynski and Olano,
"Hash Functions for GPU Rendering", JCGT 2020), fused into the kernels that apply it: 34-46
instructions per element there against about 100 for threefry, and the backward recomputes the
masks rather than reading stored ones. Masks are deterministic in the key, differ between keys
and between elements (tests/models/test_dropout.py checks the rate and pairwise independence), and
keep a fraction `1 - rate` (to 2^-32) scaled by 1 / (1 - rate), as `nn.Dropout`. `masks="prng"` is
`nn.Dropout`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from rankjax import registry


def _pcg(x):
  """The PCG-RXS-M-XS output permutation of an LCG step: a bijection on uint32."""
  x = x * jnp.uint32(747796405) + jnp.uint32(2891336453)
  x = ((x >> ((x >> 28) + jnp.uint32(4))) ^ x) * jnp.uint32(277803737)
  return (x >> 22) ^ x


def keyed_hash(index: jax.Array, seeds: jax.Array) -> jax.Array:
  """pcg(pcg(index ^ seeds[0]) ^ seeds[1]). Two rounds: with one, pcg(index ^ s0) ^ s1, any two
  seed pairs would give the same bits at indices permuted by s0 ^ s0', up to a constant xor."""
  return _pcg(_pcg(index ^ seeds[0]) ^ seeds[1])


def hash_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """uint32 bits of `shape` from the flat element index and two seeds drawn from `key`.

  >>> hash_bits(jax.random.key(0), (4,)).dtype
  dtype('uint32')
  """
  size = math.prod(shape)
  if size >= 2**32:
    raise ValueError(f"hash_bits: {size} elements do not fit a uint32 index")
  index = jnp.arange(size, dtype=jnp.uint32).reshape(shape)
  return keyed_hash(index, jax.random.bits(key, (2,), jnp.uint32))


class Dropout(nn.Module):
  """Inverted dropout of `rate` with masks drawn as `MASKS[masks]` draws them: "hash" (default)
  or "prng" (`nn.Dropout`)."""

  rate: float
  masks: str = "hash"

  @nn.compact
  def __call__(self, x, *, deterministic: bool):
    return registry.lookup(MASKS, self.masks, "dropout masks")(self, x, deterministic)


# How the masks are drawn, by name: (the `Dropout` module, x, deterministic) -> x after dropout,
# each entered with `registry.register` where it is defined.
MASKS: dict[str, Callable[[Dropout, jax.Array, bool], jax.Array]] = {}


@registry.register(MASKS, "hash")
def _hash_masks(module: Dropout, x: jax.Array, deterministic: bool) -> jax.Array:
  """Bits hashed from each element's index and two seeds of the module's "dropout" key."""
  if deterministic or module.rate == 0:
    return x
  if not 0 <= module.rate < 1:
    raise ValueError(f"dropout rate {module.rate} not in [0, 1)")
  keep = hash_bits(module.make_rng("dropout"), x.shape) >= jnp.uint32(round(module.rate * 2**32))
  return jnp.where(keep, x * jnp.asarray(1 / (1 - module.rate), x.dtype), jnp.zeros((), x.dtype))


@registry.register(MASKS, "prng")
def _prng_masks(module: Dropout, x: jax.Array, deterministic: bool) -> jax.Array:
  """`nn.Dropout`, a submodule of `module` (it is the module being called)."""
  return nn.Dropout(module.rate)(x, deterministic=deterministic)
