"""Adding a ranker is one new file in `rankjax/models/` and one config line, and nothing else."""

import json
import sys
import textwrap

import pytest
from train_helpers import tiny_config, tiny_dataset

import rankjax.models
from rankjax import registry
from rankjax.configs import default as config_defaults
from rankjax.engine import train

TOY = '''
"""A linear ranker: the score is a weighted sum of the item's features, times `scale`."""

import flax.linen as nn


class Model(nn.Module):
  scale: float = 1.0

  @nn.compact
  def __call__(self, batch, *, train=False):
    return self.scale * nn.Dense(1, name="linear")(batch["features"])[..., 0]
'''


@pytest.fixture
def toy_model(tmp_path, monkeypatch):
  """`rankjax/models/toy_linear.py`, as if a contributor had added that one file."""
  (tmp_path / "toy_linear.py").write_text(textwrap.dedent(TOY))
  monkeypatch.setattr(rankjax.models, "__path__", [*rankjax.models.__path__, str(tmp_path)])
  yield "toy_linear"
  sys.modules.pop("rankjax.models.toy_linear", None)


def test_a_new_model_file_is_a_known_model(toy_model):
  assert toy_model in registry.module_names(rankjax.models)
  assert rankjax.models.get_module(toy_model).__name__ == "rankjax.models.toy_linear"
  with pytest.raises(registry.UnknownName, match=r"known: .*toy_linear"):
    rankjax.models.get_module("toy_linearr")


@pytest.mark.slow
def test_a_new_model_trains_by_one_config_line(toy_model, tmp_path):
  config = tiny_config(tiny_dataset(tmp_path / "data"))
  config.model = config_defaults.model_config(toy_model, scale=2.0)  # the one line
  out = train.train_and_evaluate(config, tmp_path / "run")
  assert out["step"] == config.total_steps
  assert set(out["state"].params) == {"linear"}
  saved = json.loads((tmp_path / "run" / "config.json").read_text())
  assert saved["model"] == {"name": toy_model, "scale": 2.0}
