"""A BERT-family encoder (BERT, MiniLM, Chinese BERT) in flax.linen.

The module tree mirrors Hugging Face's `BertModel` (`embeddings/word_embeddings`,
`encoder/layer_<i>/attention/self/query`, `pooler/dense`, ...), so `hf_weights.torch_name` maps
every parameter onto its checkpoint tensor with no per-architecture table.

Speed: compute runs in `dtype` (bf16 on accelerators) with parameters kept in `param_dtype` (fp32
master weights); LayerNorm statistics and the attention softmax are computed in fp32. Attention is
`jax.nn.dot_product_attention` with per-sequence lengths (inputs are right-padded, token id 0 =
padding): `attention="cudnn"` is cuDNN flash attention, `"xla"` the portable path, `"auto"` picks
cuDNN on GPU for bf16/fp16 (jax's own default, `None`, always means XLA today). `remat=True`
rematerialises each layer in the backward pass (activation memory O(layers) -> O(1) layers).

Embedding gradients avoid contended scatter-adds (slow on GPU atomics): padding tokens (id 0) read
a zero vector and send no gradient into the word table (HF's `padding_idx=0` row gets none either),
segment embeddings are selects and position embeddings a slice. Looked-up rows are cast to `dtype`
after the lookup, so those gradients accumulate in `param_dtype`.

Differences from PyTorch `BertModel`: no dropout on attention probabilities (fused attention kernels
have none); hidden-state dropout is applied as in HF, with masks hashed from each element's index
by default (`dropout_masks`, `rankjax.models.layers.dropout`). Padding positions embed as zeros
rather than as the [PAD] row; their hidden states are not meaningful in either.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rankjax import registry
from rankjax.models.layers import dropout as dropout_lib


def _gelu(x):
  """Exact GELU as PyTorch computes it, x/2 (1 + erf(x/sqrt(2))).

  `nn.gelu(approximate=False)` goes through erfc, which XLA's GPU backend evaluates with both of
  its branches: about 84 float32 operations per element against about 30 for erf (PTX of a
  BERT-base step compiled for an H200, `tools/benchmarks/gpu_compile_report.py`). In float32 it
  is within 1.2e-6 of the exact function everywhere (erfc: 3.8e-7); relative error grows only in
  the negative tail, where 1 + erf cancels, as it does in PyTorch.
  """
  return 0.5 * x * (1 + jax.lax.erf(x * jnp.float32(2**-0.5)))


ACTIVATIONS = {
  "gelu": _gelu,
  "gelu_new": functools.partial(nn.gelu, approximate=True),
  "gelu_pytorch_tanh": functools.partial(nn.gelu, approximate=True),
  "relu": nn.relu,
}


def _auto_attention(dtype) -> str:
  """cuDNN on GPU for bf16/fp16, else XLA (jax's own default, None, always means XLA today)."""
  half = jnp.dtype(dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
  return "cudnn" if half and jax.default_backend() == "gpu" else "xla"


# `BertConfig.attention` -> (compute dtype) -> the `implementation` of
# `jax.nn.dot_product_attention` it runs.
ATTENTION = {"auto": _auto_attention, "xla": lambda dtype: "xla", "cudnn": lambda dtype: "cudnn"}
HF_MODEL_TYPES = ("bert",)  # BERT, MiniLM and Chinese BERT checkpoints all declare "bert".


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """Encoder shape and numerics. Defaults are BERT-base."""

  vocab_size: int = 30522
  hidden_size: int = 768
  num_layers: int = 12
  num_heads: int = 12
  intermediate_size: int = 3072
  max_positions: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_act: str = "gelu"
  dropout: float = 0.1
  initializer_range: float = 0.02
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  attention: str = "auto"
  remat: bool = False
  fused_qkv: bool = True  # one [H, 3H] matmul for query, key and value (same parameters)
  dropout_masks: str = "hash"  # `dropout.MASKS`: "hash" (cheap on GPU) or "prng" (nn.Dropout's)

  def __post_init__(self):
    if self.hidden_size % self.num_heads:
      raise ValueError(f"hidden_size {self.hidden_size} not divisible by {self.num_heads} heads")
    registry.lookup(ACTIVATIONS, self.hidden_act, "hidden_act")
    registry.lookup(ATTENTION, self.attention, "attention")
    registry.lookup(dropout_lib.MASKS, self.dropout_masks, "dropout_masks")

  @property
  def dense_params(self) -> int:
    """Parameters of all matmuls (layers and pooler), for FLOP counting: 6 x this x tokens."""
    h, f = self.hidden_size, self.intermediate_size
    return self.num_layers * (4 * h * h + 2 * h * f) + h * h


# Random-init sizes by name (`registry.lookup(SIZES, name, ...)`); `hf_config` gives a
# checkpoint's own.
SIZES = {
  "bert-base": BertConfig(),
  "minilm-l12": BertConfig(hidden_size=384, num_layers=12, intermediate_size=1536),
  "minilm-l6": BertConfig(hidden_size=384, num_layers=6, intermediate_size=1536),
  "tiny": BertConfig(
    vocab_size=512,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    intermediate_size=64,
    max_positions=64,
  ),
}


@functools.lru_cache(maxsize=16)
def hf_config(hf_dir: str) -> dict[str, Any]:
  """`BertConfig` fields read from `<hf_dir>/config.json` through transformers' config classes."""
  import transformers  # pylint: disable=g-import-not-at-top  (slow import, only for checkpoints)

  path = pathlib.Path(hf_dir) / "config.json"
  if not path.exists():
    raise FileNotFoundError(f"{path}: no config.json in the model directory")
  cfg = transformers.AutoConfig.from_pretrained(str(hf_dir), local_files_only=True)
  if cfg.model_type not in HF_MODEL_TYPES:
    raise ValueError(
      f"{path}: model_type {cfg.model_type!r} is not a supported encoder {HF_MODEL_TYPES}"
    )
  position = getattr(cfg, "position_embedding_type", "absolute")
  if position != "absolute":
    raise ValueError(f"{path}: position_embedding_type {position!r}; only 'absolute' is supported")
  return dict(
    vocab_size=cfg.vocab_size,
    hidden_size=cfg.hidden_size,
    num_layers=cfg.num_hidden_layers,
    num_heads=cfg.num_attention_heads,
    intermediate_size=cfg.intermediate_size,
    max_positions=cfg.max_position_embeddings,
    type_vocab_size=cfg.type_vocab_size,
    layer_norm_eps=cfg.layer_norm_eps,
    hidden_act=cfg.hidden_act,
    dropout=cfg.hidden_dropout_prob,
    initializer_range=cfg.initializer_range,
  )


def _dense(cfg: BertConfig, features: int, name: str) -> nn.Dense:
  return nn.Dense(
    features,
    dtype=cfg.dtype,
    param_dtype=cfg.param_dtype,
    name=name,
    kernel_init=nn.initializers.normal(cfg.initializer_range),
  )


class _DenseParams(nn.Module):
  """The kernel [in, features] and bias of an `nn.Dense` under the same names, not applied, so
  several projections can run as one matmul while checkpoints still map one tensor each."""

  cfg: BertConfig
  features: int

  @nn.compact
  def __call__(self, in_features: int):
    init = nn.initializers.normal(self.cfg.initializer_range)
    kernel = self.param("kernel", init, (in_features, self.features), self.cfg.param_dtype)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), self.cfg.param_dtype)
    return kernel, bias


