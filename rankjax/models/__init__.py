"""Rankers, chosen by name from the config (as in big_vision).

`config.model.name = "mlp"` imports `rankjax.models.mlp`; the rest of `config.model` are keyword
arguments of its `Model`:

  module = get_module(config.model.name)
  model = module.Model(**{k: v for k, v in config.model.items() if k != "name"})

Configs build that section with `config_defaults.model_config("mlp", hidden=64)`, which lists every
field of the `Model`, so each one can be overridden from the command line of a locked config.

A model module defines:
  - `Model`: a `flax.linen.Module` with `__call__(self, batch: dict, *, train: bool = False)
    -> scores float32 [B, L]`. It reads what it needs from the padded batch (`schema.BATCH_KEYS`:
    `features`, or `tokens` / `token_types`, and `mask`); scores of padded items are ignored by
    losses and metrics. Dropout draws from the rng stream "dropout". Collections other than
    "params" (e.g. "batch_stats") are state the trainer carries and updates while training.
  - optionally `load_pretrained(params, model_config) -> params`, called by the trainer after
    initialisation to load pretrained weights (e.g. a cross-encoder's checkpoint).
"""

import sys
import types

from rankjax import registry


def get_module(name: str) -> types.ModuleType:
  """The ranker module `rankjax.models.<name>` (`registry.UnknownName` lists the known ones).

  Only the rankers are modules of this package; their building blocks live in `layers/`.
  """
  return registry.lookup_module(sys.modules[__name__], name, "model")


def build(model_config):
  """(module, Model instance) for a `config.model` ConfigDict / dict with a `name`."""
  module = get_module(model_config["name"])
  kwargs = {k: v for k, v in dict(model_config).items() if k != "name"}
  return module, module.Model(**kwargs)
