"""Click models in JAX, by name: each module defines one or more `ClickModel` records and registers
them in `MODELS`; `get(name)` finds one, `fit` fits it (the whole log at once, or streamed from a
page source in bounded memory: `stream`, `source`) and `rankjax.sim.clicks` simulates it.

>>> get("pbm").methods[0], get("dbn").methods  # PBM's default method; DBN's methods
('em', ('em', 'gradient'))
"""

from rankjax.click_models.base import (
  FIT_METHODS,
  MODELS,
  ClickModel,
  FitMethod,
  Params,
  get,
  log_probs,
)
from rankjax.click_models.cascade import CASCADE
from rankjax.click_models.dbn import DBN, SDBN
from rankjax.click_models.fit import FitResult, evaluate, fit
from rankjax.click_models.log import ClickLog
from rankjax.click_models.pbm import PBM
from rankjax.click_models.source import LogSource, ShardSource, write_shards
from rankjax.click_models.stream import PairRankCounts
from rankjax.click_models.ubm import UBM

__all__ = [
  "FIT_METHODS",
  "MODELS",
  "CASCADE",
  "DBN",
  "PBM",
  "SDBN",
  "UBM",
  "ClickLog",
  "ClickModel",
  "FitMethod",
  "FitResult",
  "LogSource",
  "PairRankCounts",
  "Params",
  "ShardSource",
  "evaluate",
  "fit",
  "get",
  "log_probs",
  "write_shards",
]
