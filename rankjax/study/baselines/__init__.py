"""What a practitioner would rank with instead of a rankjax variant, as study rows.

A baseline scores the study's evaluation split from the training split without rankjax's trainer:
LightGBM's LambdaMART on human, LLM or click labels (`lightgbm.py`), the order users were shown
(`logged_order.py`), BM25 over the candidates' texts (`bm25.py`). `config.study.baselines` names
them; the runner scores each once per seed, and the report shows them beside the variants, tested
against the same baseline variant. A baseline whose library is not installed is left out with a
note saying how to install it.

Add one: a `Baseline` record + `register(BASELINES, name)`.
"""

from rankjax.study.baselines.base import BASELINES, Baseline, get, padded, read_lists
from rankjax.study.baselines.bm25 import bm25_scores
from rankjax.study.baselines.lightgbm import lambdamart
from rankjax.study.baselines.logged_order import logged_order_scores

__all__ = [
  "BASELINES",
  "Baseline",
  "bm25_scores",
  "get",
  "lambdamart",
  "logged_order_scores",
  "padded",
  "read_lists",
]
