r"""The embedded demo: the whole study on a simulated world, no download, minutes on two CPU cores.

The data is a simulation (`rankjax/data/demo_world.py`): documents with a semantic part (seen by a
simulated annotator, with noise) and a quality part (seen only through simulated clicks), Zipf
query frequencies, PBM position bias. Click, LLM, data-schedule and frequency-gated
multi-objective rankers (plus the multi-objective with a learned gate, and a human-label
reference) train over three seeds and are evaluated against the world's human labels per
frequency bucket; `<workdir>/report.md` has the results. The variants' settings were fixed before
any run: the data schedule is the paper's hint (multi-stage training ordered by query frequency),
the gate the parameter-free linear one.

  rankjax train --config=configs/demo.py --workdir=/tmp/rankjax_demo
  rankjax train --config=configs/demo.py:tiny --workdir=/tmp/rankjax_demo_tiny
"""

import ml_collections

from rankjax.configs import default as config_defaults


def get_config(arg=None):
  """The demo study; `arg="tiny"` is a smoke version (tests): the four variants, small and short."""
  c = config_defaults.default_config()
  c.total_steps = 300
  c.log_every = 100

  c.data.name = "demo_world"  # `data.path` is set by the study to the built world
  c.data.list_sizes = (10,)
  c.data.num_threads = 0

  c.model = config_defaults.model_config("mlp", hidden=64, num_blocks=2, dropout=0.1)

  c.loss = "softmax"
  c.supervision.source = "click"

  c.optimizer.warmup_steps = 30
  c.optimizer.weight_decay = 1e-4

  c.eval.every = 300
  c.checkpoint.every = 300
  c.checkpoint.keep = 1

  c.study = ml_collections.ConfigDict()
  c.study.seeds = (0, 1, 2)
  c.study.split = "test"
  c.study.baseline = "click"
  c.study.relevant_label = 1.0
  c.study.doc_signals = ("global_ctr", "quality")
  c.study.semantic_signals = ("semantic",)
  c.study.gate_split = "validation"  # the learned gate's human-labelled lists
  c.study.variants = ml_collections.ConfigDict({
      "click": {"objective": "single", "source": "click", "weights": "ips_pbm"},
      "llm": {"objective": "single", "source": "llm", "weights": "none"},
      "data_schedule": {"objective": "data_schedule", "schedule": "frequency_staged",
                        "weights": "ips_pbm"},
      "freq_multi_objective": {"objective": "freq_multi_objective", "weights": "ips_pbm",
                               "gate": {"name": "linear"}},
      "human": {"objective": "single", "source": "human", "weights": "none"},
      # Beyond the paper: the gate fitted on the validation queries' human labels.
      "fmo_learned_gate": {"objective": "freq_multi_objective", "weights": "ips_pbm",
                           "gate": {"name": "learned"}},
  })
  # The world (rankjax.sim.world.WorldConfig; README "Demo" lists the same values).
  c.study.world = ml_collections.ConfigDict({
      "num_queries": 1000, "docs_per_query": 10, "num_docs": 4000, "sessions": 30000,
      "zipf": 1.1, "eta": 1.0, "click_noise": 0.1, "logger_noise": 1.0, "semantic_weight": 1.0,
      "quality_weight": 1.0, "llm_noise": 0.5, "feature_noise": 0.5, "ctr_prior": 5.0,
      "validation_fraction": 0.1, "test_fraction": 0.3, "seed": 0})

  if arg == "tiny":
    c.total_steps = 20
    c.log_every = 10
    c.eval.every = c.checkpoint.every = 20
    c.optimizer.warmup_steps = 5
    c.data.batch_size = 8
    c.model.hidden = 16
    c.model.num_blocks = 1
    c.study.seeds = (0, 1)
    del c.study.variants["human"], c.study.variants["fmo_learned_gate"]
    c.study.world.update({"num_queries": 150, "num_docs": 600, "sessions": 3000})
  elif arg:
    raise ValueError(f"unknown config variant {arg!r}; known: 'tiny'")
  return c
