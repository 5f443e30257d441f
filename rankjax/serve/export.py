"""A serving artifact of a trained ranker with `jax.export`: loading it needs only jax and numpy.

`export(ranker, directory)` writes
  scorer.jaxexport   the scoring function `(params, inputs) -> scores f32[b, l]`, serialized
                     StableHLO with symbolic batch `b` and list `l` dimensions (and token width `t`
                     for a text ranker): one artifact for any number and length of lists;
  params.npz         its parameters, a flat {"<collection>/<module>/.../<name>": array} dict;
  signature.json     the inputs' names, shapes and dtypes, what the scores mean, the run it came
                     from (step, config), and for a text ranker the truncation rules;
  tokenizer/         a text ranker's Hugging Face tokenizer files.

Scoring from it (`rankjax.export_check` does this for a directory and an .npz of inputs):

  exported = jax.export.deserialize(open(f"{d}/scorer.jaxexport", "rb").read())
  scores = exported.call(dict(np.load(f"{d}/params.npz")), {"features": x, "mask": m})

Padded items (mask False) get arbitrary scores; rank only the real ones.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

FILES = ("scorer.jaxexport", "params.npz", "signature.json")


def input_specs(ranker, b, l, t) -> dict[str, tuple[tuple, str]]:
  """Input name -> (shape with the dims `b`, `l`, `t` given, dtype name)."""
  if ranker.kind == "features":
    return {"features": ((b, l, ranker.num_features), "float32"), "mask": ((b, l), "bool")}
  return {
    "tokens": ((b, l, t), "int32"),
    "token_types": ((b, l, t), "int32"),
    "mask": ((b, l), "bool"),
  }


def scorer(ranker) -> tuple[Callable, dict[str, np.ndarray]]:
  """(`(params, inputs) -> scores f32[b, l]`, its params as stored): `ranker`'s model on a flat
  {"<collection>/<module>/.../<name>": array} dict of parameters."""
  flat = {
    "/".join(k): np.asarray(v)
    for k, v in traverse_util.flatten_dict(jax.device_get(ranker.variables)).items()
  }
  dtypes = {k: v.dtype for k, v in flat.items()}
  # npz has no bfloat16: such params are stored as float32 and cast back inside the function.
  stored = {k: v.astype(np.float32) if v.dtype == jnp.bfloat16 else v for k, v in flat.items()}
  model = ranker.model

  def scores(params, inputs):
    params = {k: jnp.asarray(v, dtypes[k]) for k, v in params.items()}
    variables = traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in params.items()})
    return model.apply(variables, inputs, train=False).astype(jnp.float32)

  return scores, stored


def export(
  ranker, directory: str | os.PathLike, *, platforms: Sequence[str] | None = None
) -> pathlib.Path:
  """Writes `ranker`'s serving artifact (module docstring) to `directory`; returns its path.

  Args:
    ranker: a `ranker.Ranker`.
    directory: created if needed.
    platforms: the platforms the artifact runs on ("cpu", "cuda", "tpu"); default the current one.
  """
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  scores, stored = scorer(ranker)
  # A text ranker's pairs are at most the run's max_tokens long (its position embeddings' reach).
  limits = () if ranker.tokenizer is None else (f"t <= {ranker.tokenizer.max_tokens}",)
  b, l, t = jax.export.symbolic_shape("b, l, t", constraints=limits)
  specs = input_specs(ranker, b, l, t)
  exported = jax.export.export(jax.jit(scores), platforms=platforms)(
    {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in stored.items()},
    {k: jax.ShapeDtypeStruct(shape, dtype) for k, (shape, dtype) in specs.items()},
  )
  (directory / "scorer.jaxexport").write_bytes(exported.serialize())
  np.savez(directory / "params.npz", **stored)
  signature = {
    "kind": ranker.kind,
    "inputs": {
      k: {"shape": [str(d) for d in shape], "dtype": dtype} for k, (shape, dtype) in specs.items()
    },
    "output": {
      "shape": ["b", "l"],
      "dtype": "float32",
      "meaning": "a score per item; higher ranks first; items where mask is False are padding",
    },
    "platforms": list(exported.platforms),
    "step": ranker.step,
    "config": json.loads(ranker.config.to_json_best_effort()) if ranker.config else None,
  }
  if ranker.tokenizer is not None:
    tok = ranker.tokenizer
    tok.tokenizer.save_pretrained(str(directory / "tokenizer"))
    signature["tokenizer"] = {
      "files": "tokenizer",
      "max_tokens": tok.max_tokens,
      "max_query_tokens": tok.max_query_tokens,
      "layout": "[CLS] query [SEP] document [SEP], token_types 0 then 1, 0-padded (rankjax.data."
      "text)",
    }
  (directory / "signature.json").write_text(json.dumps(signature, indent=1))
  return directory
