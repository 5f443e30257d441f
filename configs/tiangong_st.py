r"""The study in the paper's public setting, TianGong-ST (download it from the THUIR site).

Click, LLM, data-schedule and frequency-gated multi-objective cross-encoders (the paper's four
variants) train on every query of the log except the last queries of the 2,000 sessions with
human 5-level labels, which are the test set (`prepare --split-by labelled`). The human labels are
all held out, so there is no human-label variant (a run on them would train on nothing, and the
data check refuses it); a query's frequency
is the number of sessions issuing it (`--freq-by sessions`, the default), bucketed by terciles.
The report has the paper's metrics, NDCG@{1,3,5,10} (and ERR@10), per bucket. Documents are
titles; the encoder is a Chinese BERT checkpoint directory of your choice (config.json +
safetensors, e.g. bert-base-chinese), given as `--config.model.hf_dir`. LLM labels come from
`rankjax annotate run --lang zh` (the store's model name goes to `--llm-model`). Click labels are
CTRs without IPS: to debias, fit PBM (`rankjax clicks fit --model pbm --format tiangong-st
...`) and give each click variant `weights="ips_pbm"` and its `propensities`.

  T=TianGong-ST; BERT=/models/bert-base-chinese
  rankjax annotate run --format tiangong-st $T/data/sogousessiontrack2020.xml \
      --queries $T/qid_query.json --lang zh --store /tmp/ann_st.db --backend openai_http ...
  rankjax data prepare --format tiangong-st $T/data/sogousessiontrack2020.xml \
      --labels $T/human_label/sogou_st_human_labels.txt --queries $T/qid_query.json \
      --split-by labelled --llm-labels /tmp/ann_st.db --llm-model MODEL --tokenizer $BERT \
      --max-tokens 64 --max-query-tokens 16 --output /tmp/rankjax_data --name tiangong_st
  rankjax train --config=configs/tiangong_st.py --workdir=/tmp/tiangong_study \
      --config.model.hf_dir=$BERT

`arg="tiny"`: a random-init encoder, a few steps, one seed (tests, on the TianGong-ST fixture).
"""

import ml_collections

from rankjax.configs import common
from rankjax.configs import default as config_defaults


def get_config(arg=None):
  """The study; `arg="tiny"` shrinks it to a smoke run."""
  c = config_defaults.default_config()
  c.total_steps = 5000
  c.log_every = 100

  c.data.name = "tiangong_st"
  c.data.path = "/tmp/rankjax_data/tiangong_st/1.0.0"  # from the prepare command above
  c.data.list_sizes = (10, 16)  # result pages hold 10 documents, a few more
  c.data.token_buckets = 4

  # hf_dir is required: a Chinese BERT directory (`--config.model.hf_dir=...`).
  c.model = config_defaults.model_config("cross_encoder", dtype="bfloat16", dropout=0.1)

  c.loss = {"name": "softmax"}
  c.supervision.source = "click"

  c.optimizer.lr = 3e-5
  c.optimizer.warmup_steps = 500

  c.eval.every = 5000
  c.eval.splits = ("test",)  # no checkpoint selection on it
  c.eval.metrics = ("ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10")

  c.checkpoint.every = 1000

  c.study = ml_collections.ConfigDict()
  c.study.seeds = (0, 1, 2)
  c.study.split = "test"
  c.study.baseline = "click"
  c.study.relevant_label = 2.0  # labels 0-4; 2 and up counts as relevant
  c.study.doc_signals = ("global_ctr",)
  c.study.semantic_signals = ("term_overlap",)
  c.study.baselines = ("logged_order", "bm25")  # text data: no features for LightGBM
  # Click labels are CTRs without IPS (module docstring).
  c.study.runs = {}  # name -> another system's TREC run file, scored beside the variants
  c.study.sweep = None  # {'key': ..., 'values': (...)}: the study at each value
  variants = common.paper_variants()
  del variants["human"]  # its labels are all held out (module docstring)
  c.study.variants = ml_collections.ConfigDict(variants)

  if arg == "tiny":
    c.model.size = "tiny"
    c.model.dtype = "float32"
    c.total_steps = c.eval.every = c.checkpoint.every = 4
    c.log_every = 2
    c.optimizer.warmup_steps = 1
    c.data.batch_size = 2
    c.data.num_threads = 1
    c.study.seeds = (0,)
  elif arg:
    raise ValueError(f"unknown config variant {arg!r}; known: 'tiny'")
  return c
