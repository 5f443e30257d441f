"""Scores from a `rankjax export` directory with jax and numpy only (no rankjax, flax or
ml_collections): a check that an artifact serves, and the reference for loading one elsewhere.

  python -m rankjax.export_check DIR [INPUTS.npz] [--output SCORES.npy]

INPUTS.npz holds the arrays `DIR/signature.json` names (e.g. "features" f32[b, l, F] and "mask"
bool[b, l]); without it, random inputs of 3 lists of 7 items (token width 16) are scored. Prints
the scores' shape and the first list's scores; `--output` saves them all.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import jax
import numpy as np


def load(directory: str | pathlib.Path):
  """(scoring function `(inputs: dict) -> f32[b, l]`, signature dict) of an export directory."""
  directory = pathlib.Path(directory)
  exported = jax.export.deserialize(bytearray((directory / "scorer.jaxexport").read_bytes()))
  params = dict(np.load(directory / "params.npz"))
  signature = json.loads((directory / "signature.json").read_text())
  return (lambda inputs: np.asarray(exported.call(params, inputs))), signature


def example_inputs(signature: dict, b: int = 3, l: int = 7, t: int = 16, seed: int = 0) -> dict:
  """Random inputs of the signature's shapes, with b, l, t given (tokens 0-padded per item)."""
  rng = np.random.default_rng(seed)
  sizes = {"b": b, "l": l, "t": t}
  out = {}
  for name, spec in signature["inputs"].items():
    shape = [sizes[d] if d in sizes else int(d) for d in spec["shape"]]
    if name == "mask":
      out[name] = np.arange(l)[None] < rng.integers(1, l + 1, size=(b, 1))
    elif spec["dtype"] == "int32":
      out[name] = rng.integers(
        1 if name == "tokens" else 0, 2 if name != "tokens" else 1000, size=shape
      ).astype(np.int32)
    else:
      out[name] = rng.normal(size=shape).astype(spec["dtype"])
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m rankjax.export_check", description=__doc__)
  p.add_argument("directory")
  p.add_argument("inputs", nargs="?", help=".npz of the signature's input arrays")
  p.add_argument("--output", help="save the scores here (.npy)")
  args = p.parse_args(argv)
  score, signature = load(args.directory)
  if args.inputs:
    inputs = dict(np.load(args.inputs))
    missing = sorted(set(signature["inputs"]) - set(inputs))
    if missing:
      print(
        f"error: {args.inputs} has no array(s) {missing}; the signature names "
        f"{sorted(signature['inputs'])}",
        file=sys.stderr,
      )
      return 1
  else:
    inputs = example_inputs(signature)
  scores = score({k: inputs[k] for k in signature["inputs"]})
  print(f"scores {scores.dtype}{list(scores.shape)}; list 0: {scores[0][inputs['mask'][0]]}")
  if args.output:
    np.save(args.output, scores)
  return 0


if __name__ == "__main__":
  sys.exit(main())
