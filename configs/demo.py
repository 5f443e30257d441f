r"""The embedded demo: the whole study on a simulated world, no download, minutes on two CPU cores.

The data is a simulation (`rankjax/sim/world.py`): documents with a semantic part (seen by a
simulated annotator, with noise) and a quality part (seen only through simulated clicks), Zipf
query frequencies, PBM position bias. Click, LLM, data-schedule and frequency-gated
multi-objective rankers (plus the multi-objective with a learned gate, and a human-label
reference) train over three seeds and are evaluated against the world's human labels per
frequency bucket; `<workdir>/report.md` has the results. The variants' settings were fixed before
any run: the data schedule is the paper's hint (multi-stage training ordered by query frequency),
the gate the parameter-free linear one.

  rankjax train --config=configs/demo.py --workdir=/tmp/rankjax_demo
  rankjax train --config=configs/demo.py:tiny --workdir=/tmp/rankjax_demo_tiny
  rankjax study --config=configs/demo.py:noise_sweep --workdir=/tmp/rankjax_noise_sweep
"""

import ml_collections

from rankjax.configs import common
from rankjax.configs import default as config_defaults


def get_config(arg=None):
  """The demo study; `arg="tiny"` is a smoke version (tests): the four variants, small and short;
  `arg="noise_sweep"` sweeps the simulated annotator's noise (`study.sweep`), cut to fit about 20
  minutes on two CPU cores: seeds 0 and 1, no human reference, no baselines."""
  c = config_defaults.default_config()
  c.total_steps = 300
  c.log_every = 100

  # The simulated world, built on the first run; its parameters are `data.world`'s defaults
  # (rankjax.sim.world.WorldConfig; README "Demo" lists the same values).
  c.data.name = "demo_world"
  c.data.list_sizes = (10,)
  c.data.num_threads = 0

  c.model = config_defaults.model_config("mlp", hidden=64, num_blocks=2, dropout=0.1)

  c.loss = {"name": "softmax"}
  c.supervision.source = "click"
  c.supervision.gate.fit_split = "validation"  # the learned gate's human-labelled lists

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
  c.study.baselines = (  # LightGBM's rows when it is installed (pip install 'rankjax[baselines]')
    "logged_order",
    "lgbm_human",
    "lgbm_llm",
    "lgbm_click",
    "lgbm_click_unbiased",
  )
  c.study.runs = {}  # name -> another system's TREC run file, scored beside the variants
  c.study.sweep = None  # {'key': ..., 'values': (...)}: the study at each value
  c.study.variants = ml_collections.ConfigDict(
    {
      **common.paper_variants(weights="ips_pbm"),
      # Beyond the paper: the gate fitted on the validation queries' human labels.
      "fmo_learned_gate": {
        "objective": "freq_multi_objective",
        "weights": "ips_pbm",
        "gate": {"name": "learned"},
      },
    }
  )

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
    c.data.world.update({"num_queries": 150, "num_docs": 600, "sessions": 3000})
  elif arg == "noise_sweep":
    # Where LLM labels stop helping and the hybrids stop paying: the world at each noise level
    # differs only in its LLM labels (the annotator's noise is drawn the same way at every level).
    c.study.sweep = {"key": "data.world.llm_noise", "values": (0.25, 0.5, 1.0, 2.0)}
    c.study.seeds = (0, 1)
    c.study.baselines = ()
    del c.study.variants["human"]
  elif arg:
    raise ValueError(f"unknown config variant {arg!r}; known: 'tiny', 'noise_sweep'")
  return c
