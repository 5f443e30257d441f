"""A Llama-family causal LM in Flax linen: RMSNorm, RoPE, grouped-query attention, SwiGLU.

Written for scoring: one forward pass over right-padded token batches returns the final hidden
states and every layer's keys and values, so a shared prompt prefix can be run once and its
keys/values reused by many continuations (`prefix_kv`). Generation (`llama_decode`) instead passes a
fixed-size KV cache and a `cache_index`: the new keys/values are written into it in place.

Layers are an `nn.scan` over one `Block`, so parameters are stacked on a leading layer axis
(`params["layers"][...]["kernel"]` is [num_layers, in, out]) and compile time does not grow with
depth.
Dense kernels are [in, out]; RoPE uses the "rotate half" layout of the Hugging Face checkpoints
(GGUF files store q/k permuted for llama.cpp's interleaved layout; `gguf_weights` undoes that).

Shapes: B batch, T tokens, P prefix tokens, S = P + T keys (or cache slots), L layers, K kv heads,
D head dim.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from rankjax import registry

_NEG = -1e30  # masked attention logit: finite, so a fully masked (padding) row gives no NaN


def _auto_attention(dtype) -> str:
  """cuDNN on GPU for half precision, else XLA."""
  half = jnp.dtype(dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
  return "cudnn" if half and jax.default_backend() == "gpu" else "xla"


# `LlamaConfig.attention` -> (compute dtype) -> the implementation it runs, "xla" or "cudnn".
ATTENTION = {"auto": _auto_attention, "xla": lambda dtype: "xla", "cudnn": lambda dtype: "cudnn"}


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
  """Architecture of a Llama-family model (SmolLM2, Llama 2/3, TinyLlama, ...)."""

  vocab_size: int
  hidden_size: int
  intermediate_size: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  rope_theta: float = 10000.0
  rms_eps: float = 1e-5
  tie_embeddings: bool = True
  dtype: Any = jnp.float32  # compute dtype; parameters stay as loaded
  # "xla": einsum attention, any dtype and device. "cudnn": cuDNN flash attention through
  # `jax.nn.dot_product_attention` (GPU, bf16/fp16; never materialises the [T, S] logits); with
  # mask=None it runs as two unmasked kernels merged by log-sum-exp (`prefix_attention`; 8% faster
  # than passing the causal mask as a bias on an H200), with a mask the mask goes in as a bias.
  # "auto": cuDNN on GPU for half precision, else XLA.
  attention: str = "auto"

  def __post_init__(self):
    registry.lookup(ATTENTION, self.attention, "attention")

  def attention_impl(self) -> str:
    """The attention implementation `attention` resolves to on this backend and dtype."""
    return ATTENTION[self.attention](self.dtype)


def rope(x: jax.Array, positions: jax.Array, theta: float) -> jax.Array:
  """Rotary position embedding, "rotate half" layout.

  For pair (x_i, x_{i+D/2}) at position p and frequency w_i = theta^(-2i/D):
  (x_i cos(p w_i) - x_{i+D/2} sin(p w_i), x_{i+D/2} cos(p w_i) + x_i sin(p w_i)).

  Args:
    x: [B, T, H, D].
    positions: int [B, T].
    theta: the RoPE base (1e4 for Llama 2, 1e5 for SmolLM2, 5e5 for Llama 3).

  >>> x = jnp.ones((1, 2, 1, 4))
  >>> bool(jnp.allclose(rope(x, jnp.zeros((1, 2), jnp.int32), 1e4), x))
  True
  """
  d = x.shape[-1]
  inv_freq = theta ** (-jnp.arange(0, d, 2, dtype=jnp.float32) / d)
  angles = positions[..., None].astype(jnp.float32) * inv_freq  # [B, T, D/2]
  cos = jnp.cos(angles)[:, :, None, :]
  sin = jnp.sin(angles)[:, :, None, :]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1).astype(x.dtype)


class RMSNorm(nn.Module):
  """y = x / sqrt(mean(x^2) + eps) * scale, computed in float32."""

  eps: float
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, -1, keepdims=True) + self.eps)
    return (y * scale).astype(self.dtype)


class KVCache(NamedTuple):
  """A fixed-size KV cache being decoded into, carried through the layer scan.

  keys, values: [L, B, S, K, D], every layer's, updated in place layer by layer.
  layer: int scalar, the layer the carrying `Block` is at.
  index: int scalar, the slot this call's first token is written to (the same for every row).
  """

  keys: jax.Array
  values: jax.Array
  layer: jax.Array
  index: jax.Array


class Attention(nn.Module):
  """Causal grouped-query attention over [prefix keys; own keys], or over a KV cache it writes."""

  config: LlamaConfig

  @nn.compact
  def __call__(self, x, prefix_kv, positions, mask, cache=None):
    """x [B, T, E]; positions [B, T]; prefix_kv and mask: see `Llama.__call__`; cache: a `KVCache`
    to decode into, in place of prefix_kv.

    Returns (out [B, T, E], own (keys, values) each [B, T, K, D]), or with `cache` (out, the
    updated cache).
    """
    c = self.config
    b, t, _ = x.shape
    dense = lambda n, name: nn.Dense(n, use_bias=False, dtype=c.dtype, name=name)
    q = dense(c.num_heads * c.head_dim, "q")(x).reshape(b, t, c.num_heads, c.head_dim)
    k = dense(c.num_kv_heads * c.head_dim, "k")(x).reshape(b, t, c.num_kv_heads, c.head_dim)
    v = dense(c.num_kv_heads * c.head_dim, "v")(x).reshape(b, t, c.num_kv_heads, c.head_dim)
    q = rope(q, positions, c.rope_theta)
    k = rope(k, positions, c.rope_theta)
    impl = c.attention_impl()
    if cache is not None:
      # Decode into a cache: own keys/values overwrite their slots of this layer in place (the
      # cache is the scan's carry; no concatenated copy of it per step), then the mask picks the
      # live slots.
      write = lambda full, new: jax.lax.dynamic_update_slice(
        full, new[None].astype(full.dtype), (cache.layer, 0, cache.index, 0, 0)
      )
      cache = cache._replace(keys=write(cache.keys, k), values=write(cache.values, v))
      read = lambda full: jax.lax.dynamic_index_in_dim(full, cache.layer, 0, keepdims=False)
      out = masked_attention(q, read(cache.keys), read(cache.values), mask, impl)
      return dense(c.hidden_size, "o")(out), cache
    # Continue after a prefix: keys are [prefix; own], and only own keys/values are returned.
    pk, pv = prefix_kv
    p = pk.shape[1]
    pk = jnp.broadcast_to(pk, (b,) + pk.shape[1:]).astype(k.dtype)
    pv = jnp.broadcast_to(pv, (b,) + pv.shape[1:]).astype(v.dtype)
    if mask is None and impl == "cudnn":
      out = prefix_attention(q, k, v, pk, pv, implementation="cudnn").reshape(b, t, -1)
    else:
      if mask is None:
        mask = prefix_causal_mask(t, p)[None]
      out = masked_attention(
        q, jnp.concatenate([pk, k], 1), jnp.concatenate([pv, v], 1), mask, impl
      )
    return dense(c.hidden_size, "o")(out), (k, v)


def masked_attention(q, keys, values, mask, implementation: str):
  """Grouped-query attention of q [B, T, H, D] over keys/values [B, S, K, D] where mask
  [B|1, T, S] is True; "xla" einsums or "cudnn" fused attention with the mask as a bias.

  Returns [B, T, H * D].
  """
  b, t, h, d = q.shape
  if implementation == "cudnn":
    out = jax.nn.dot_product_attention(q, keys, values, mask=mask[:, None], implementation="cudnn")
    return out.reshape(b, t, h * d)
  kv_heads = keys.shape[2]
  q = q.reshape(b, t, kv_heads, h // kv_heads, d)
  logits = jnp.einsum("btkgd,bskd->bkgts", q, keys, preferred_element_type=jnp.float32)
  logits = logits / jnp.sqrt(jnp.float32(d))
  logits = jnp.where(mask[:, None, None], logits, _NEG)
  probs = jax.nn.softmax(logits, axis=-1).astype(q.dtype)
  return jnp.einsum("bkgts,bskd->btkgd", probs, values).reshape(b, t, h * d)


def prefix_attention(q, k, v, pk, pv, implementation: str):
  """Causal attention of q over [prefix keys; own keys] with no mask tensor.

  Two fused-attention calls: q over the prefix (every prefix key visible) and q over its own keys
  (causal, aligned at 0), merged by their log-sum-exps: softmax over the union is the two partial
  softmaxes weighted by exp(lse_part - lse_union). Shapes as in `Attention` ([B, T|P, heads, D]).
  """
  attend = lambda keys, values, **kw: jax.nn.dot_product_attention(
    q, keys, values, implementation=implementation, return_residual=True, **kw
  )
  own, own_lse = attend(k, v, is_causal=True)
  if pk.shape[1] == 0:
    return own
  pre, pre_lse = attend(pk, pv)
  top = jnp.maximum(own_lse, pre_lse)
  w_own = jnp.exp(own_lse - top)[..., None]
  w_pre = jnp.exp(pre_lse - top)[..., None]
  mixed = (own.astype(jnp.float32) * w_own + pre.astype(jnp.float32) * w_pre) / (w_own + w_pre)
  return mixed.astype(q.dtype)


class Mlp(nn.Module):
  """SwiGLU: down(silu(gate(x)) * up(x))."""

  config: LlamaConfig

  @nn.compact
  def __call__(self, x):
    c = self.config
    dense = lambda n, name: nn.Dense(n, use_bias=False, dtype=c.dtype, name=name)
    h = nn.silu(dense(c.intermediate_size, "gate")(x)) * dense(c.intermediate_size, "up")(x)
    return dense(c.hidden_size, "down")(h)


class Block(nn.Module):
  """Pre-norm decoder layer, in the (carry, scanned input) form that `nn.scan` expects.

  The carry is (hidden, cache): cache None to continue after this layer's scanned `prefix_kv`
  (returned as the scanned output: this layer's own keys/values), or the `KVCache` being decoded
  into (prefix_kv None, no scanned output).
  """

  config: LlamaConfig

  @nn.compact
  def __call__(self, carry, prefix_kv, positions, mask):
    c = self.config
    x, cache = carry
    h, kv = Attention(c, name="attn")(
      RMSNorm(c.rms_eps, c.dtype, name="attn_norm")(x), prefix_kv, positions, mask, cache
    )
    x = x + h
    x = x + Mlp(c, name="mlp")(RMSNorm(c.rms_eps, c.dtype, name="mlp_norm")(x))
    if cache is None:
      return (x, None), kv
    return (x, kv._replace(layer=kv.layer + 1)), None


class Llama(nn.Module):
  """The decoder stack. `__call__` gives hidden states and keys/values; `logits` projects them."""

  config: LlamaConfig

  def setup(self):
    c = self.config
    self.embed = nn.Embed(c.vocab_size, c.hidden_size, dtype=c.dtype, name="embed")
    self.layers = nn.scan(
      Block,
      variable_axes={"params": 0},
      split_rngs={"params": True},
      in_axes=(0, nn.broadcast, nn.broadcast),
      length=c.num_layers,
    )(c, name="layers")
    self.final_norm = RMSNorm(c.rms_eps, c.dtype, name="final_norm")
    if not c.tie_embeddings:
      self.lm_head = nn.Dense(c.vocab_size, use_bias=False, dtype=c.dtype, name="lm_head")

  def __call__(self, tokens, positions, mask, prefix_kv=None, cache_index=None):
    """Runs the stack, either continuing after a prefix or (with `cache_index`) decoding into a
    fixed-size KV cache.

    Args:
      tokens: int [B, T].
      positions: int [B, T], absolute positions (P + t after a prefix of P tokens).
      mask: bool [B, T, P + T], which keys each query token may attend to (causal and valid); or
        None for plain causal attention after the prefix (`prefix_causal_mask`), for right-padded
        rows whose outputs past their length are never read: cheaper, one mask for the batch.
        With `cache_index`: bool [B, T, S] over the cache slots, this call's own included.
      prefix_kv: optional (keys, values), each [L, B|1, P, K, D], from an earlier call; with
        `cache_index`, the cache, each [L, B, S, K, D].
      cache_index: optional int scalar: write this call's keys/values into cache slots
        cache_index + t of every row and attend over the updated cache.

    Returns:
      (hidden [B, T, E] after the final norm, (keys, values) each [L, B, T, K, D], or with
      `cache_index` the updated cache, each [L, B, S, K, D]).
    """
    c = self.config
    if cache_index is not None and (prefix_kv is None or mask is None):
      raise ValueError("decoding into a cache (cache_index) needs the cache (prefix_kv) and a mask")
    if prefix_kv is None:
      empty = jnp.zeros((c.num_layers, 1, 0, c.num_kv_heads, c.head_dim), c.dtype)
      prefix_kv = (empty, empty)
    x = self.embed(tokens)
    if cache_index is None:
      (x, _), kv = self.layers((x, None), prefix_kv, positions, mask)
      return self.final_norm(x), kv
    cache = KVCache(*prefix_kv, layer=jnp.int32(0), index=jnp.asarray(cache_index, jnp.int32))
    (x, cache), _ = self.layers((x, cache), None, positions, mask)
    return self.final_norm(x), (cache.keys, cache.values)

  def logits(self, hidden):
    """[..., E] -> [..., vocab] float32 logits."""
    if self.config.tie_embeddings:
      return self.embed.attend(hidden).astype(jnp.float32)
    return self.lm_head(hidden).astype(jnp.float32)


def prefix_causal_mask(num_tokens: int, prefix_len: int = 0) -> jax.Array:
  """bool [T, P + T]: token t sees every prefix key and its own keys s <= t.

  >>> prefix_causal_mask(2, 1).astype(int)
  Array([[1, 1, 0],
         [1, 1, 1]], dtype=int32)
  """
  return (
    jnp.arange(prefix_len + num_tokens)[None, :] <= jnp.arange(num_tokens)[:, None] + prefix_len
  )


def causal_mask(lengths: jax.Array, num_tokens: int, prefix_len: int = 0) -> jax.Array:
  """bool [B, T, P + T]: token t sees all P prefix keys and own keys s <= t, s < length.

  >>> causal_mask(jnp.array([2]), 3).astype(int)[0]
  Array([[1, 0, 0],
         [1, 1, 0],
         [0, 0, 0]], dtype=int32)
  """
  t = jnp.arange(num_tokens)
  valid = t[None, :] < lengths[:, None]  # [B, T]
  own = (t[None, :, None] >= t[None, None, :]) & valid[:, :, None] & valid[:, None, :]
  prefix = jnp.broadcast_to(valid[:, :, None], own.shape[:2] + (prefix_len,))
  return jnp.concatenate([prefix, own], -1)


def forward_logits(model: Llama, params, tokens: jax.Array, lengths: jax.Array) -> jax.Array:
  """Full-sequence logits float32 [B, T, vocab] of right-padded tokens [B, T] (reference path)."""
  b, t = tokens.shape
  positions = jnp.broadcast_to(jnp.arange(t), (b, t))
  hidden, _ = model.apply(params, tokens, positions, causal_mask(lengths, t))
  return model.apply(params, hidden, method=Llama.logits)
