"""The whole config checked before any data or compilation: one line per violation, naming the
key, the bad value and what is allowed; every violation reported together."""

import dataclasses

import numpy as np
import pytest
from train_helpers import load_config, tiny_dataset, tiny_lists, unpinned

from rankjax import registry, supervision
from rankjax.configs import validate
from rankjax.configs.errors import ConfigError
from rankjax.data import store
from rankjax.engine import validate as engine_validate
from rankjax.study import runner


def _lines(config, check=engine_validate.check) -> tuple[str, ...]:
  with pytest.raises(ConfigError) as error:
    check(config)
  assert str(error.value) == "\n".join(error.value.lines)
  return error.value.lines


def _set(config, key, value):
  *parents, leaf = key.split(".")
  node = config
  for part in parents:
    node = node[part]
  node[leaf] = value
  return config


@pytest.mark.parametrize(
  "config_name,arg,check",
  [
    ("mslr_mlp", "local", engine_validate.check),
    ("lightgbm_example", "local", engine_validate.check),
    ("demo", "tiny", runner.check),
    ("demo", None, runner.check),
  ],
)
def test_shipped_configs_pass(config_name, arg, check):
  check(load_config(config_name, arg))


LOSSES = "approx_ndcg, lambda, listmle, mse, pairwise_hinge, pairwise_logistic, sigmoid, softmax"
OBJECTIVES = "data_schedule, dla, freq_multi_objective, regression_em, single, two_tower"
METRIC_SPEC = (
  "(a spec is <metric> or <metric>@<k>, <metric> one of dcg, err, mrr, ndcg, pnr, precision)"
)


@pytest.mark.parametrize(
  "key,value,line",
  [
    ("total_steps", -5, "config.total_steps=-5: an integer >= 1"),
    ("seed", -1, "config.seed=-1: an integer >= 0"),
    (
      "data.list_sizes",
      (0,),
      "config.data.list_sizes=(0,): each value an integer >= 1 (not at position 0)",
    ),
    ("data.list_sizes", (), "config.data.list_sizes=(): at least 1 value(s), each an integer >= 1"),
    ("data.batch_size", 0, "config.data.batch_size=0: an integer >= 1"),
    ("optimizer.lr", 0.0, "config.optimizer.lr=0.0: a number > 0"),
    ("optimizer.lr", float("nan"), "config.optimizer.lr=nan: a number > 0"),
    ("checkpoint.every", 0, "config.checkpoint.every=0: an integer >= 1"),
    ("log_every", True, "config.log_every=True: an integer >= 1"),
    ("supervision.em_decay", 1.5, "config.supervision.em_decay=1.5: a number in [0, 1]"),
    (
      "supervision.gate.bucket_weights",
      (1.0, 0.5),
      "config.supervision.gate.bucket_weights=(1.0, 0.5): 3 values, each a number in [0, 1]",
    ),
    ("loss.name", "softmx", f"config.loss.name='softmx': unknown loss; known: {LOSSES}"),
    (
      "supervision.objective",
      "singel",
      f"config.supervision.objective='singel': unknown objective; known: {OBJECTIVES}",
    ),
    (
      "supervision.source",
      "clicks",
      "config.supervision.source='clicks': unknown label source; known: click, human, llm",
    ),
    (
      "supervision.weights",
      "ips",
      "config.supervision.weights='ips': unknown weights hook; known: ips_pbm, none",
    ),
    (
      "supervision.gate.name",
      "step",
      "config.supervision.gate.name='step': unknown gate; known: hard, learned, linear, sigmoid",
    ),
    (
      "supervision.schedule",
      "warmup",
      "config.supervision.schedule='warmup': unknown schedule preset; known: anneal_cosine, "
      "anneal_linear, click_then_llm, frequency_staged, llm_then_click",
    ),
    ("model.name", "mlpp", "config.model.name='mlpp': unknown model; known: cross_encoder, mlp"),
    (
      "eval.metrics",
      ("ndcg@10", "ndcg@x"),
      f"config.eval.metrics[1]='ndcg@x': the cutoff after '@' must be a positive integer "
      f"{METRIC_SPEC}",
    ),
    (
      "eval.metrics",
      ("ndcg@10", "nDCG@10"),
      "config.eval.metrics[1]='nDCG@10': unknown metric 'nDCG'; known: dcg, err, mrr, ndcg, "
      "pnr, precision",
    ),
    (
      "eval.label_source",
      "humans",
      "config.eval.label_source='humans': unknown label source; known: click, human, llm",
    ),
    (
      "checkpoint.best_metric",
      "validation/ndcg@20/all",
      "config.checkpoint.best_metric='validation/ndcg@20/all': '' or <split>/<metric>/<bucket>, "
      "<split> one of config.eval.splits ('validation', 'test'), <metric> one of "
      "config.eval.metrics ('ndcg@1', 'ndcg@3', 'ndcg@5', 'ndcg@10', 'err@10', 'pnr'), <bucket> "
      "one of all, high, low, medium",
    ),
    (
      "checkpoint.best_metric",
      "validation/ndcg@10/rare",
      "config.checkpoint.best_metric='validation/ndcg@10/rare': unknown bucket 'rare'; known: "
      "all, high, low, medium",
    ),
    (
      "checkpoint.best_mode",
      "largest",
      "config.checkpoint.best_mode='largest': unknown best mode; known: max, min",
    ),
    (
      "dropout_rng_impl",
      "philox",
      "config.dropout_rng_impl='philox': unknown dropout key implementation; known: rbg, "
      "threefry2x32, unsafe_rbg",
    ),
    (
      "supervision.stages",
      ({"start": 0, "end": 10, "mix": {"clik": 1.0}},),
      "config.supervision.stages: schedule stage 0: unknown source 'clik'; known: "
      "('click', 'llm', 'human')",
    ),
    (
      "supervision.schedule_mode",
      "per_batch",
      "config.supervision.schedule_mode='per_batch': unknown schedule mode; known: iterator, "
      "per_list",
    ),
    ("supervision.anneal_pieces", 0, "config.supervision.anneal_pieces=0: an integer >= 1"),
    ("data.path", "/nonexistent", None),  # its own line below
  ],
)
def test_each_violation_is_one_line_naming_key_value_and_allowed(key, value, line):
  config = _set(load_config(), key, value)
  if key == "data.path":
    line = (
      "config.data.path='/nonexistent': not a prepared dataset (no dataset_info.json); write one "
      "with `rankjax data prepare ... --output DIR --name NAME` and give DIR/NAME/1.0.0"
    )
  assert unpinned(_lines(config)) == unpinned((line,))


