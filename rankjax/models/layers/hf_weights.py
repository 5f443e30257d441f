"""Pretrained weights from a local Hugging Face directory into flax params, without torch.

Checkpoints are read with the `safetensors` numpy API (`model.safetensors`, or the shards named by
`model.safetensors.index.json`). A flax module whose submodules mirror the PyTorch module tree
(`encoder/layer_3/attention/self/query/kernel`) maps onto state-dict names by one generic rule,
`torch_name`, so a new architecture only needs to name its submodules like its PyTorch twin:

  * path parts join with ".", and a trailing `_<i>` (flax's list naming) becomes `.<i>`;
  * the leaf `kernel` becomes `weight` and is transposed (PyTorch `Linear` stores [out, in]);
    `embedding` and `scale` become `weight`; `bias` stays.

Legacy TF-converted checkpoints that call LayerNorm parameters `gamma`/`beta` are accepted too.
Every flax leaf must be found with its exact shape, else the error names the tensor.
"""

from __future__ import annotations

import json
import logging
import pathlib
import re
from collections.abc import Mapping

import numpy as np
from flax import traverse_util
from safetensors import numpy as safetensors_np

_LEAF_NAMES = {"kernel": "weight", "embedding": "weight", "scale": "weight", "bias": "bias"}
# Older (TF-converted) checkpoints name LayerNorm parameters gamma/beta.
_LEGACY = {".LayerNorm.weight": ".LayerNorm.gamma", ".LayerNorm.bias": ".LayerNorm.beta"}


def read_safetensors(hf_dir: str | pathlib.Path) -> dict[str, np.ndarray]:
  """All tensors of the checkpoint in `hf_dir`, by state-dict name, as numpy arrays."""
  hf_dir = pathlib.Path(hf_dir)
  single = hf_dir / "model.safetensors"
  index = hf_dir / "model.safetensors.index.json"
  if single.exists():
    return dict(safetensors_np.load_file(single))
  if index.exists():
    shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    tensors = {}
    for shard in shards:
      tensors.update(safetensors_np.load_file(hf_dir / shard))
    return tensors
  raise FileNotFoundError(
    f"{hf_dir}: neither model.safetensors nor model.safetensors.index.json "
    "(only safetensors checkpoints are read; no torch .bin)"
  )


def torch_name(path: tuple[str, ...]) -> str:
  """The PyTorch state-dict name of the flax parameter at `path` (mirrored module tree).

  >>> torch_name(("encoder", "layer_3", "attention", "self", "query", "kernel"))
  'encoder.layer.3.attention.self.query.weight'
  >>> torch_name(("embeddings", "LayerNorm", "scale"))
  'embeddings.LayerNorm.weight'
  """
  *modules, leaf = path
  if leaf not in _LEAF_NAMES:
    raise ValueError(
      f"no PyTorch name for flax parameter {'/'.join(path)!r}: leaf {leaf!r} "
      f"is none of {sorted(_LEAF_NAMES)}"
    )
  return ".".join([re.sub(r"_(\d+)$", r".\1", m) for m in modules] + [_LEAF_NAMES[leaf]])


def to_flax(path: tuple[str, ...], tensor: np.ndarray) -> np.ndarray:
  """A PyTorch tensor in the layout of the flax parameter at `path` (transposes `Linear`)."""
  if path[-1] == "kernel" and tensor.ndim == 2:
    return tensor.T
  return tensor


def load_torch_layout(
  params: Mapping,
  tensors: Mapping[str, np.ndarray],
  *,
  prefix: str = "",
  source: str = "checkpoint",
) -> tuple[dict, list[str]]:
  """Replaces every leaf of `params` with the tensor `prefix + torch_name(path)`.

  Args:
    params: nested dict of arrays (a flax `params` collection or a subtree of it).
    tensors: state-dict name -> numpy array (from `read_safetensors`).
    prefix: prepended to every name, e.g. "bert." for `BertFor...` checkpoints.
    source: where the tensors came from, for error messages.

  Returns:
    (new params with the leaves' dtypes, names of checkpoint tensors under `prefix` left unused).

  Raises:
    KeyError: a parameter has no tensor; ValueError: a tensor has the wrong shape.
  """
  flat = traverse_util.flatten_dict(dict(params))
  used, out = set(), {}
  for path, leaf in flat.items():
    name = prefix + torch_name(path)
    found = (
      name
      if name in tensors
      else next(
        (
          name.replace(k, v)
          for k, v in _LEGACY.items()
          if name.endswith(k) and name.replace(k, v) in tensors
        ),
        None,
      )
    )
    if found is None:
      near = sorted(n for n in tensors if n.rsplit(".", 2)[0] == name.rsplit(".", 2)[0])[:5]
      raise KeyError(
        f"{source}: no tensor {name!r} for parameter {'/'.join(path)} with shape "
        f"{tuple(leaf.shape)}; tensors nearby: {near or sorted(tensors)[:5]}"
      )
    array = to_flax(path, np.asarray(tensors[found]))
    if array.shape != tuple(leaf.shape):
      raise ValueError(
        f"{source}: tensor {found!r} has shape {tuple(tensors[found].shape)} "
        f"(as flax {array.shape}); parameter {'/'.join(path)} needs "
        f"{tuple(leaf.shape)}"
      )
    used.add(found)
    out[path] = array.astype(leaf.dtype)
  unused = sorted(n for n in tensors if n.startswith(prefix) and n not in used)
  if unused:
    logging.info("%s: %d tensors not used: %s", source, len(unused), unused[:8])
  return traverse_util.unflatten_dict(out), unused