class _EmbedTable(nn.Module):
  """The table of an `nn.Embed` under the same name ("embedding"), not applied."""

  cfg: BertConfig
  num_embeddings: int

  @nn.compact
  def __call__(self):
    return self.param(
      "embedding",
      nn.initializers.normal(self.cfg.initializer_range),
      (self.num_embeddings, self.cfg.hidden_size),
      self.cfg.param_dtype,
    )


def _embed_tokens(table, tokens):
  """`table[tokens]`, with zeros for padding (id 0), which also gets no gradient.

  Padding reads an out-of-bounds row in "fill" mode, so the gradient's scatter-add drops those
  updates rather than adding thousands of them into row 0 (contended atomics on GPU).

  >>> _embed_tokens(jnp.array([[1.0], [2.0], [3.0]]), jnp.array([2, 1, 0])).ravel()
  Array([3., 2., 0.], dtype=float32)
  """
  return jnp.take(
    table, jnp.where(tokens == 0, table.shape[0], tokens), axis=0, mode="fill", fill_value=0
  )


def _select_rows(table, ids):
  """`table[ids]` for a table of a few rows, by selects rather than a gather.

  A gather's gradient is a scatter-add, and with every token adding into one of two segment rows
  it serialises on GPU atomics; the selects' gradient is a masked sum per row. (A one-hot matmul
  does the same on GPU but costs 4x the gather on CPU; selects cost 2x.) Ids past the table read
  row 0.

  >>> _select_rows(jnp.array([[1.0], [2.0]]), jnp.array([1, 0, 1])).ravel()
  Array([2., 1., 2.], dtype=float32)
  """
  out = jnp.broadcast_to(table[0], ids.shape + table.shape[1:])
  for k in range(1, table.shape[0]):
    out = jnp.where((ids == k)[..., None], table[k], out)
  return out


