"""Greedy generation for `llm.llama` with a fixed-size KV cache, one jitted program.

`make_greedy_fn` prefills a right-padded batch of prompts (optionally continuing a shared prefix's
keys/values, as the scoring path does), then decodes one token per row per step inside a
`jax.lax.while_loop` that ends when every row has produced a stop token or `max_new_tokens` are
out. A decode step is a one-token `Llama.__call__` with the cache and a `cache_index`: the model
writes the token's key/value into the cache in place and attends over it.

Cache layout per row, S = P + T + N slots: [shared prefix P | prompt T (valid < length) | generated
N]. Every row writes its i-th generated token's key/value to slot P + T + i (one slot for the whole
batch: a `dynamic_update_slice`, no scatter), and its RoPE position is P + length + i, so padding
between a row's prompt and its generated tokens is masked out and never shifts positions. Shapes
are static: one compile per (batch, prompt width, max_new_tokens).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import jax
import jax.numpy as jnp

from rankjax.annotate.llm import llama


def make_greedy_fn(model: llama.Llama, stop_ids: Iterable[int]):
  """jit(params, prefix_kv, tokens [B, T], lengths [B], max_new_tokens) -> (new [B, N], counts [B]).

  Args:
    model: the Llama module.
    stop_ids: token ids that end a row (EOS, end of turn); may be empty.

  The function's `prefix_kv` is (keys, values), each [L, 1|B, P, K, D] (P may be 0), and `tokens`
  continue it; `max_new_tokens` (N, static) is the most tokens generated per row. Row b's output
  is `new[b, :counts[b]]`, its stop token included when it produced one; later entries are 0. Rows
  of length 0 are batch padding: count 0, and they do not keep the loop going.
  """
  stops = jnp.asarray(sorted(set(stop_ids)), jnp.int32)

  def is_stop(tok):
    return jnp.isin(tok, stops) if stops.size else jnp.zeros(tok.shape, bool)

  def next_token(params, hidden):
    return jnp.argmax(model.apply(params, hidden, method=llama.Llama.logits), -1).astype(jnp.int32)

  @functools.partial(jax.jit, static_argnames="max_new_tokens")
  def generate(params, prefix_kv, tokens, lengths, max_new_tokens):
    b, t = tokens.shape
    n = max_new_tokens
    pk, pv = prefix_kv
    p = pk.shape[2]
    hidden, (k, v) = model.apply(
      params,
      tokens,
      p + jnp.broadcast_to(jnp.arange(t), (b, t)),
      llama.causal_mask(lengths, t, p),
      prefix_kv=prefix_kv,
    )
    first = next_token(params, hidden[jnp.arange(b), jnp.maximum(lengths - 1, 0)])

    def cache_of(prefix, own):
      prefix = jnp.broadcast_to(prefix, own.shape[:2] + prefix.shape[2:]).astype(own.dtype)
      room = jnp.zeros(own.shape[:2] + (n,) + own.shape[3:], own.dtype)
      return jnp.concatenate([prefix, own, room], 2)

    slot = jnp.arange(p + t + n)
    prompt_valid = (slot < p) | ((slot >= p) & (slot < p + lengths[:, None]))  # [B, S]

    def cond(state):
      i, _, _, done = state
      return (i < n - 1) & ~jnp.all(done)

    def step(state):
      i, out, (ck, cv), done = state
      tok = out[:, i]
      mask = (prompt_valid | ((slot >= p + t) & (slot <= p + t + i)))[:, None]  # own key included
      hidden, (ck, cv) = model.apply(
        params,
        tok[:, None],
        (p + lengths + i)[:, None],
        mask,
        prefix_kv=(ck, cv),
        cache_index=p + t + i,
      )
      nxt = jnp.where(done, 0, next_token(params, hidden[:, 0]))
      return i + 1, out.at[:, i + 1].set(nxt), (ck, cv), done | is_stop(nxt)

    padding = lengths == 0
    out = jnp.zeros((b, n), jnp.int32).at[:, 0].set(jnp.where(padding, 0, first))
    state = (jnp.int32(0), out, (cache_of(pk, k), cache_of(pv, v)), is_stop(first) | padding)
    _, out, _, _ = jax.lax.while_loop(cond, step, state)
    stopped = is_stop(out)
    counts = jnp.where(stopped.any(1), jnp.argmax(stopped, 1) + 1, n)
    return out, jnp.where(padding, 0, counts).astype(jnp.int32)

  return generate
