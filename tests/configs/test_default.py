"""`config_defaults.default_config()` owns the engine's defaults; every shipped config starts there.

The shipped configs must keep every default key, add only the keys `default_config` documents as
the experiment's own, and stay overridable key by key through `rankjax.main`'s locked config flag.
The engine's fallbacks for keys read with `.get` must equal the defaults, so that a config from
before a key had a default runs the same.
"""

import ast
import dataclasses
import inspect
import re
import warnings

import pytest
from absl import flags
from ml_collections import config_flags

from rankjax.configs import default as config_defaults
from rankjax import models

from train_helpers import ROOT, load_config

VARIANTS = {"demo": (None, "tiny"), "lightgbm_example": (None, "local"),
            "mslr_mlp": (None, "local"), "tiangong_st": (None, "tiny"),
            "trec_cross_encoder": ("click", "human", "tiny"), "trec_session": (None, "tiny")}
OPTIONAL = {"study"}  # documented as optional: only a study has it
ENGINE = ("engine/train.py", "engine/step.py", "study/runner.py", "engine/evaluate.py",
          *(f"supervision/{p.name}" for p in (ROOT / "rankjax" / "supervision").glob("*.py")))


def _flat(tree, prefix=""):
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[prefix + key] = value
  return out


def _experiment_keys():
  """The keys `default_config`'s docstring lists as set by each experiment."""
  doc = inspect.getdoc(config_defaults.default_config)
  keys = set(re.findall(r"^  ([a-z_.]+) +\S", doc, re.M))
  assert {"total_steps", "model", "loss"} <= keys, keys  # the docstring's list was found
  return keys


def _parse_flags(*args):
  """The config as `rankjax.main` parses it: a locked config file flag with overrides."""
  argv = ["main", *args]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True,
                                  sys_argv=argv)
  with warnings.catch_warnings():  # ml_collections loads config files with load_module()
    warnings.filterwarnings("ignore", "the load_module", DeprecationWarning)
    values(argv)
  return values.config


def test_every_shipped_config_is_checked():
  assert set(VARIANTS) == {p.stem for p in (ROOT / "configs").glob("*.py")}


@pytest.mark.parametrize("name,arg", [(n, a) for n, args in VARIANTS.items() for a in args])
def test_config_is_the_defaults_plus_documented_experiment_keys(name, arg):
  defaults = _flat(config_defaults.default_config().to_dict())
  config = _flat(load_config(name, arg).to_dict())
  documented = _experiment_keys()
  assert not defaults.keys() - config.keys(), "a config dropped a default key"
  undocumented = [k for k in config.keys() - defaults.keys()
                  if not any(k == d or k.startswith(d + ".") for d in documented)]
  assert not undocumented, f"{name}:{arg} sets keys default_config neither has nor documents"
  unset = [d for d in documented - OPTIONAL
           if not any(k == d or k.startswith(d + ".") for k in config)]
  assert not unset, f"{name}:{arg} leaves experiment keys unset: {unset}"
  for key, value in defaults.items():  # an override keeps the default's type
    assert type(config[key]) is type(value), (key, config[key], value)


def test_engine_fallbacks_equal_the_defaults():
  defaults = _flat(config_defaults.default_config().to_dict())
  checked = []
  for file in ENGINE:
    source = (ROOT / "rankjax" / file).read_text()
    for section, key, fallback in re.findall(r"config\.(\w+)\.get\(\"(\w+)\", ([^)]+)\)", source):
      if f"{section}.{key}" in defaults:
        assert ast.literal_eval(fallback) == defaults[f"{section}.{key}"], (file, section, key)
        checked.append(f"{section}.{key}")
  assert {"data.token_buckets", "data.length_grouped"} <= set(checked), checked


def test_every_default_is_read_by_the_engine():
  source = "\n".join((ROOT / "rankjax" / f).read_text() for f in ENGINE)
  for alias, section in re.findall(r"^ *(\w+) = config\.(\w+)$", source, re.M):
    source = re.sub(rf"\b{alias}\.", f"config.{section}.", source)  # `opt = config.optimizer`
  for key in _flat(config_defaults.default_config().to_dict()):
    *section, leaf = key.split(".")
    owner = ".".join(["config", *section])
    assert re.search(rf"{re.escape(owner)}\.({leaf}\b|get\(\"{leaf}\")", source), key


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_defaults_override_through_the_locked_flag_from_any_directory(name, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  path = ROOT / "configs" / f"{name}.py"
  new = {"seed": 7, "data.num_threads": 3, "data.token_buckets": 2, "optimizer.lr": 0.5,
         "checkpoint.best_mode": "min", "data.length_grouped": True}
  config = _parse_flags(f"--config={path}", *(f"--config.{k}={v}" for k, v in new.items()))
  assert config.is_locked
  assert {k: v for k, v in _flat(config.to_dict()).items() if k in new} == new
  with pytest.raises(AttributeError, match="learning_rate"):
    _parse_flags(f"--config={path}", "--config.optimizer.learning_rate=1")


def test_default_config_is_a_fresh_copy():
  config_defaults.default_config().optimizer.lr = 5.0
  assert config_defaults.default_config().optimizer.lr == 1e-3


@pytest.mark.parametrize("name,arg", [(n, a) for n, args in VARIANTS.items() for a in args])
def test_config_lists_every_field_of_its_model(name, arg):
  config = load_config(name, arg)
  model_class = models.get_module(config.model.name).Model
  fields = {f.name for f in dataclasses.fields(model_class)} - {"parent", "name"}
  assert set(config.model) == fields | {"name"}
  models.build(config.model)  # the section is the Model's keyword arguments


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_model_fields_override_through_the_locked_flag(name):
  path = ROOT / "configs" / f"{name}.py"
  model_name = load_config(name, VARIANTS[name][0]).model.name
  new = ({"dropout": 0.25, "hidden": 32} if model_name == "mlp" else
         {"dropout": 0.25, "remat": True, "dtype": "bfloat16", "attention": "xla",
          "num_layers": 2})  # num_layers: a None default, a typed placeholder
  config = _parse_flags(f"--config={path}", *(f"--config.model.{k}={v}" for k, v in new.items()))
  assert {k: config.model[k] for k in new} == new
  model = models.build(config.model)[1]
  assert all(getattr(model, k) == v for k, v in new.items())


def test_model_config_names_an_unknown_field():
  with pytest.raises(ValueError, match=r"has no field\(s\) \['depth'\].*num_blocks"):
    config_defaults.model_config("mlp", depth=3)
  with pytest.raises(ValueError, match="unknown model 'transformer'"):
    config_defaults.model_config("transformer")
