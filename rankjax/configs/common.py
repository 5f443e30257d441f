"""What experiment files share beyond `default_config()`, as big_vision's `configs/common.py`.

Pure data: functions that return config values, for configs/*.py to set.
"""


def paper_variants(**click_weights) -> dict[str, dict]:
  """The paper's supervision variants: `config.study.variants` (overrides of `config.supervision`).

  click and llm train on one label source; data_schedule trains in stages ordered by query
  frequency (the paper's hint, preset "frequency_staged"); freq_multi_objective mixes the click
  and LLM losses of each list by the parameter-free linear frequency gate; human is the
  human-label reference. `click_weights` weight the clicks of the variants that train on them
  (`config.supervision.weights` and its keys, e.g. `weights="ips_pbm", propensities=(...)`);
  without them clicks are not weighted.

  >>> sorted(paper_variants())
  ['click', 'data_schedule', 'freq_multi_objective', 'human', 'llm']
  >>> paper_variants(weights="ips_pbm")["click"]
  {'objective': 'single', 'source': 'click', 'weights': 'ips_pbm'}
  """
  clicks = click_weights or {"weights": "none"}
  return {
    "click": {"objective": "single", "source": "click", **clicks},
    "llm": {"objective": "single", "source": "llm", "weights": "none"},
    "data_schedule": {"objective": "data_schedule", "schedule": "frequency_staged", **clicks},
    "freq_multi_objective": {
      "objective": "freq_multi_objective",
      "gate": {"name": "linear"},
      **clicks,
    },
    "human": {"objective": "single", "source": "human", "weights": "none"},
  }
