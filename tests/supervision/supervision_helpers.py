"""A batch with every label source, configs for the supervision tests, data with LLM labels."""

import dataclasses

import numpy as np
from train_helpers import tiny_lists

from rankjax.configs import default as config_defaults
from rankjax.data import store


def batch_of(num_lists=6, list_size=5, seed=0):
  """Lists with click, LLM and human labels on every item; list 0 is short, the last padding."""
  rng = np.random.default_rng(seed)
  mask = np.ones((num_lists, list_size), bool)
  mask[0, 3:] = False
  return {
    "mask": mask,
    "list_valid": np.array([True] * (num_lists - 1) + [False]),
    "label_click": rng.integers(0, 2, (num_lists, list_size)).astype(np.float32),
    "mask_click": np.ones((num_lists, list_size), bool),
    "label_llm": rng.integers(0, 5, (num_lists, list_size)).astype(np.float32),
    "mask_llm": np.ones((num_lists, list_size), bool),
    "label_human": rng.integers(0, 5, (num_lists, list_size)).astype(np.float32),
    "mask_human": np.ones((num_lists, list_size), bool),
    "position": np.tile(np.arange(1, list_size + 1), (num_lists, 1)).astype(np.int32),
    "query_freq": np.array([1000.0, 50.0, 2.0, 1.0, 300.0, 7.0], np.float32)[:num_lists],
    "bucket": np.array([0, 1, 2, -1, 0, 2], np.int32)[:num_lists],
  }


def config_for(objective="freq_multi_objective", gate="hard", **supervision):
  """The default config, softmax loss, clicks, and a hard gate with distinct weights per bucket."""
  config = config_defaults.default_config()
  config.seed, config.total_steps = 3, 100
  config.supervision.update(
    {"objective": objective, "source": "click", "weights": "none", "schedule": "llm_then_click"}
  )
  config.supervision.gate.update(
    {
      "name": gate,
      "bucket_weights": (1.0, 0.5, 0.0),
      "unknown_weight": 0.25,
      "centre": 20.0,
      "temperature": 1.0,
    }
  )
  config.supervision.update(supervision)
  return config


def tiny_dataset_with_llm(directory):
  """train_helpers' tiny dataset, with LLM labels on every item too (the hybrid objectives')."""
  rng = np.random.default_rng(7)

  def with_llm(lists):
    return [
      dataclasses.replace(
        l, labels={**l.labels, "llm": rng.integers(0, 5, len(l.doc_ids)).astype(np.float32)}
      )
      for l in lists
    ]

  return store.write_dataset(
    directory,
    name="tiny_llm",
    splits={
      "train": with_llm(tiny_lists(16, seed=0)),
      "validation": with_llm(tiny_lists(5, seed=1)),
      "test": with_llm(tiny_lists(6, seed=2)),
    },
  )