def test_loss_options_are_the_losses():
  config = load_config()
  config.loss = {"name": "softmax", "topn": 10}
  assert _lines(config) == (
    "config.loss={'name': 'softmax', 'topn': 10}: loss 'softmax' has no option(s) ['topn']; "
    "its options: none",
  )
  config.loss = {"name": "lambda", "lambdaweight": "ndcg3"}
  assert _lines(config) == (
    "config.loss.lambdaweight='ndcg3': unknown lambdaweight; known: lambdarank, ndcg2",
  )


def test_unknown_model_field_and_data_name():
  config = load_config()
  config.unlock()
  config.model.depth = 3
  config.data.name = "msrl_web10k"
  assert _lines(config) == (
    "config.model.depth=3: model 'mlp' has no field 'depth'; its fields: batch_norm_momentum, "
    "dropout, hidden, num_blocks",
    "config.data.name='msrl_web10k': config.data.path is empty and this is no known dataset; "
    "known: demo_world, lightgbm_lambdarank_example, mslr_web10k_sample",
  )


def test_a_data_name_that_is_a_path_is_left_to_the_data_source(tmp_path):
  """A prepared directory or LETOR file is read by `data_source.resolve`, which names a missing
  path; the pre-data check lets both through."""
  config = load_config()
  config.unlock()
  for name in (str(tmp_path), "no/such/dir"):
    config.data.name = name
    assert engine_validate.problems(config) == []


def test_every_violation_is_reported_together_unset_keys_first():
  config = load_config()
  config.total_steps = None
  config.data.list_sizes = (0,)
  config.loss.name = "softmx"
  config.eval.metrics = ("ndcg@x",)
  config.checkpoint.best_metric = "validation/ndcg@x/all"
  lines = _lines(config)
  assert [line.split("=")[0].split(" ")[0] for line in lines] == [
    "config.total_steps",
    "config.data.list_sizes",
    "config.loss.name",
    "config.eval.metrics[0]",
  ]
  assert lines[0] == (
    "config.total_steps is unset: every experiment sets it "
    "(rankjax.configs.default.EXPERIMENT_KEYS)"
  )


def test_a_config_not_built_on_the_defaults_names_the_missing_keys():
  config = load_config()
  config.unlock()
  del config.optimizer["clip_norm"]
  assert _lines(config) == (
    "config.optimizer.clip_norm is missing: rankjax.configs.default declares it",
  )


