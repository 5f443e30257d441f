"""Click models in JAX: PBM, UBM, cascade, DBN and SDBN, by name.

>>> sorted(MODELS)
['cascade', 'dbn', 'pbm', 'sdbn', 'ubm']
>>> MODELS["pbm"].methods, MODELS["dbn"].methods
(('em', 'gradient'), ('gradient',))
"""

from rankjax.click_models.base import ClickModel, Params, log_probs
from rankjax.click_models.cascade import CASCADE
from rankjax.click_models.dbn import DBN, SDBN
from rankjax.click_models.fit import FitResult, evaluate, fit
from rankjax.click_models.log import ClickLog
from rankjax.click_models.pbm import PBM
from rankjax.click_models.ubm import UBM

MODELS = {m.name: m for m in (PBM, UBM, CASCADE, DBN, SDBN)}

__all__ = ["MODELS", "ClickLog", "ClickModel", "FitResult", "Params", "evaluate", "fit", "log_probs", "get"]


def get(name: str) -> ClickModel:
  """The click model registered as `name`."""
  if name not in MODELS:
    raise ValueError(f"unknown click model {name!r}; known: {sorted(MODELS)}")
  return MODELS[name]