def _layer_norm(cfg: BertConfig) -> nn.LayerNorm:
  return nn.LayerNorm(
    cfg.layer_norm_eps, dtype=cfg.dtype, param_dtype=cfg.param_dtype, name="LayerNorm"
  )


def _attention_impl(cfg: BertConfig) -> str:
  return ATTENTION[cfg.attention](cfg.dtype)


class Embeddings(nn.Module):
  """Word + position + segment embeddings, LayerNorm, dropout (HF `BertEmbeddings`)."""

  cfg: BertConfig

  @nn.compact
  def __call__(self, tokens, token_types, *, deterministic: bool):
    cfg = self.cfg
    words = _EmbedTable(cfg, cfg.vocab_size, name="word_embeddings")()
    positions = _EmbedTable(cfg, cfg.max_positions, name="position_embeddings")()
    segments = _EmbedTable(cfg, cfg.type_vocab_size, name="token_type_embeddings")()
    # Rows are cast after the lookup (same values as nn.Embed's cast-then-gather), so the
    # gradients accumulate into the tables in param_dtype, not in bf16.
    x = (
      _embed_tokens(words, tokens).astype(cfg.dtype)
      + positions[: tokens.shape[-1]].astype(cfg.dtype)
      + _select_rows(segments, token_types).astype(cfg.dtype)
    )
    x = _layer_norm(cfg)(x)
    return dropout_lib.Dropout(cfg.dropout, cfg.dropout_masks)(x, deterministic=deterministic)


