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

import json
import os
import pathlib
import time

import jax
import ml_collections
import numpy as np

from rankjax import models
from rankjax.data import pipeline, store
from rankjax.engine import data_source, evaluate, train
from rankjax.engine import mesh as mesh_lib
from rankjax.study import baselines as baselines_lib
from rankjax.study import plots, stats
from rankjax.study import report as report_lib
from rankjax.study import signals as signals_lib


def variant_config(config, variant: str, seed: int, data_path):
  """The single-run config of one (variant, seed): the base config without `study`, the
  variant's overrides merged into `config.supervision`.

  What the variant's supervision needs before training (a learned gate's fit, IPS propensities
  from the world) is prepared by the run itself (`rankjax.supervision.prepare`).
  """
  base = config.to_dict()
  study = base.pop("study")
  cfg = ml_collections.ConfigDict(base)
  cfg.seed = seed
  cfg.data.path = str(data_path)
  cfg.data.list_sizes = tuple(cfg.data.list_sizes)
  cfg.supervision.update(study["variants"][variant])
  return cfg


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
  """Runs the study in `workdir`; returns its summary (also in study.json) and writes report.md."""
  start = time.perf_counter()
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  study = config.study
  if study.baseline not in study.variants:
    raise ValueError(f"baseline {study.baseline!r} is not a variant: {sorted(study.variants)}")
  chosen = {name: baselines_lib.get(name) for name in study.baselines}  # unknown names fail here
  if not jax.config.jax_compilation_cache_dir:
    # Seeds of a variant compile the same programs: a persistent cache compiles them once.
    jax.config.update("jax_compilation_cache_dir", str(workdir / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  data_path, meta = data_source.resolve(config, workdir)
  split = store.open_split(data_path, study.split)
  signals = tuple(study.doc_signals) + tuple(study.semantic_signals)
  missing = [e for e in signals if e not in signals_lib.available_signals(split.layout)]
  if missing:
    raise ValueError(
      f"{data_path}: no per-item signals {missing}; it has "
      f"{signals_lib.available_signals(split.layout)} (config.study.doc_signals / "
      "semantic_signals)"
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
      scores.setdefault(variant, []).append(score_run(cfg, out["state"], split, mesh))
      notes = preparation.setdefault(variant, [])
      notes += [n for n in out["preparation"] if n not in notes]
      prepared.setdefault(variant, {})[seed] = prepared_keys(
        cfg.supervision, out["config"].supervision
      )
  described, left_out = {}, []
  if chosen:
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
  summary = stats.summarize(scores, data, study, baselines=described)
  summary["left_out"] = left_out
  summary["seconds"] = time.perf_counter() - start
  summary["world"] = meta
  summary["preparation"] = preparation
  summary["prepared"] = prepared
  if jax.process_index() == 0:
    plots.plot_bars(summary, workdir / "ndcg10_by_bucket.png")
    plots.plot_histograms(scores, data, study, workdir / "score_histograms.png")
    (workdir / "study.json").write_text(json.dumps(summary, indent=1))
    (workdir / "report.md").write_text(report_lib.report(summary, config))
  return summary
