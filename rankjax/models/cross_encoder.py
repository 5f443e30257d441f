"""Cross-encoder ranker: a BERT-family encoder reads each (query, document) pair, a head scores it.

  scores[b, l] = w . pool(Bert(tokens[b, l], token_types[b, l])) + c,   0 where not mask[b, l]

`pool` is HF's pooler, tanh(dense(h_CLS)) (`pooling="pooler"`, as `BertForSequenceClassification`),
or the raw [CLS] state (`pooling="cls"`, for checkpoints without pooler weights). The encoder's
shape comes from `hf_dir/config.json`, or for random init from `size` (a name in `bert.SIZES`) with
optional explicit overrides. `load_pretrained` then swaps the random encoder for the checkpoint;
the head stays random.

Documents are encoded as one flat batch of B*L sequences, so memory grows with B*L*T: for long
lists use the trainer's gradient accumulation (`config.grad_accum_steps`: micro-batches of lists
in one step) and/or `remat=True`.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from rankjax import registry
from rankjax.models.layers import bert, hf_weights


@dataclasses.dataclass(frozen=True)
class Pooling:
  """How the encoder's output becomes one vector per pair: `uses_pooler` builds HF's pooler (its
  weights come from the checkpoint), `pool(encoder output)` -> [B * L, H]."""

  uses_pooler: bool
  pool: Callable[[Any], jnp.ndarray]


# `pooling` names: HF's pooler, tanh(dense(h_CLS)), or the raw [CLS] state.
POOLINGS = {
  "pooler": Pooling(True, lambda out: out[1]),
  "cls": Pooling(False, lambda out: out[:, 0]),
}

_SIZE_FIELDS = (
  "vocab_size",
  "hidden_size",
  "num_layers",
  "num_heads",
  "intermediate_size",
  "max_positions",
)


class Model(nn.Module):
  """Scores f32 [B, L] from batch["tokens"] int32 [B, L, T] (0 = padding), "token_types", "mask".

  Attributes:
    hf_dir: local Hugging Face directory (config.json + model.safetensors) giving the encoder
      shape; None for a random-init encoder of `size`.
    size: a `bert.SIZES` name ("tiny", "minilm-l6", "minilm-l12", "bert-base") when hf_dir is None.
    vocab_size, hidden_size, num_layers, num_heads, intermediate_size, max_positions: explicit
      shape overrides of `size` (random init only; with hf_dir they must agree with config.json).
    dtype: compute dtype name ("bfloat16" on accelerators); param_dtype: parameter dtype name.
    dropout: hidden and head dropout rate; None keeps the checkpoint's (or 0.1).
    remat: rematerialise each layer in the backward pass.
    attention: "auto", "xla" or "cudnn" (see `bert`).
    fused_qkv: query, key and value projections as one matmul (same parameters and values).
    dropout_masks: the encoder's dropout masks, "hash" (hashed from the element index, cheap on
      GPU) or "prng" (`nn.Dropout`'s, from the step's PRNG key); see `models.layers.dropout`.
      The head's dropout always uses `nn.Dropout`.
    pooling: a `POOLINGS` name, "pooler" or "cls".
    cls_only: the encoder's last layer computes the [CLS] position only, the one scored (same
      scores; False computes every position, as HF does, for comparison).

  >>> import jax
  >>> m = Model(size="tiny")
  >>> batch = {"tokens": jnp.array([[[101, 5, 102], [101, 6, 102]]]),
  ...          "token_types": jnp.array([[[0, 0, 0], [0, 1, 1]]]),
  ...          "mask": jnp.array([[True, False]])}
  >>> params = m.init(jax.random.key(0), batch)
  >>> m.apply(params, batch).shape
  (1, 2)
  """

  hf_dir: str | None = None
  size: str | None = None
  vocab_size: int | None = None
  hidden_size: int | None = None
  num_layers: int | None = None
  num_heads: int | None = None
  intermediate_size: int | None = None
  max_positions: int | None = None
  dtype: str = "float32"
  param_dtype: str = "float32"
  dropout: float | None = None
  remat: bool = False
  attention: str = "auto"
  fused_qkv: bool = True
  dropout_masks: str = "hash"
  pooling: str = "pooler"
  cls_only: bool = True

  def encoder_config(self) -> bert.BertConfig:
    """The encoder's `BertConfig` resolved from hf_dir or size, overrides and numerics."""
    explicit = {k: getattr(self, k) for k in _SIZE_FIELDS if getattr(self, k) is not None}
    if self.hf_dir is not None:
      if self.size is not None:
        raise ValueError(
          f"give hf_dir or size, not both (hf_dir={self.hf_dir!r}, size={self.size!r})"
        )
      fields = dict(bert.hf_config(str(self.hf_dir)))
      clash = {k: (v, fields[k]) for k, v in explicit.items() if fields[k] != v}
      if clash:
        raise ValueError(
          f"{self.hf_dir}/config.json disagrees with the model config (given, checkpoint): {clash}"
        )
    elif self.size is not None:
      size = registry.lookup(bert.SIZES, self.size, "size")
      fields = {f: getattr(size, f) for f in bert.BertConfig.__dataclass_fields__}
      fields.update(explicit)
    else:
      raise ValueError(
        "the cross-encoder needs hf_dir (a local HF model directory) or size "
        f"(one of {sorted(bert.SIZES)})"
      )
    if self.dropout is not None:
      fields["dropout"] = self.dropout
    registry.lookup(POOLINGS, self.pooling, "pooling")
    fields.update(
      dtype=jnp.dtype(self.dtype),
      param_dtype=jnp.dtype(self.param_dtype),
      remat=self.remat,
      attention=self.attention,
      fused_qkv=self.fused_qkv,
      dropout_masks=self.dropout_masks,
    )
    return bert.BertConfig(**fields)

  @nn.compact
  def __call__(self, batch: Mapping[str, Any], *, train: bool = False):
    cfg = self.encoder_config()
    tokens = jnp.asarray(batch["tokens"], jnp.int32)
    b, l, t = tokens.shape
    types = batch.get("token_types")
    types = jnp.zeros_like(tokens) if types is None else jnp.asarray(types, jnp.int32)
    flat = lambda x: x.reshape(b * l, t)
    pooling = POOLINGS[self.pooling]
    encoder = bert.Bert(cfg, pooled=pooling.uses_pooler, cls_only=self.cls_only, name="bert")
    x = pooling.pool(encoder(flat(tokens), flat(types), train=train))
    # nn.Dropout's masks here whatever dropout_masks says: hash masks on this small [B * L, H]
    # array led XLA's GPU layout assignment to transpose the encoder's activations (3.4 GB more
    # traffic per 3 BERT-base layers, `tools/benchmarks/gpu_compile_report.py`).
    x = nn.Dropout(cfg.dropout)(x, deterministic=not train)
    scores = nn.Dense(
      1,
      dtype=jnp.float32,
      param_dtype=cfg.param_dtype,
      name="classifier",
      kernel_init=nn.initializers.normal(cfg.initializer_range),
    )(x)
    return jnp.where(batch["mask"], scores.reshape(b, l).astype(jnp.float32), 0.0)


