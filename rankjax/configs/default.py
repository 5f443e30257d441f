"""Every key the library reads, with its default and meaning, once: `default_config()`.

As in the flax examples' `configs/default.py`, an experiment config (configs/*.py) calls
`default_config()` and then sets only what makes it that experiment. The defaults live in the
library, not beside the configs, so that a config loads from any working directory. The library
reads these keys as attributes and never defaults them again; since every key is declared, every
key is a command-line override of a locked config (`--config.data.world.sessions=3000`).

Sections that choose a thing by name take its options beside the name: `config.model`
(`model_config`), `config.loss` (`{"name": "lambda", "topn": 10}`). What experiment files share
beyond the defaults (the paper's supervision variants) is in `rankjax.configs.common`.
"""

import dataclasses
import typing

import ml_collections
from ml_collections import config_dict

from rankjax import models
from rankjax.sim import world

# flax.linen.Module's own dataclass fields, not model settings.
_MODULE_FIELDS = ("parent", "name")

# What no default fits: typed placeholders (None) in `default_config()` that every experiment sets.
EXPERIMENT_KEYS = (
  "total_steps",
  "data.name",
  "data.list_sizes",
  "model.name",
  "eval.every",
  "checkpoint.every",
)


def default_config() -> ml_collections.ConfigDict:
  """The settings the library reads, as most runs set them; `EXPERIMENT_KEYS` are left unset.

  A config with a `study` section is a study (`rankjax.study.runner` documents that section's
  keys; only a study has it).
  """
  c = ml_collections.ConfigDict()
  c.seed = 0  # model init, dropout and the data order; a study sets it per run
  c.total_steps = config_dict.placeholder(int)  # optimizer steps of the run
  c.log_every = 50  # steps between training-metric writes
  # Micro-batches per step (gradient accumulation, `step.train_step`): the same step at about
  # 1 / k of the activation memory, for long lists or big encoders; must divide lists per device.
  c.grad_accum_steps = 1
  # The dropout key's implementation (`step.dropout_key`): "threefry2x32" (JAX's default) or
  # "rbg" / "unsafe_rbg" (XLA's RngBitGenerator; see the `jax.random` docs on PRNG
  # implementations). It draws whole masks only for models using `nn.Dropout` masks (the MLP, a
  # cross-encoder with dropout_masks="prng"); the cross-encoder's default hash masks take two
  # words of it per dropout call (`rankjax.models.layers.dropout`).
  c.dropout_rng_impl = "threefry2x32"

  # Where the data comes from (`rankjax.engine.data_source.resolve`): `path`, a prepared dataset;
  # else `name`, prepared under `cache_dir` on the first run: a known svmlight set
  # (`rankjax.data.svmlight.DATASETS`) or "demo_world", the simulated world of `world`.
  c.data = ml_collections.ConfigDict()
  c.data.name = config_dict.placeholder(str)  # the dataset's name (also what reports call it)
  c.data.path = ""  # a prepared dataset directory; empty: prepare `data.name`
  c.data.cache_dir = ""  # where `data.name` is prepared; empty: <workdir>/data
  # The demo world's parameters (`rankjax.sim.world.WorldConfig`, its defaults), for
  # data.name = "demo_world".
  c.data.world = ml_collections.ConfigDict(dataclasses.asdict(world.WorldConfig()))
  # The list lengths batches are padded to (the smallest that fits); a longer list is cut to a
  # sample of the largest size's items.
  c.data.list_sizes = config_dict.placeholder(tuple)
  c.data.batch_size = 32  # lists per global batch, split over hosts and devices
  c.data.num_threads = 2  # grain reader threads; 0 reads on the main thread (in-memory data)
  c.data.token_buckets = 0  # token widths batches are cut to (0 or 1: the stored width)
  # Batches of lists of one padded list size and similar pair lengths: few padding documents and
  # tokens to encode; batch composition is no longer uniformly random.
  c.data.length_grouped = False

  # The ranker: `{"name": ..., **that model's fields}` (`rankjax.models`), set with
  # `model_config(name, ...)` so that every field is an override.
  c.model = ml_collections.ConfigDict({"name": config_dict.placeholder(str)})
  # The loss the objectives train with, and options of that loss beside its name
  # (`rankjax.ranking.losses.get_loss`), e.g. {"name": "lambda", "lambdaweight": "ndcg2"}. Only
  # `name` is declared, so that `--config.loss.name=...` switches the loss of any config; a
  # config file sets the options it wants.
  c.loss = ml_collections.ConfigDict({"name": "softmax"})

  # What trains the ranker (`rankjax.supervision`, each piece documented where it is defined).
  # A study's variants override these keys.
  c.supervision = ml_collections.ConfigDict()
  c.supervision.objective = "single"  # `supervision.OBJECTIVES`: single, freq_multi_objective, ...
  c.supervision.source = "human"  # the labels "single" trains on: "click", "llm" or "human"
  c.supervision.weights = "none"  # per-item weights of click labels (`supervision.WEIGHTS`)
  # ips_pbm: examination probability per rank, rank 1 first (a PBM fit, `rankjax.click_models`);
  # empty: the dataset's own, filled before training where its maker knows them (the demo world).
  c.supervision.propensities = ()
  c.supervision.ips_clip = 0.01  # ips_pbm, dla: propensity ratios are clipped below at this
  # The learning rate of an objective's own params (dla's propensities) over the model's.
  c.supervision.objective_lr_scale = 1.0
  c.supervision.num_positions = 10  # dla, two_tower, regression_em: the ranks they model
  c.supervision.em_decay = 0.99  # regression_em: decay of its per-rank counts, per batch
  # freq_multi_objective: the weight of each list's click loss by query frequency (`GATES`).
  c.supervision.gate = ml_collections.ConfigDict()
  c.supervision.gate.name = "linear"  # hard, sigmoid, linear (no settings) or learned
  c.supervision.gate.bucket_weights = (1.0, 0.5, 0.0)  # hard: w of high, medium, low buckets
  c.supervision.gate.unknown_weight = 0.5  # hard, linear: w of lists without a bucket
  c.supervision.gate.centre = 20.0  # sigmoid: the frequency where w = 0.5
  c.supervision.gate.temperature = 1.0  # sigmoid: its width, in log(1 + frequency)
  # learned: w = sigmoid(coef log(1 + freq) + bias); unset: fitted before training on the
  # human-labelled split `fit_split` (`gates.fit_learned_gate`).
  c.supervision.gate.coef = config_dict.placeholder(float)
  c.supervision.gate.bias = config_dict.placeholder(float)
  c.supervision.gate.fit_split = "validation"
  # data_schedule: the stages (`schedule` module doc); empty: the preset `schedule` (`PRESETS`).
  c.supervision.schedule = "frequency_staged"
  c.supervision.stages = ()
  # How a list gets its source (`schedule.MODES`): "per_list", every list, its source drawn in the
  # step (a list of a bucket the stage leaves out adds 0); "iterator", the input pipeline serves
  # only the lists the stage trains, each with its source (README: "The data schedule").
  c.supervision.schedule_mode = "per_list"
  c.supervision.anneal_pieces = (
    10  # iterator: an annealed stage's mixture changes in this many steps
  )

  # AdamW with linear warmup and cosine decay to 0 at total_steps (`step.make_optimizer`).
  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.lr = 1e-3  # peak learning rate
  c.optimizer.warmup_steps = 100
  c.optimizer.weight_decay = 1e-2  # the model's params only, not an objective's
  c.optimizer.clip_norm = 1.0  # the gradient's global norm is clipped to this first

  c.eval = ml_collections.ConfigDict()
  c.eval.every = config_dict.placeholder(int)  # steps between evaluations (and the last step)
  c.eval.splits = ("validation",)  # prepared splits evaluated; results per frequency bucket
  c.eval.label_source = "human"  # the labels metrics are computed against
  c.eval.metrics = ("ndcg@10",)  # `rankjax.ranking.metrics` specs, e.g. "ndcg@10", "err@10", "pnr"
  c.eval.batch_size = 64  # lists per evaluation batch

  c.checkpoint = ml_collections.ConfigDict()
  # Steps between checkpoints (evaluation steps and the last step save too).
  c.checkpoint.every = config_dict.placeholder(int)
  c.checkpoint.keep = 2  # latest checkpoints kept; a run resumes from the newest
  c.checkpoint.best_metric = ""  # e.g. "validation/ndcg@10/all": also keep its best; "": none
  c.checkpoint.best_mode = "max"  # whether the best `best_metric` is the "max" or the "min"
  return c