def test_a_new_registry_entry_needs_no_edit_of_the_validator():
  config = load_config()
  config.supervision.objective = "my_objective"
  assert len(_lines(config)) == 1
  supervision.OBJECTIVES["my_objective"] = supervision.OBJECTIVES["single"]
  try:
    engine_validate.check(config)
  finally:
    del supervision.OBJECTIVES["my_objective"]


def test_ranges_say_what_they_allow():
  assert [str(r) for r in (validate.Range(1, integer=True), validate.Range(0, low_open=True))] == [
    "an integer >= 1",
    "a number > 0",
  ]
  assert str(validate.Range(0, 1, low_open=True)) == "a number in (0, 1]"
  assert not validate.Range(0).allows("1") and not validate.Range(0).allows(float("nan"))


def test_dataset_checks_name_the_split_and_the_label_source(tmp_path):
  data_path = tiny_dataset(tmp_path)
  config = load_config()
  config.eval.splits = ("validation", "dev")
  config.eval.label_source = "llm"
  with pytest.raises(ConfigError) as error:
    engine_validate.check_data(config, data_path)
  assert error.value.lines == (
    f"config.eval.splits[1]='dev': {data_path}: no split 'dev'; it has ['test', 'train', "
    "'validation']",
    f"config.eval.label_source='llm': {data_path} has no labels from 'llm'; it has ['click', "
    "'human']",
  )


@pytest.fixture(scope="module")
def click_and_human(tmp_path_factory):
  """A prepared dataset with click and human labels, no LLM labels."""
  return tiny_dataset(tmp_path_factory.mktemp("data"))


LLM_STAGES = (
  {"start": 0, "end": 10, "mix": {"click": 1}},
  {"start": 10, "end": 20, "mix": {"llm": 1}},
)


@pytest.mark.parametrize(
  "overrides,named",
  [
    ({"supervision.source": "llm"}, "config.supervision.source='llm'"),
    (
      {"supervision.objective": "freq_multi_objective"},
      "config.supervision.objective='freq_multi_objective'",
    ),
    (
      {"supervision.objective": "data_schedule"},  # the preset adds LLM labels in its last third
      "config.supervision.schedule='frequency_staged'",
    ),
    (
      {"supervision.objective": "data_schedule", "supervision.stages": LLM_STAGES},
      "config.supervision.stages",
    ),
    ({"supervision.gate.name": "learned"}, "config.supervision.gate.name='learned'"),
  ],
)
def test_a_label_source_the_dataset_lacks_is_named_with_its_key(overrides, named, click_and_human):
  config = load_config()
  for key, value in overrides.items():
    _set(config, key, value)
  engine_validate.check(config)  # valid without the data
  with pytest.raises(ConfigError) as error:
    engine_validate.check_data(config, click_and_human)
  assert error.value.lines == (
    f"{named}: {click_and_human} has no labels from 'llm'; it has ['click', 'human']",
  )


@pytest.mark.parametrize(
  "overrides",
  [
    {"supervision.source": "click"},
    {"supervision.objective": "dla"},
    {"supervision.objective": "data_schedule", "supervision.stages": LLM_STAGES[:1]},
    {
      "supervision.gate.name": "learned",
      "supervision.gate.coef": 1.0,
      "supervision.gate.bias": 0.0,
    },
  ],
)
def test_label_sources_the_dataset_has_pass(overrides, click_and_human):
  config = load_config()
  for key, value in overrides.items():
    _set(config, key, value)
  engine_validate.check_data(config, click_and_human)


def test_every_objective_declares_the_label_sources_it_reads():
  config = load_config()
  declared = {}
  for name in (
    "single",
    "freq_multi_objective",
    "data_schedule",
    "dla",
    "two_tower",
    "regression_em",
  ):
    config.supervision.objective = name
    declared[name] = supervision.label_sources(config)
  assert declared == {
    "single": {"supervision.source": ("human",)},
    "freq_multi_objective": {"supervision.objective": ("click", "llm")},
    "data_schedule": {"supervision.schedule": ("click", "llm")},
    "dla": {"supervision.objective": ("click",)},
    "two_tower": {"supervision.objective": ("click",)},
    "regression_em": {"supervision.objective": ("click",)},
  }


