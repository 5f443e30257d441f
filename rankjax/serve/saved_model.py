"""The serving artifact as a TensorFlow SavedModel, for TF Serving (optional: `pip install
rankjax[tf]`, TensorFlow >= 2.21).

`export_saved_model(ranker, directory)` converts the scoring function `export.export` serializes
with `jax.experimental.jax2tf` (native serialization: the same StableHLO, run by TF's
XlaCallModule op), with the same symbolic batch `b`, list `l` (and token width `t`) dimensions,
and saves it with its parameters as TF variables. Its `serving_default` signature takes the inputs
`export.input_specs` names (`features` f32[b, l, F] and `mask` bool[b, l]; or `tokens`,
`token_types` int32[b, l, t] and `mask`) and returns {"scores": f32[b, l]}. The tokenizer of a text
ranker is not in it (TF Serving takes token ids): `export.export` writes it.

orbax-export (which wraps jax2tf) is not used: for one function and its parameters it adds only
a dependency.
"""

from __future__ import annotations

import os
import pathlib
import re

from rankjax.serve import export


def export_saved_model(ranker, directory: str | os.PathLike) -> pathlib.Path:
  """Writes `ranker`'s scoring function as a SavedModel in `directory`; returns its path.

  Raises:
    ModuleNotFoundError: TensorFlow is not installed (the message says how to install it).
    RuntimeError: the installed TensorFlow cannot run the model's StableHLO (tried on one item).
  """
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top  (imports TF)
  except ModuleNotFoundError as e:
    raise ModuleNotFoundError(
      f"a SavedModel needs TensorFlow ({e}): pip install 'rankjax[tf]'"
    ) from None
  scores, stored = export.scorer(ranker)
  specs = export.input_specs(ranker, "b", "l", "t")
  limits = () if ranker.tokenizer is None else (f"t <= {ranker.tokenizer.max_tokens}",)
  converted = jax2tf.convert(
    scores,
    polymorphic_shapes=[None, {k: f"({', '.join(map(str, s))})" for k, (s, _) in specs.items()}],
    polymorphic_constraints=limits,
    with_gradient=False,
  )
  module = tf.Module()
  module.params = {k: tf.Variable(v, trainable=False) for k, v in stored.items()}
  names = list(specs)
  signature = [
    tf.TensorSpec([d if isinstance(d, int) else None for d in shape], dtype, name=k)
    for k, (shape, dtype) in specs.items()
  ]

  @tf.function(input_signature=signature, autograph=False)
  def serve(*inputs):
    return {"scores": converted(module.params, dict(zip(names, inputs)))}

  # TF runs the StableHLO only if its XlaCallModule reads that version: TF 2.21 cannot read the
  # `vhlo.composite_v2` that jax 0.10 emits for erf (the cross-encoder's GELU), for one. A tiny call
  # finds out here rather than in TF Serving.
  try:
    serve(
      *[tf.zeros([1 if d is None else d for d in spec.shape], spec.dtype) for spec in signature]
    )
  except tf.errors.InvalidArgumentError as e:
    m = re.search(r"unregistered operation '([^']+)'", str(e))
    cause = f"it has no {m.group(1)} operation" if m else e.message.splitlines()[0]
    raise RuntimeError(
      f"TensorFlow {tf.__version__} cannot run this model's StableHLO ({cause}); serve the "
      "jax.export artifact instead"
    ) from None
  module.serve = serve
  directory = pathlib.Path(directory)
  tf.saved_model.save(module, str(directory), signatures={"serving_default": serve})
  return directory
