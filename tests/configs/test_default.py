"""`default_config()` declares every key the library reads, once; every shipped config keeps them.

The keys the library reads come from an AST scan (`_config_reads`) of the layers that receive the
experiment config: attribute chains on `config`, `cfg` and `<anything>.config` (`run.config`),
`.get("key")` steps and locals bound to a section (`sup = config.supervision`), reads and writes
alike. Deliberate exceptions are listed below with their reasons, and a test fails when one is no
longer needed.
"""

import ast
import dataclasses
import functools

import jax.numpy as jnp
import pytest
from ml_collections import config_dict
from train_helpers import ROOT, load_config, parse_config_flags, tiny_config, tiny_dataset

from rankjax import models, registry
from rankjax.configs import default as config_defaults
from rankjax.ranking import losses
from rankjax.sim import world

VARIANTS = {
  "demo": (None, "tiny"),
  "lightgbm_example": (None, "local"),
  "mslr_mlp": (None, "local"),
  "tiangong_processed": (None, "tiny"),
  "tiangong_st": (None, "tiny"),
  "trec_cross_encoder": ("click", "human", "tiny"),
  "trec_session": (None, "tiny"),
}
CONFIGS = [(name, arg) for name, args in VARIANTS.items() for arg in args]
LIBRARY = ROOT / "rankjax"
# The layers that receive the experiment config (and the entry points). The layers below them
# take plain arguments, or a section handed to them (`models.build(config.model)`), and never
# import ml_collections (`test_lower_layers_never_see_the_experiment_config`).
CONFIG_LAYERS = ("supervision", "engine", "study", "cli", "cli.py", "main.py")
ROOT_NAMES = ("config", "cfg")
NOT_THE_EXPERIMENT_CONFIG = {"jax.config": "JAX's own settings (`jax.config.update`)"}
# ConfigDict's own methods: a chain of keys ends at one (`.get("key")` adds its key: `_chain`).
CONFIGDICT_METHODS = frozenset(
  name for name in dir(config_dict.ConfigDict) if not name.startswith("_")
)
# Sections whose keys no default can list; the reason, and what checks them instead.
FREE_FORM = {
  "study": "optional: its presence makes a config a study; `rankjax.study.runner` documents "
  "its keys and every shipped study config sets each one the library reads "
  "(test_study_configs_set_every_study_key_read)",
}
# Sections read whole by what they name; their keys are that thing's options.
WHOLE_SECTIONS = {
  "model": "the chosen Model's fields (`model_config`; test_config_lists_every_field_of_its_model)",
  "loss": "the chosen loss's options (`rankjax.ranking.losses.get_loss`)",
  "data.world": "`rankjax.sim.world.WorldConfig`'s fields (test_world_keys_are_the_world_config)",
}


@dataclasses.dataclass(frozen=True)
class Read:
  """One read (or write) of a config key in the library."""

  file: str  # relative to rankjax/
  line: int
  key: tuple[str, ...]  # ("data", "token_buckets")
  via_get: bool  # `.get("token_buckets", ...)`, not an attribute

  def __str__(self):
    return f"rankjax/{self.file}:{self.line}: config.{'.'.join(self.key)}" + (
      " (.get)" if self.via_get else ""
    )


def _chain(node, sections) -> tuple[str, ...] | None:
  """The key path `node` denotes in the config (() for the config itself), or None."""
  if isinstance(node, ast.Name):
    return sections.get(node.id, () if node.id in ROOT_NAMES else None)
  if isinstance(node, ast.Attribute):
    if ast.unparse(node) in NOT_THE_EXPERIMENT_CONFIG:
      return None
    base = _chain(node.value, sections)
    if base is None:
      return () if node.attr == "config" else None  # `run.config`
    return None if node.attr in CONFIGDICT_METHODS else base + (node.attr,)
  if (
    isinstance(node, ast.Call)
    and isinstance(node.func, ast.Attribute)
    and node.func.attr == "get"
    and node.args
    and isinstance(node.args[0], ast.Constant)
  ):
    base = _chain(node.func.value, sections)
    return None if base is None else base + (node.args[0].value,)
  return None


