r"""The study: supervision variants over seeds, evaluated per frequency bucket, and report.md.

A config with a `study` section is a study (`rankjax train` dispatches it to `run`):

  config.study.variants        name -> overrides of `config.supervision` (objective, source, ...);
                               e.g. {"click": {"source": "click", "weights": "ips_pbm"}, ...}
  config.study.baseline        the variant the others are tested against (e.g. "click")
  config.study.seeds           training seeds; every variant trains once per seed
  config.study.split           the evaluation split (human labels)
  config.study.relevant_label  human label from which a document counts as relevant (AUC)
  config.study.doc_signals     per-item extras of document-level click statistics (global_ctr)
  config.study.semantic_signals per-item semantic match: extras (the world's "semantic") or
                               "term_overlap", computed from the query and document texts
  config.study.baselines       names of `rankjax.study.baselines` scored beside the variants
                               (LightGBM LambdaMART, the logged order, BM25); one whose library is
                               missing is left out with a note in the report
  config.study.runs            optional: name -> TREC run file of another system, scored beside
                               the variants (`rankjax.study.external_runs`)

The data is `config.data`'s, as for one run (`rankjax.engine.data_source`): e.g. the simulated
demo world (`data.name = "demo_world"`, its parameters `data.world`), which the report describes.

Every (variant, seed) trains in `<workdir>/runs/<variant>/seed<k>` with `train.train_and_evaluate`
(and so resumes), then scores the evaluation split. What a variant's supervision needs before
training (a learned gate fitted on `config.supervision.gate.fit_split`, IPS propensities from the
world) its runs prepare themselves (`rankjax.supervision.prepare`); the notes they leave (the
fitted gate) go into the report. The report (`<workdir>/report.md`,
`ndcg10_by_bucket.png`, `score_histograms.png`, `study.json`; modules `stats`, `signals`,
`report`, `plots`) has:

- NDCG@{1,3,5,10} and ERR@10 per bucket (high, medium, low, all) as mean +- std over seeds;
- paired t-tests (scipy) of each variant against the baseline on per-query values (each query's
  mean over seeds), Holm-corrected within each metric over all (variant, bucket) comparisons;
- (i) reliance on document-level click signals and (iii) on semantic match: the mean over queries
  of the Spearman correlation between a model's scores and the signal within the query;
- (ii) separation of relevant from non-relevant documents: per-query AUC and score histograms.
"""

from __future__ import annotations

import collections.abc
import json
import os
import pathlib
import time

import jax
import ml_collections
import numpy as np

from rankjax import models
from rankjax.configs import validate
from rankjax.configs.errors import ConfigError
from rankjax.data import pipeline, store
from rankjax.engine import data_source, evaluate, train
from rankjax.engine import mesh as mesh_lib
from rankjax.engine import validate as engine_validate
from rankjax.study import baselines as baselines_lib
from rankjax.study import external_runs, plots, stats
from rankjax.study import report as report_lib
from rankjax.study import signals as signals_lib


def variant_config(config, variant: str, seed: int, data_path=None):
  """The single-run config of one (variant, seed): the base config without `study`, the
  variant's overrides merged into `config.supervision`, `data.path` set to `data_path` if given.

  What the variant's supervision needs before training (a learned gate's fit, IPS propensities
  from the world) is prepared by the run itself (`rankjax.supervision.prepare`).
  """
  base = config.to_dict()
  study = base.pop("study")
  cfg = ml_collections.ConfigDict(base)
  cfg.seed = seed
  if data_path is not None:
    cfg.data.path = str(data_path)
  cfg.data.list_sizes = tuple(cfg.data.list_sizes)
  cfg.supervision.update(study["variants"][variant])
  return cfg


# The study section's own values: key -> (what it must be, the test).
_STUDY_KEYS = {
  "seeds": (
    "a non-empty sequence of integers >= 0",
    lambda v: _sequence(v) and v and all(validate.RANGES["seed"].allows(s) for s in v),
  ),
  "split": ("a split name", lambda v: isinstance(v, str) and v),
  "relevant_label": ("a number", validate.Range().allows),
  "doc_signals": ("a sequence of per-item signal names", lambda v: _names(v)),
  "semantic_signals": ("a sequence of per-item signal names", lambda v: _names(v)),
  "baselines": (
    f"a sequence of study baselines ({', '.join(sorted(baselines_lib.BASELINES))})",
    lambda v: _names(v) and all(name in baselines_lib.BASELINES for name in v),
  ),
}


def _sequence(value) -> bool:
  return isinstance(value, collections.abc.Collection) and not isinstance(value, str)


def _names(value) -> bool:
  return _sequence(value) and all(isinstance(v, str) for v in value)