def test_the_schedule_iterator_is_checked_against_grouping_and_the_data(tmp_path):
  config = load_config()
  config.supervision.objective = "data_schedule"
  config.supervision.schedule_mode = "iterator"
  config.data.length_grouped = True
  assert _lines(config) == (
    "config.supervision.schedule_mode='iterator': the data schedule's iterator mixes lists by "
    "bucket and source, which config.data.length_grouped=True would regroup by length; set "
    "config.supervision.schedule_mode='per_list' or config.data.length_grouped=False",
  )
  config.supervision.schedule_mode = "per_list"
  engine_validate.check(config)
  data_path = tiny_dataset(tmp_path)  # click and human labels, no LLM ones
  config.supervision.stages = (
    {"start": 0, "end": 5, "mix": {"click": 1}},
    {"start": 5, "end": 9, "mix": {"llm": 1}},
  )
  no_llm = (
    f"config.supervision.stages: {data_path} has no labels from 'llm'; it has ['click', 'human']"
  )
  with pytest.raises(ConfigError) as error:
    engine_validate.check_data(config, data_path)
  assert error.value.lines == (no_llm,)
  config.supervision.schedule_mode = "iterator"
  with pytest.raises(ConfigError) as error:
    engine_validate.check_data(config, data_path)
  assert error.value.lines == (
    f"config.supervision.stages: from step 5 the data schedule trains no list of {data_path}'s "
    "train split: none of the buckets it trains has a list with labels from the sources it "
    "trains them on (the data has ['click', 'human'])",
    no_llm,
  )


def test_study_checks_its_section_and_every_variant():
  config = load_config("demo", "tiny")
  config.study.baseline = "clicks"
  config.study.seeds = ()
  config.study.variants["llm"] = {"source": "llm", "weigths": "none"}
  config.study.variants["click"] = {"source": "click", "weights": "ips"}
  config.total_steps = 0
  lines = _lines(config, runner.check)
  assert unpinned(lines) == unpinned(
    (
      "config.study.seeds=(): a non-empty sequence of integers >= 0",
      "config.study.baseline='clicks': one of config.study.variants ['click', 'data_schedule', "
      "'freq_multi_objective', 'llm']",
      "config.total_steps=0: an integer >= 1",
      "config.study.variants['click']: config.supervision.weights='ips': unknown weights hook; "
      "known: ips_pbm, none",
      lines[4],
    )
  )
  assert lines[4].startswith(
    "config.study.variants['llm'].weigths: config.supervision has no key 'weigths'; its keys: "
  )


def test_an_unknown_name_is_still_a_registry_error():
  assert issubclass(ConfigError, ValueError)
  with pytest.raises(registry.UnknownName):
    supervision.get_objective("singel")


def test_a_study_names_the_split_and_each_variants_labels_the_dataset_lacks(
  click_and_human, tmp_path
):
  config = load_config("demo", "tiny")
  config.data.path = str(click_and_human)
  config.study.split = "dev"
  with pytest.raises(ConfigError) as error:
    runner.run(config, tmp_path / "study")
  lacks_llm = f"{click_and_human} has no labels from 'llm'; it has ['click', 'human']"
  assert error.value.lines == (
    f"config.study.split='dev': {click_and_human}: no split 'dev'; it has ['test', 'train', "
    "'validation']",
    "config.study.variants['data_schedule']: config.supervision.schedule='frequency_staged': "
    + lacks_llm,
    "config.study.variants['freq_multi_objective']: config.supervision.objective="
    f"'freq_multi_objective': {lacks_llm}",
    f"config.study.variants['llm']: config.supervision.source='llm': {lacks_llm}",
  )
  assert not (tmp_path / "study" / "runs").exists()  # before the first run


def test_a_source_the_train_split_lacks_is_named_with_what_it_has(tmp_path):
  """`prepare --split-by labelled` puts every human-labelled query in validation and test: a run
  on human labels would train on nothing, so it is refused before compiling."""
  held_out = [
    dataclasses.replace(l, labels={**l.labels, "human": np.full(len(l.doc_ids), np.nan)})
    for l in tiny_lists(16, seed=0)
  ]
  data_path = store.write_dataset(
    tmp_path,
    name="held_out",
    splits={"train": held_out, "validation": tiny_lists(5, seed=1), "test": tiny_lists(6, seed=2)},
  )
  config = load_config()
  config.supervision.source = "human"
  with pytest.raises(ConfigError) as error:
    engine_validate.check_data(config, data_path)
  assert error.value.lines == (
    f"config.supervision.source='human': no list of {data_path}'s train split has labels from "
    "'human', so training would learn nothing from them (lists with each source: {'click': 16, "
    "'llm': 0, 'human': 0})",
  )
  config.supervision.source = "click"
  config.eval.label_source = "human"  # evaluation reads the held-out splits
  engine_validate.check_data(config, data_path)