def _scopes(tree):
  """The outermost functions (their nested functions, closures, included), and the module."""
  outer = []

  def visit(node, inside):
    for child in ast.iter_child_nodes(node):
      is_function = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
      if is_function and not inside:
        outer.append(child)
      visit(child, inside or is_function)

  visit(tree, False)
  return outer + [tree]


def _source_reads(source: str, rel: str) -> list[Read]:
  """The config reads of the module `rankjax/<rel>` with text `source`."""
  tree = ast.parse(source)
  reads = set()
  for scope in _scopes(tree):
    nodes = list(ast.walk(scope))
    if scope is tree:  # module level: what no function holds
      inner = {id(n) for s in _scopes(tree)[:-1] for n in ast.walk(s)}
      nodes = [n for n in nodes if id(n) not in inner]
    sections = {}
    changed = True
    while changed:  # `sup = config.supervision`, then `gate = sup.gate`, ...
      changed = False
      for node in nodes:
        if (
          isinstance(node, ast.Assign)
          and len(node.targets) == 1
          and isinstance(node.targets[0], ast.Name)
        ):
          chain = _chain(node.value, sections)
          name = node.targets[0].id
          if chain is not None and sections.get(name) != chain and name not in ROOT_NAMES:
            sections[name] = chain
            changed = True
    for node in nodes:
      chain = _chain(node, sections) if isinstance(node, (ast.Attribute, ast.Call)) else None
      if chain:
        reads.add(Read(rel, node.lineno, chain, isinstance(node, ast.Call)))
  return sorted(reads, key=str)


def _scanned_sources() -> dict[str, str]:
  """{path relative to rankjax/: text} of the modules of `CONFIG_LAYERS`."""
  files = [
    p for p in sorted(LIBRARY.rglob("*.py")) if p.relative_to(LIBRARY).parts[0] in CONFIG_LAYERS
  ]
  assert any(p.name == "train.py" for p in files), files
  return {p.relative_to(LIBRARY).as_posix(): p.read_text() for p in files}


@functools.cache
def _config_reads() -> tuple[Read, ...]:
  return tuple(r for rel, source in _scanned_sources().items() for r in _source_reads(source, rel))


def _flat(tree, prefix=()):
  """{key path: value} of a nested dict's leaves."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flat(value, prefix + (key,)))
    else:
      out[prefix + (key,)] = value
  return out


def _declared():
  """Every declared key path: leaves and sections."""
  leaves = _flat(config_defaults.default_config().to_dict())
  return {path[:i] for path in leaves for i in range(1, len(path) + 1)}


def _under(key, sections) -> bool:
  return any(key[: len(s.split("."))] == tuple(s.split(".")) for s in sections)


def test_the_scan_follows_sections_closures_and_get():
  source = """
def f(config, batch):
  sup = config.supervision
  fitted = sup.get("gate")
  jax.config.update("jax_enable_x64", True)
  def inner():
    return config.data.world.to_dict(), fitted.coef
  cfg = make()
  cfg.seed = 1
  return run.config.eval.every, batch.get("x")