def model_config(name: str, **fields) -> ml_collections.ConfigDict:
  """`config.model` for model `name`: every field of its `Model`, `fields` set, defaults otherwise.

  A locked config takes `--config.model.<field>=...` only for keys it has, so listing every field
  makes each overridable (`--config.model.remat=True`, `--config.model.dtype=bfloat16`). A field
  whose value is None becomes a typed placeholder, so it can be set from the command line too.

  >>> c = model_config("mlp", hidden=64)
  >>> c.name, c.hidden, c.num_blocks
  ('mlp', 64, 3)
  """
  model_class = models.get_module(name).Model
  hints = typing.get_type_hints(model_class)
  settings = [f for f in dataclasses.fields(model_class) if f.name not in _MODULE_FIELDS]
  unknown = sorted(set(fields) - {f.name for f in settings})
  if unknown:
    raise ValueError(
      f"model {name!r} has no field(s) {unknown}; known: {sorted(f.name for f in settings)}"
    )
  c = ml_collections.ConfigDict({"name": name})
  for field in settings:
    value = fields.get(field.name, field.default)
    if value is None:
      types_ = [t for t in typing.get_args(hints[field.name]) if t is not type(None)]
      value = config_dict.placeholder(types_[0] if len(types_) == 1 else object)
    c[field.name] = value
  return c


def check_experiment_keys(config: ml_collections.ConfigDict) -> None:
  """Raises a ValueError naming the `EXPERIMENT_KEYS` that `config` leaves unset.

  >>> check_experiment_keys(default_config())  # doctest: +ELLIPSIS
  Traceback (most recent call last):
  ValueError: config.total_steps, config.data.name, ... are unset: every experiment sets them ...
  """
  unset = []
  for key in EXPERIMENT_KEYS:
    node = config
    for part in key.split("."):
      node = getattr(node, part, None)
    if node is None:
      unset.append(f"config.{key}")
  if unset:
    raise ValueError(
      f"{', '.join(unset)} are unset: every experiment sets them "
      "(rankjax.configs.default.EXPERIMENT_KEYS)"
    )
