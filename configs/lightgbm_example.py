r"""DASALC-style MLP ranker on LightGBM's lambdarank example (201 + 50 queries, 300 features).

The data comes from `$RANKJAX_DATA/lightgbm_lambdarank_example` (`rank.train` with its `.query`
group file; the validation split is every 5th training query), prepared on the first run.

  rankjax train --config=configs/lightgbm_example.py --workdir=/tmp/lgb_mlp
  rankjax train --config=configs/lightgbm_example.py:local --workdir=/tmp/lgb_local
"""

from rankjax.configs import default as config_defaults


def get_config(arg=None):
  """The full run; `arg="local"` shrinks it to about a minute on two CPU cores."""
  c = config_defaults.default_config()
  c.total_steps = 1000

  c.data.name = "lightgbm_lambdarank_example"
  c.data.list_sizes = (32,)  # lists hold at most 27 documents

  c.model = config_defaults.model_config("mlp", hidden=256, num_blocks=3, dropout=0.3)

  c.loss = {"name": "lambda"}
  c.supervision.source = "human"

  c.eval.every = 250
  c.eval.splits = ("validation", "test")
  c.eval.metrics = ("ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "err@10", "pnr")

  c.checkpoint.every = 250
  c.checkpoint.best_metric = "validation/ndcg@10/all"

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
