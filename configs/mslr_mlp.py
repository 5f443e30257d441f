r"""DASALC-style MLP ranker on the real MSLR-WEB10K sample, human labels, LambdaRank loss.

The data (43 + 43 queries, 136 features) is prepared from `$RANKJAX_DATA/mslr_web10k_sample` on
the first run into `<workdir>/data` (or `config.data.cache_dir`); the validation split is every
5th training query. With 35 training queries the model overfits quickly, hence strong dropout
and weight decay and few steps (on this sample the local variant scored test NDCG@10 0.31 with
softmax loss, dropout 0.1 and 300 steps; 0.28 after 1000 steps).

  rankjax train --config=configs/mslr_mlp.py --workdir=/tmp/mslr_mlp
  rankjax train --config=configs/mslr_mlp.py:local --workdir=/tmp/rankjax_run \
      --config.total_steps=100
"""

from rankjax.configs import default as config_defaults


def get_config(arg=None):
  """The full run; `arg="local"` shrinks it to a couple of minutes on two CPU cores."""
  c = config_defaults.default_config()
  c.total_steps = 500

  c.data.name = "mslr_web10k_sample"
  c.data.batch_size = 16
  c.data.list_sizes = (64, 128, 192, 320)  # lists hold up to 308 documents

  c.model = config_defaults.model_config("mlp", hidden=256, num_blocks=3, dropout=0.3)

  c.loss = {"name": "lambda"}
  c.supervision.source = "human"

  c.eval.every = 100
  c.eval.splits = ("validation", "test")
  c.eval.metrics = ("ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "err@10", "pnr")
  c.eval.batch_size = 16

  c.checkpoint.every = 100
  c.checkpoint.best_metric = "validation/ndcg@10/all"

  if arg == "local":
    c.total_steps = 150
    c.log_every = 25
    c.data.batch_size = 8
    c.model.hidden = 128
    c.model.num_blocks = 2
    c.eval.every = 75
    c.checkpoint.every = 75
  elif arg:
    raise ValueError(f"unknown config variant {arg!r}; known: 'local'")
  return c