def _unknown_overrides(overrides, section, where: str) -> list[str]:
  """Lines for the keys of a variant's `overrides` that `section` (`config.supervision`) lacks."""
  lines = []
  for key, value in overrides.items():
    if key not in section:
      lines.append(
        f"{where}.{key}: config.supervision has no key {key!r}; its keys: {sorted(section)}"
      )
    elif hasattr(value, "items") and hasattr(section[key], "keys"):
      lines += _unknown_overrides(value, section[key], f"{where}.{key}")
  return lines


def check(config: ml_collections.ConfigDict) -> None:
  """Raises a `ConfigError` of every violation of a study's config, one line each, before
  anything runs: the study section's keys, the variants' overrides, and every variant's run
  config (`rankjax.engine.validate`; a violation of the base config is named once, one of a
  variant's overrides with the variant)."""
  study = config.study
  lines = []
  for key, (what, allowed) in _STUDY_KEYS.items():
    if key not in study:
      lines.append(f"config.study.{key} is unset: {what} (rankjax.study.runner)")
    elif not allowed(study[key]):
      lines.append(f"config.study.{key}={study[key]!r}: {what}")
  variants = study.variants if "variants" in study else None
  if not hasattr(variants, "items") or not variants:
    lines.append(
      f"config.study.variants={variants!r}: a mapping of names to overrides of "
      "config.supervision, e.g. {'click': {'source': 'click'}}"
    )
    variants = {}
  baseline = study.baseline if "baseline" in study else None
  if baseline not in variants:
    lines.append(
      f"config.study.baseline={baseline!r}: one of config.study.variants {sorted(variants)}"
    )
  lines += _run_file_problems(study.get("runs", {}), [*variants, *study.get("baselines", ())])
  base_lines = engine_validate.problems(_base_config(config))
  lines += base_lines
  for name, overrides in variants.items():
    unknown = _unknown_overrides(overrides, config.supervision, f"config.study.variants[{name!r}]")
    lines += unknown
    if not unknown:
      problems = engine_validate.problems(variant_config(config, name, config.seed))
      lines += _variant_lines(name, problems, base_lines)
  validate.raise_problems(lines)


def _run_file_problems(run_files, taken) -> list[str]:
  """Lines for `config.study.runs` entries that are not a new name with an existing file."""
  if not hasattr(run_files, "items"):
    return [f"config.study.runs={run_files!r}: a mapping of names to TREC run files"]
  lines = []
  for name, path in run_files.items():
    if name in taken:
      lines.append(f"config.study.runs[{name!r}]: the name of a variant or baseline already")
    elif not isinstance(path, str | os.PathLike) or not pathlib.Path(path).is_file():
      lines.append(f"config.study.runs[{name!r}]={path!r}: no such run file")
  return lines


def _base_config(config) -> ml_collections.ConfigDict:
  """The study's config without its `study` section."""
  base = config.to_dict()
  del base["study"]
  return ml_collections.ConfigDict(base)


def _variant_lines(name: str, lines: list[str], base_lines: list[str]) -> list[str]:
  """The `lines` of variant `name`'s run config, named with it, less those of the base config
  (`base_lines`), which are named once."""
  return [f"config.study.variants[{name!r}]: {line}" for line in lines if line not in base_lines]


def _check_data(config, data_path) -> store.Split:
  """The split `config.study.split` of the dataset at `data_path`; first a `ConfigError` naming
  what the dataset lacks: that split, or a split or label source a variant's run reads
  (`rankjax.engine.validate.data_problems`), before the first run trains."""
  lines = []
  try:
    split = store.open_split(data_path, config.study.split)
  except KeyError as e:  # the dataset has no such split; the message lists those it has
    lines.append(f"config.study.split={config.study.split!r}: {e.args[0]}")
  base_lines = engine_validate.data_problems(_base_config(config), data_path)
  lines += base_lines
  for name in config.study.variants:
    problems = engine_validate.data_problems(variant_config(config, name, config.seed), data_path)
    lines += _variant_lines(name, problems, base_lines)
  validate.raise_problems(lines)
  return split


def prepared_keys(before, after) -> dict:
  """{"gate.coef": 0.91, ...}: the keys of a config section that preparation set or changed.

  >>> prepared_keys(ml_collections.ConfigDict({"gate": {"coef": None, "name": "learned"}}),
  ...               ml_collections.ConfigDict({"gate": {"coef": 0.5, "name": "learned"}}))
  {'gate.coef': 0.5}
  """

  def flat(section, prefix=""):
    out = {}
    for key, value in section.items():
      if isinstance(value, ml_collections.ConfigDict):
        out.update(flat(value, f"{prefix}{key}."))
      else:
        out[prefix + key] = list(value) if isinstance(value, tuple) else value
    return out

  old = flat(before)
  return {k: v for k, v in flat(after).items() if old.get(k) != v}


