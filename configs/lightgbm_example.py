r"""DASALC-style MLP ranker on LightGBM's lambdarank example (201 + 50 queries, 300 features).

The data comes from `$RANKJAX_DATA/lightgbm_lambdarank_example` (`rank.train` with its `.query`
group file; the validation split is every 5th training query), prepared on the first run.

  python -m rankjax.main --config=configs/lightgbm_example.py --workdir=/tmp/lgb_mlp
  python -m rankjax.main --config=configs/lightgbm_example.py:local --workdir=/tmp/lgb_local
"""

import ml_collections


def get_config(arg=None):
  """The full run; `arg="local"` shrinks it to about a minute on two CPU cores."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.total_steps = 1000
  c.log_every = 50

  c.data = ml_collections.ConfigDict()
  c.data.name = "lightgbm_lambdarank_example"
  c.data.path = ""
  c.data.cache_dir = ""
  c.data.batch_size = 32
  c.data.list_sizes = (32,)  # lists hold at most 27 documents
  c.data.num_threads = 2

  c.model = ml_collections.ConfigDict()
  c.model.name = "mlp"
  c.model.hidden = 256
  c.model.num_blocks = 3
  c.model.dropout = 0.3

  c.loss = "lambda"
  c.supervision = ml_collections.ConfigDict()
  c.supervision.source = "human"
  c.supervision.weights = "none"
  c.supervision.objective = "single"

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.lr = 1e-3
  c.optimizer.warmup_steps = 100
  c.optimizer.weight_decay = 1e-2
  c.optimizer.clip_norm = 1.0

  c.eval = ml_collections.ConfigDict()
  c.eval.every = 250
  c.eval.splits = ("validation", "test")
  c.eval.label_source = "human"
  c.eval.metrics = ("ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "err@10", "pnr")
  c.eval.batch_size = 64

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every = 250
  c.checkpoint.keep = 2
  c.checkpoint.best_metric = "validation/ndcg@10/all"
  c.checkpoint.best_mode = "max"

  if arg == "local":
    c.total_steps = 400
    c.log_every = 25
    c.model.hidden = 128
    c.model.num_blocks = 2
    c.eval.every = 200
    c.checkpoint.every = 200
  elif arg:
    raise ValueError(f"unknown config variant {arg!r}; known: 'local'")
  return c