"""
  found = {(".".join(r.key), r.via_get) for r in _source_reads(source, "supervision/x.py")}
  assert found == {
    ("supervision", False),
    ("supervision.gate", True),
    ("data", False),
    ("data.world", False),
    ("supervision.gate.coef", False),
    ("seed", False),
    ("eval", False),
    ("eval.every", False),
  }


def test_the_scan_sees_the_library_reads():
  found = {(r.file, ".".join(r.key), r.via_get) for r in _config_reads()}
  for expected in [
    ("engine/train.py", "data.token_buckets", False),  # in train_and_evaluate
    ("engine/train.py", "eval.batch_size", False),  # in its closure run_eval
    ("engine/scoring.py", "eval.label_source", False),  # run.config.eval.label_source
    ("engine/step.py", "optimizer.warmup_steps", False),  # opt = config.optimizer
    ("engine/data_source.py", "data.world", False),  # data = config.data; data.world.to_dict()
    ("study/runner.py", "data.path", False),  # a write: cfg.data.path = ...
    ("study/runner.py", "study.variants", False),  # study = config.study
  ]:
    assert expected in found, expected
  assert not any(".".join(r.key).startswith(("jax_", "update")) for r in _config_reads())


def test_lower_layers_never_see_the_experiment_config():
  for path in sorted(LIBRARY.rglob("*.py")):
    parts = path.relative_to(LIBRARY).parts
    if parts[0] in CONFIG_LAYERS or parts[0] == "configs":
      continue
    imports = {
      alias.name
      for node in ast.walk(ast.parse(path.read_text()))
      if isinstance(node, (ast.Import, ast.ImportFrom))
      for alias in node.names
    } | {
      node.module
      for node in ast.walk(ast.parse(path.read_text()))
      if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not {m for m in imports if m.startswith(("ml_collections", "rankjax.configs"))}, path


def test_every_key_the_library_reads_is_declared():
  declared = _declared()
  undeclared = [
    str(r)
    for r in _config_reads()
    if r.key not in declared and r.key[0] not in FREE_FORM and not _under(r.key, WHOLE_SECTIONS)
  ]
  assert not undeclared, "declare these in rankjax/configs/default.py:\n" + "\n".join(undeclared)


def test_the_library_reads_attributes_not_get_with_a_default():
  gets = [str(r) for r in _config_reads() if r.via_get]
  assert not gets, "read these as attributes (their default is in default.py):\n" + "\n".join(gets)


def test_every_declared_key_is_read():
  reads = {r.key for r in _config_reads()}
  read_whole = [w for w in WHOLE_SECTIONS if tuple(w.split(".")) in reads]
  unread = [
    ".".join(k)
    for k in _flat(config_defaults.default_config().to_dict())
    if k not in reads and not _under(k, read_whole)
  ]
  assert not unread, f"declared but read nowhere: {unread}"


def test_every_listed_exception_is_still_needed():
  reads = {r.key for r in _config_reads()}
  assert all(any(k[0] == section for k in reads) for section in FREE_FORM), FREE_FORM
  assert all(tuple(w.split(".")) in reads for w in WHOLE_SECTIONS), WHOLE_SECTIONS
  sources = _scanned_sources()
  assert all(
    any(expr in text for text in sources.values()) for expr in NOT_THE_EXPERIMENT_CONFIG
  ), NOT_THE_EXPERIMENT_CONFIG


@pytest.mark.parametrize("name,arg", [(n, a) for n, a in CONFIGS if "study" in load_config(n, a)])
def test_study_configs_set_every_study_key_read(name, arg):
  read = {r.key[1] for r in _config_reads() if r.key[0] == "study" and len(r.key) > 1}
  assert read and not read - set(load_config(name, arg).study)


def test_world_keys_are_the_world_config():
  assert config_defaults.default_config().data.world.to_dict() == dataclasses.asdict(
    world.WorldConfig()
  )


def test_every_shipped_config_is_checked():
  assert set(VARIANTS) == {p.stem for p in (ROOT / "configs").glob("*.py")}


@pytest.mark.parametrize("name,arg", CONFIGS)
def test_every_declared_key_is_an_override_of_every_shipped_config(name, arg):
  defaults = config_defaults.default_config()
  config = load_config(name, arg)
  for key in sorted(_declared()):
    *section, leaf = key
    default_node = functools.reduce(lambda node, k: node[k], section, defaults)
    node = functools.reduce(lambda node, k: node[k], section, config)
    assert leaf in node, f"{name}:{arg} dropped the declared key {'.'.join(key)}"
    declared_type = default_node.get_ref(leaf).get_type()
    placeholder = default_node[leaf] is None  # a typed placeholder may stay unset
    if not isinstance(default_node[leaf], config_dict.ConfigDict):
      assert (placeholder and node[leaf] is None) or isinstance(node[leaf], declared_type), (
        key,
        node[leaf],
        declared_type,
      )
  config_defaults.check_experiment_keys(config)  # every experiment key set


def test_experiment_keys_are_unset_placeholders():
  config = config_defaults.default_config()
  for key in config_defaults.EXPERIMENT_KEYS:
    *section, leaf = key.split(".")
    node = functools.reduce(lambda node, k: node[k], section, config)
    assert node[leaf] is None and node.get_ref(leaf).get_type() is not type(None), key
  with pytest.raises(ValueError, match="config.total_steps, .*config.checkpoint.every are unset"):
    config_defaults.check_experiment_keys(config)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_declared_keys_override_through_the_locked_flag_from_any_directory(
  name, tmp_path, monkeypatch
):
  monkeypatch.chdir(tmp_path)
  path = ROOT / "configs" / f"{name}.py"
  new = {
    "seed": 7,
    "total_steps": 9,
    "data.num_threads": 3,
    "data.token_buckets": 2,
    "optimizer.lr": 0.5,
    "checkpoint.best_mode": "min",
    "data.length_grouped": True,
    "data.world.sessions": 500,
    "data.world.zipf": 1.5,
    "loss.name": "mse",
    "data.list_sizes": (16, 32),
  }
  args = [
    f"--config.{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in new.items()
  ]
  config = parse_config_flags(f"--config={path}", *args)
  assert config.is_locked
  assert {k: v for k, v in _flat(config.to_dict()).items() if ".".join(k) in new} == {
    tuple(k.split(".")): v for k, v in new.items()
  }
  assert losses.get_loss(config.loss) is losses.pointwise_mse_loss
  with pytest.raises(AttributeError, match="learning_rate"):
    parse_config_flags(f"--config={path}", "--config.optimizer.learning_rate=1")


def test_default_config_is_a_fresh_copy():
  config_defaults.default_config().optimizer.lr = 5.0
  assert config_defaults.default_config().optimizer.lr == 1e-3


@pytest.mark.parametrize("name,arg", CONFIGS)
def test_config_lists_every_field_of_its_model(name, arg):
  config = load_config(name, arg)
  model_class = models.get_module(config.model.name).Model
  fields = {f.name for f in dataclasses.fields(model_class)} - {"parent", "name"}
  assert set(config.model) == fields | {"name"}
  models.build(config.model)  # the section is the Model's keyword arguments


@pytest.mark.parametrize("name,arg", CONFIGS)
def test_config_loss_resolves(name, arg):
  losses.get_loss(load_config(name, arg).loss)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_model_fields_override_through_the_locked_flag(name):
  path = ROOT / "configs" / f"{name}.py"
  model_name = load_config(name, VARIANTS[name][0]).model.name
  new = (
    {"dropout": 0.25, "hidden": 32}
    if model_name == "mlp"
    else {"dropout": 0.25, "remat": True, "dtype": "bfloat16", "attention": "xla", "num_layers": 2}
  )  # num_layers: a None default, a typed placeholder
  config = parse_config_flags(
    f"--config={path}", *(f"--config.model.{k}={v}" for k, v in new.items())
  )
  assert {k: config.model[k] for k in new} == new
  model = models.build(config.model)[1]
  assert all(getattr(model, k) == v for k, v in new.items())


def test_model_config_names_an_unknown_field():
  with pytest.raises(ValueError, match=r"has no field\(s\) \['depth'\].*num_blocks"):
    config_defaults.model_config("mlp", depth=3)
  with pytest.raises(ValueError, match="unknown model 'transformer'"):
    config_defaults.model_config("transformer")


@pytest.fixture
def toy_loss():
  """A loss with an option, registered for one test: the whole extension is this definition."""
  scales = []

  @registry.register(losses.LOSSES, "toy")
  def scaled_softmax(
    scores, labels, *, where=None, weights=None, reduce_fn=jnp.mean, scale: float = 1.0
  ):
    scales.append(scale)  # at trace time: the option the config bound
    return scale * losses.softmax_loss(
      scores, labels, where=where, weights=weights, reduce_fn=reduce_fn
    )

  yield scales
  del losses.LOSSES["toy"]


@pytest.mark.slow
def test_a_new_loss_with_an_option_trains_from_one_config_line(toy_loss, tmp_path):
  from rankjax.engine import train  # pylint: disable=g-import-not-at-top  (slow import)

  config = tiny_config(
    tiny_dataset(tmp_path / "data"),
    total_steps=2,
    **{"eval.every": 2, "checkpoint.every": 2, "data.list_sizes": (32,)},
  )
  config.loss = {"name": "toy", "scale": 2.0}
  out = train.train_and_evaluate(config, tmp_path / "run")
  assert out["step"] == 2 and set(toy_loss) == {2.0}
  config.loss = {"name": "toy", "scal": 2.0}
  with pytest.raises(
    ValueError,
    match=r"loss 'toy' has no option\(s\) \['scal'\]; its options: "
    "scale",
  ):
    train.train_and_evaluate(config, tmp_path / "run2")