def score_run(cfg, state, split, mesh) -> np.ndarray:
  """f32[N, Lmax] scores of a trained state on a split (0 past each list's end)."""
  _, model = models.build(cfg.model)
  step = evaluate.make_eval_step(model, ("ndcg@10",), "human", mesh)
  variables = {"params": state.params, **state.model_state}
  widths = pipeline.token_widths(split, cfg.data.token_buckets)
  _, by_index = evaluate.evaluate_split(
    step,
    variables,
    split,
    batch_size=cfg.eval.batch_size,
    list_sizes=cfg.data.list_sizes,
    token_widths=widths,
    mesh=mesh,
    with_scores=True,
  )
  out = np.zeros((len(split), int(split.lengths.max())), np.float32)
  for i, row in by_index.items():
    out[i, : len(row)] = row
  return out


def run(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
  """Runs the study in `workdir`; returns its summary (also in study.json) and writes report.md.

  The config is checked first (`check`). A run SIGTERM stops ends the study at once, its
  checkpoint saved: the summary is then only {"preempted": True, "seconds": ...}, and running the
  study again resumes it ("preempted" is False in a full summary).
  """
  start = time.perf_counter()
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  check(config)
  study = config.study
  chosen = {name: baselines_lib.get(name) for name in study.baselines}
  if not jax.config.jax_compilation_cache_dir:
    # Seeds of a variant compile the same programs: a persistent cache compiles them once.
    jax.config.update("jax_compilation_cache_dir", str(workdir / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  data_path, meta = data_source.resolve(config, workdir)
  split = _check_data(config, data_path)
  signals = tuple(study.doc_signals) + tuple(study.semantic_signals)
  missing = [e for e in signals if e not in signals_lib.available_signals(split.layout)]
  if missing:
    raise ConfigError(
      [
        f"config.study.doc_signals / semantic_signals: {data_path}: no per-item signals "
        f"{missing}; it has {signals_lib.available_signals(split.layout)}"
      ]
    )
  data = signals_lib.padded_split(split, signals)
  mesh = mesh_lib.make_mesh()
  scores: dict[str, list[np.ndarray]] = {}
  preparation: dict[str, list[str]] = {}  # variant -> its runs' distinct preparation notes
  prepared: dict[str, dict] = {}  # variant -> seed -> what preparation set (the fitted gate)
  for variant in study.variants:
    for seed in study.seeds:
      cfg = variant_config(config, variant, seed, data_path)
      print(f"study: {variant}, seed {seed}", flush=True)
      out = train.train_and_evaluate(cfg, workdir / "runs" / variant / f"seed{seed}", metadata=meta)
      if out["preempted"]:  # its checkpoint is saved: a rerun resumes this run, reuses the others
        return {"preempted": True, "seconds": time.perf_counter() - start}
      scores.setdefault(variant, []).append(score_run(cfg, out["state"], split, mesh))
      notes = preparation.setdefault(variant, [])
      notes += [n for n in out["preparation"] if n not in notes]
      prepared.setdefault(variant, {})[seed] = prepared_keys(
        cfg.supervision, out["config"].supervision
      )
  described, left_out = {}, []
  run_files = dict(study.get("runs", {}))
  if chosen or run_files:
    train_lists = baselines_lib.read_lists(store.open_split(data_path, "train"))
    eval_lists = baselines_lib.read_lists(split)
  for name, baseline in chosen.items():
    if not baseline.available():
      left_out.append(
        f"`{name}` is left out: `{baseline.needs}` is not installed ({baseline.install})."
      )
      continue
    print(f"study: baseline {name}", flush=True)
    scores[name] = [baseline.score(train_lists, eval_lists, seed) for seed in study.seeds]
    described[name] = baseline.describe
  for name, path in run_files.items():
    print(f"study: run file {name}", flush=True)
    run_scores, counts = external_runs.scores(path, eval_lists)
    scores[name] = [run_scores] * len(study.seeds)
    described[name] = {"model": f"the run file {path}"}
    if note := external_runs.note(name, path, counts):
      left_out.append(note)
  summary = stats.summarize(scores, data, study, baselines=described)
  summary["left_out"] = left_out
  summary["seconds"] = time.perf_counter() - start
  summary["preempted"] = False
  summary["world"] = meta
  summary["bucket_ranges"] = split.metadata.get("bucket_ranges")  # `rankjax data prepare`'s
  summary["preparation"] = preparation
  summary["prepared"] = prepared
  if jax.process_index() == 0:
    plots.plot_bars(summary, workdir / "ndcg10_by_bucket.png")
    plots.plot_histograms(scores, data, study, workdir / "score_histograms.png")
    (workdir / "study.json").write_text(json.dumps(summary, indent=1))
    (workdir / "report.md").write_text(report_lib.report(summary, config))
  return summary