def load_pretrained(params: Mapping, model_config: Mapping) -> dict:
  """`params` with the encoder replaced by the checkpoint in `model_config["hf_dir"]`.

  Args:
    params: the model's `params` collection (or the variables dict holding it under "params").
    model_config: the config's model section (as given to `Model`).

  Returns:
    `params` itself when hf_dir is None (random init). Else the same tree with the "bert" subtree
    read from model.safetensors (numpy arrays in the random init's dtypes; the classifier head is
    kept). Checkpoints of `BertModel` ("embeddings...") and of `BertFor*` ("bert.embeddings...")
    both load. Works inside `jax.jit` (the checkpoint becomes constants), as the trainer calls it.
  """
  hf_dir = model_config.get("hf_dir")
  if hf_dir is None:  # a random-init config (`size`): the trainer calls this for every model
    return params
  if "bert" not in params and "params" in params:
    return {**params, "params": load_pretrained(params["params"], model_config)}
  tensors = hf_weights.read_safetensors(hf_dir)
  prefix = "bert." if any(n.startswith("bert.") for n in tensors) else ""
  source = str(pathlib.Path(hf_dir) / "model.safetensors")
  encoder, _ = hf_weights.load_torch_layout(params["bert"], tensors, prefix=prefix, source=source)
  return {**params, "bert": encoder}