class SelfAttention(nn.Module):
  """Multi-head attention over right-padded sequences of the given lengths.

  `queries=1` attends from the first position ([CLS]) only, over every key: the last layer of an
  encoder whose only output is [CLS] needs nothing else.
  """

  cfg: BertConfig

  @nn.compact
  def __call__(self, x, lengths, queries: int | None = None):
    cfg = self.cfg
    n, t, h = x.shape
    tq = t if queries is None else queries
    heads = lambda y: y.reshape(n, y.shape[1], cfg.num_heads, h // cfg.num_heads)
    if cfg.fused_qkv:
      (wq, bq), (wk, bk), (wv, bv) = (
        _DenseParams(cfg, h, name=name)(h) for name in ("query", "key", "value")
      )
      project = lambda y, w, b: (
        jnp.dot(y.astype(cfg.dtype), w.astype(cfg.dtype)) + b.astype(cfg.dtype)
      )
      if queries is None:
        q, k, v = jnp.split(
          project(x, jnp.concatenate([wq, wk, wv], 1), jnp.concatenate([bq, bk, bv])), 3, -1
        )
      else:
        q = project(x[:, :tq], wq, bq)
        k, v = jnp.split(project(x, jnp.concatenate([wk, wv], 1), jnp.concatenate([bk, bv])), 2, -1)
    else:
      q = _dense(cfg, h, "query")(x[:, :tq])
      k, v = (_dense(cfg, h, name)(x) for name in ("key", "value"))
    q, k, v = heads(q), heads(k), heads(v)
    # cuDNN's kernels are for full query blocks; a one-row query is cheap in XLA.
    impl = _attention_impl(cfg) if queries is None else "xla"
    y = jax.nn.dot_product_attention(
      q,
      k,
      v,
      query_seq_lengths=jnp.minimum(lengths, tq),
      key_value_seq_lengths=lengths,
      implementation=impl,
    )
    if impl == "cudnn":  # XLA zeroes rows past the length; make that explicit for cuDNN too
      y = jnp.where((jnp.arange(t) < lengths[:, None])[:, :, None, None], y, 0)
    return y.reshape(n, tq, h)


class Output(nn.Module):
  """Dense, dropout, residual, LayerNorm (HF `BertSelfOutput` / `BertOutput`)."""

  cfg: BertConfig

  @nn.compact
  def __call__(self, x, residual, *, deterministic: bool):
    cfg = self.cfg
    x = _dense(cfg, cfg.hidden_size, "dense")(x)
    x = dropout_lib.Dropout(cfg.dropout, cfg.dropout_masks)(x, deterministic=deterministic)
    return _layer_norm(cfg)(x + residual)


class Attention(nn.Module):
  cfg: BertConfig

  @nn.compact
  def __call__(self, x, lengths, *, deterministic: bool, queries: int | None = None):
    y = SelfAttention(self.cfg, name="self")(x, lengths, queries)
    return Output(self.cfg, name="output")(y, x[:, : y.shape[1]], deterministic=deterministic)


class Intermediate(nn.Module):
  """Dense then activation (HF `BertIntermediate`); the backward pass recomputes the activation.

  The activation runs in float32 on the biased matmul output; it is rematerialised from the
  matmul's output, the one array of the layer's widest activation that the backward keeps.
  Differentiating it as written keeps several (GELU's erf and exp terms): on GPU, about 1.1 GB
  more memory traffic per BERT-base layer at 16 x 32 x 128 tokens, for an erf that costs less to
  recompute.
  """

  cfg: BertConfig

  @nn.compact
  def __call__(self, x):
    cfg = self.cfg
    kernel, bias = _DenseParams(cfg, cfg.intermediate_size, name="dense")(x.shape[-1])
    h = jnp.dot(x.astype(cfg.dtype), kernel.astype(cfg.dtype))
    activation = ACTIVATIONS[cfg.hidden_act]
    biased_activation = lambda h, b: activation((h + b).astype(jnp.float32)).astype(cfg.dtype)
    return jax.checkpoint(biased_activation)(h, bias.astype(cfg.dtype))


class Layer(nn.Module):
  """One transformer layer (post-LayerNorm, as BERT); `queries=1`: outputs [CLS] only."""

  cfg: BertConfig
  deterministic: bool = True  # fields, not arguments, so nn.remat needs no static_argnums
  queries: int | None = None

  @nn.compact
  def __call__(self, x, lengths):
    x = Attention(self.cfg, name="attention")(
      x, lengths, deterministic=self.deterministic, queries=self.queries
    )
    y = Intermediate(self.cfg, name="intermediate")(x)
    return Output(self.cfg, name="output")(y, x, deterministic=self.deterministic)


class Encoder(nn.Module):
  """The layers; `cls_only`: the last one computes the [CLS] position only ([N, 1, H] out)."""

  cfg: BertConfig
  cls_only: bool = False

  @nn.compact
  def __call__(self, x, lengths, *, deterministic: bool):
    layer = nn.remat(Layer) if self.cfg.remat else Layer
    for i in range(self.cfg.num_layers):
      last = self.cls_only and i == self.cfg.num_layers - 1
      x = layer(self.cfg, deterministic, 1 if last else None, name=f"layer_{i}")(x, lengths)
    return x


class Pooler(nn.Module):
  """tanh(dense(hidden state of [CLS])) (HF `BertPooler`)."""

  cfg: BertConfig

  @nn.compact
  def __call__(self, hidden):
    return jnp.tanh(_dense(self.cfg, self.cfg.hidden_size, "dense")(hidden[:, 0]))


class Bert(nn.Module):
  """BERT encoder: int32 tokens [N, T] (right-padded, 0 = padding) -> hidden states [N, T, H].

  Hidden states at padding positions are not meaningful; mask them (e.g. for mean pooling).
  `pooled` (bool) also returns the pooler output [N, H]. `cls_only` (bool) returns the [CLS]
  state only, [N, 1, H], with the same values: the last layer then computes no other position
  (about 10/12 of a layer's matmuls, e.g. 7% of BERT-base's, forward and backward).

  >>> enc = Bert(SIZES["tiny"])
  >>> tokens = jnp.array([[101, 7, 8, 102, 0], [101, 9, 102, 0, 0]])
  >>> params = enc.init(jax.random.key(0), tokens, jnp.zeros_like(tokens))
  >>> enc.apply(params, tokens, jnp.zeros_like(tokens)).shape
  (2, 5, 32)
  """

  cfg: BertConfig
  pooled: bool = False
  cls_only: bool = False

  @nn.compact
  def __call__(self, tokens, token_types, *, train: bool = False):
    if tokens.shape[-1] > self.cfg.max_positions:
      raise ValueError(f"{tokens.shape[-1]} tokens > max_positions {self.cfg.max_positions}")
    # Lengths >= 1 keep fully padded rows (padding documents) finite under every kernel.
    lengths = jnp.maximum(jnp.sum(tokens != 0, axis=-1, dtype=jnp.int32), 1)
    x = Embeddings(self.cfg, name="embeddings")(tokens, token_types, deterministic=not train)
    x = Encoder(self.cfg, self.cls_only, name="encoder")(x, lengths, deterministic=not train)
    if self.pooled:
      return x, Pooler(self.cfg, name="pooler")(x)
    return x
