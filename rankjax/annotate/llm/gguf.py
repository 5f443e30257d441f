"""Llama weights for `llm.llama` from a GGUF file or a Hugging Face safetensors directory.

Both sources are first brought to Hugging Face tensor names and layout (`model.layers.3.self_attn.
q_proj.weight`, [out, in]), then stacked into the scanned flax params by one function
(`params_from_hf`). For GGUF that means (1) dequantizing every tensor with the `gguf` package
(Q4_0/Q4_1/Q8_0/K-quants/F16...: `gguf.quants.dequantize`), and (2) undoing the row permutation that
llama.cpp's converter applies to q and k (it interleaves the two RoPE halves of each head):
GGUF rows [h, i, 2] are HF rows [h, 2, i] for i < head_dim / 2.

The tokenizer comes from the same source: `load_tokenizer` (transformers reads the GGUF vocabulary).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
from gguf import GGUFReader, quants

from rankjax.annotate.llm.llama import LlamaConfig
from rankjax.models.layers import hf_weights

_GGUF_TO_HF = {
  "attn_q": "self_attn.q_proj",
  "attn_k": "self_attn.k_proj",
  "attn_v": "self_attn.v_proj",
  "attn_output": "self_attn.o_proj",
  "ffn_gate": "mlp.gate_proj",
  "ffn_up": "mlp.up_proj",
  "ffn_down": "mlp.down_proj",
  "attn_norm": "input_layernorm",
  "ffn_norm": "post_attention_layernorm",
}
# flax path under params["layers"] -> HF name inside "model.layers.<i>."
_LAYER_PARAMS = {
  ("attn", "q", "kernel"): "self_attn.q_proj",
  ("attn", "k", "kernel"): "self_attn.k_proj",
  ("attn", "v", "kernel"): "self_attn.v_proj",
  ("attn", "o", "kernel"): "self_attn.o_proj",
  ("mlp", "gate", "kernel"): "mlp.gate_proj",
  ("mlp", "up", "kernel"): "mlp.up_proj",
  ("mlp", "down", "kernel"): "mlp.down_proj",
  ("attn_norm", "scale"): "input_layernorm",
  ("mlp_norm", "scale"): "post_attention_layernorm",
}


def unpermute_qk(w: np.ndarray, num_heads: int) -> np.ndarray:
  """Undoes llama.cpp's q/k row permutation: [out, in] GGUF rows -> HF "rotate half" rows.

  One head of dim 8: GGUF row order pairs HF rows (0, 4), (1, 5), ...

  >>> unpermute_qk(np.array([0, 4, 1, 5, 2, 6, 3, 7.0])[:, None], 1).ravel().tolist()
  [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
  """
  out = w.shape[0]
  w4 = w.reshape(num_heads, out // num_heads // 2, 2, *w.shape[1:])
  return w4.swapaxes(1, 2).reshape(w.shape)


def params_from_hf(config: LlamaConfig, tensors: dict[str, np.ndarray], source: str) -> dict:
  """Flax params ({"params": ...}) from HF-named, HF-layout float tensors."""

  def get(name, shape):
    if name not in tensors:
      raise KeyError(f"{source}: no tensor {name!r}; have e.g. {sorted(tensors)[:5]}")
    t = np.asarray(tensors[name], np.float32)
    if t.shape != shape:
      raise ValueError(f"{source}: tensor {name!r} has shape {t.shape}, expected {shape}")
    return t

  c = config
  e, f = c.hidden_size, c.intermediate_size
  q, kv = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
  shapes = {
    "self_attn.q_proj": (q, e),
    "self_attn.k_proj": (kv, e),
    "self_attn.v_proj": (kv, e),
    "self_attn.o_proj": (e, q),
    "mlp.gate_proj": (f, e),
    "mlp.up_proj": (f, e),
    "mlp.down_proj": (e, f),
    "input_layernorm": (e,),
    "post_attention_layernorm": (e,),
  }
  layers: dict = {}
  for path, hf in _LAYER_PARAMS.items():
    stacked = np.stack(
      [get(f"model.layers.{i}.{hf}.weight", shapes[hf]) for i in range(c.num_layers)]
    )
    if path[-1] == "kernel":
      stacked = stacked.transpose(0, 2, 1)  # [L, out, in] -> [L, in, out]
    node = layers
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[path[-1]] = stacked
  params = {
    "embed": {"embedding": get("model.embed_tokens.weight", (c.vocab_size, e))},
    "layers": layers,
    "final_norm": {"scale": get("model.norm.weight", (e,))},
  }
  if not c.tie_embeddings:
    params["lm_head"] = {"kernel": get("lm_head.weight", (c.vocab_size, e)).T}
  return {"params": params}


def _field(reader: GGUFReader, key: str, path, default=None):
  field = reader.fields.get(key)
  if field is None:
    if default is None:
      raise KeyError(f"{path}: GGUF metadata has no {key!r}")
    return default
  return field.contents()


def load_gguf(path: str | pathlib.Path, dtype=None) -> tuple[LlamaConfig, dict]:
  """(config, flax params) from a llama-architecture GGUF file, dequantized to float32.

  Args:
    path: the .gguf file.
    dtype: optional compute dtype for the config (e.g. jnp.bfloat16); default float32.
  """
  path = pathlib.Path(path)
  reader = GGUFReader(path)
  arch = _field(reader, "general.architecture", path)
  if arch != "llama":
    raise ValueError(f"{path}: architecture {arch!r}; only 'llama' is supported")
  heads = int(_field(reader, "llama.attention.head_count", path))
  kv_heads = int(_field(reader, "llama.attention.head_count_kv", path, heads))
  hidden = int(_field(reader, "llama.embedding_length", path))
  names = {t.name for t in reader.tensors}
  tok = next(t for t in reader.tensors if t.name == "token_embd.weight")
  config = LlamaConfig(
    vocab_size=int(tok.shape[-1]),
    hidden_size=hidden,
    intermediate_size=int(_field(reader, "llama.feed_forward_length", path)),
    num_layers=int(_field(reader, "llama.block_count", path)),
    num_heads=heads,
    num_kv_heads=kv_heads,
    head_dim=int(_field(reader, "llama.rope.dimension_count", path, hidden // heads)),
    rope_theta=float(_field(reader, "llama.rope.freq_base", path, 10000.0)),
    rms_eps=float(_field(reader, "llama.attention.layer_norm_rms_epsilon", path)),
    tie_embeddings="output.weight" not in names,
    **({} if dtype is None else {"dtype": dtype}),
  )
  tensors = {}
  for t in reader.tensors:
    w = quants.dequantize(t.data, t.tensor_type).astype(np.float32)
    w = w.reshape(tuple(int(d) for d in reversed(t.shape)))  # GGUF dims are [in, out]
    if t.name == "token_embd.weight":
      tensors["model.embed_tokens.weight"] = w
    elif t.name == "output_norm.weight":
      tensors["model.norm.weight"] = w
    elif t.name == "output.weight":
      tensors["lm_head.weight"] = w
    elif t.name.startswith("blk."):
      _, layer, kind, _ = t.name.split(".")
      if kind not in _GGUF_TO_HF:
        continue  # e.g. rope_freqs of long-context variants: not used by this model
      if kind == "attn_q":
        w = unpermute_qk(w, heads)
      elif kind == "attn_k":
        w = unpermute_qk(w, kv_heads)
      tensors[f"model.layers.{layer}.{_GGUF_TO_HF[kind]}.weight"] = w
  return config, params_from_hf(config, tensors, str(path))


def load_hf_dir(hf_dir: str | pathlib.Path, dtype=None) -> tuple[LlamaConfig, dict]:
  """(config, flax params) from a Hugging Face `LlamaForCausalLM` safetensors directory."""
  hf_dir = pathlib.Path(hf_dir)
  cfg = json.loads((hf_dir / "config.json").read_text())
  heads = cfg["num_attention_heads"]
  config = LlamaConfig(
    vocab_size=cfg["vocab_size"],
    hidden_size=cfg["hidden_size"],
    intermediate_size=cfg["intermediate_size"],
    num_layers=cfg["num_hidden_layers"],
    num_heads=heads,
    num_kv_heads=cfg.get("num_key_value_heads", heads),
    head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads,
    rope_theta=float(
      cfg.get("rope_theta", (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    ),
    rms_eps=float(cfg.get("rms_norm_eps", 1e-5)),
    tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
    **({} if dtype is None else {"dtype": dtype}),
  )
  return config, params_from_hf(config, hf_weights.read_safetensors(hf_dir), str(hf_dir))


def load(path: str | pathlib.Path, dtype=None) -> tuple[LlamaConfig, dict]:
  """A .gguf file or an HF directory, by what `path` is."""
  path = pathlib.Path(path)
  return load_gguf(path, dtype) if path.is_file() else load_hf_dir(path, dtype)


def load_tokenizer(path: str | pathlib.Path):
  """The Hugging Face tokenizer of a .gguf file (its embedded vocabulary) or of an HF directory."""
  import transformers  # pylint: disable=g-import-not-at-top  (slow import, only when needed)

  path = pathlib.Path(path)
  if path.is_file():
    return transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
  return transformers.AutoTokenizer.from_pretrained(path)
