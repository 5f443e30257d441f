r"""The study on TianGong-ST in the processed layouts of click-model papers (CACM's files).

The processed files keep ids, ranks, vertical types and clicks but no titles, so there is no
document text for a cross-encoder or for LLM annotation: an MLP ranker reads per-(query,
document) features joined at prepare (`--features`, svmlight rows `<label> qid:<qid> ... # docid =
<uid>`), e.g. the node2vec embeddings of the query and document nodes CACM trains on (looked up
through `qid_nid.dict` / `uid_nid.dict`) or a one-hot of the vertical type. With no LLM labels,
the study is the click-model data's own question: rankers trained on clicks as they are and with
the position bias learned jointly (DLA, the two-tower PBM) are compared per query-frequency bucket
on the human-labelled queries (`--split-by labelled`; CACM's `human_label_for_CACM.txt`, joined by
query and document), with LightGBM on the same clicks (plain and position-debiased) and the logged
order beside them. The human labels are all in the test split, so nothing trains on them.

  T=CACM/data
  rankjax data prepare --format tiangong-session $T/train_per_session.txt \
      $T/dev_per_session.txt $T/test_per_session.txt --labels $T/human_label_for_CACM.txt \
      --queries $T/dict/qid_query.json --query-nodes $T/qid_nid.dict --doc-nodes $T/uid_nid.dict \
      --verticals $T/dict/vid_vtype.json --features FEATURES.svm --split-by labelled \
      --output /tmp/rankjax_data --name tiangong_processed
  rankjax train --config=configs/tiangong_processed.py --workdir=/tmp/tiangong_processed_study

`arg="tiny"`: a small MLP, a few steps, one seed, the click and DLA variants (tests, on the
sample under the data directory).
"""

import ml_collections

from rankjax.configs import common
from rankjax.configs import default as config_defaults

# The unbiased learning-to-rank objectives that learn the position bias with the ranker.
ULTR = ("dla", "two_tower")


def get_config(arg=None):
  """The study; `arg="tiny"` shrinks it to a smoke run."""
  c = config_defaults.default_config()
  c.total_steps = 2000
  c.log_every = 100

  c.data.name = "tiangong_processed"
  c.data.path = "/tmp/rankjax_data/tiangong_processed/1.0.0"  # from the prepare command above
  c.data.list_sizes = (10,)  # the processing keeps result pages of exactly 10 documents

  c.model = config_defaults.model_config("mlp", hidden=128, num_blocks=2, dropout=0.1)

  c.loss = {"name": "softmax"}
  c.supervision.source = "click"

  c.eval.every = 2000
  c.eval.splits = ("test",)  # no checkpoint selection on it
  c.eval.metrics = ("ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10")

  c.checkpoint.every = 1000

  c.study = ml_collections.ConfigDict()
  c.study.seeds = (0, 1, 2)
  c.study.split = "test"
  c.study.baseline = "click"
  c.study.relevant_label = 2.0  # labels 0-4; 2 and up counts as relevant
  c.study.doc_signals = ("global_ctr",)
  c.study.semantic_signals = ()  # no document text to match the query against
  c.study.baselines = ("logged_order", "lgbm_click", "lgbm_click_unbiased")
  c.study.runs = {}  # name -> another system's TREC run file, scored beside the variants
  c.study.sweep = None  # {'key': ..., 'values': (...)}: the study at each value
  c.study.variants = ml_collections.ConfigDict(
    {
      "click": common.paper_variants()["click"],
      **{name: {"objective": name, "source": "click", "weights": "none"} for name in ULTR},
    }
  )

  if arg == "tiny":
    c.total_steps = c.eval.every = c.checkpoint.every = 4
    c.log_every = 2
    c.optimizer.warmup_steps = 1
    c.data.batch_size = 4
    c.data.num_threads = 1
    c.model.hidden = 16
    c.model.num_blocks = 1
    c.study.seeds = (0,)
    del c.study.variants["two_tower"]
  elif arg:
    raise ValueError(f"unknown config variant {arg!r}; known: 'tiny'")
  return c
