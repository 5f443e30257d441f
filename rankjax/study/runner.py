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
  config.study.runs            name -> TREC run file of another system, scored beside the
                               variants (`rankjax.study.external_runs`); {} for none
  config.study.sweep           {"key": a config key, "values": (...)}: the study at each value
                               (`rankjax.study.sweep`); None for one study

The data is `config.data`'s, as for one run (`rankjax.engine.data_source`): e.g. the simulated
demo world (`data.name = "demo_world"`, its parameters `data.world`), which the report describes.

The study's grid (`grid`) is every (sweep value, variant, seed), in a fixed order. Each cell trains
in `<workdir>/[sweep/<key>=<value>/]runs/<variant>/seed<k>` with `train.train_and_evaluate` (and
so resumes), then saves its scores on the evaluation split there (`study_scores.npz`, with the
run's config and what its preparation set). `run` runs every cell, then `report`; or one shard of
the grid, or the cells matching `only` (`select`), in as many processes or machines as there are
shards, after which `report` assembles the report from the saved scores, refusing while a run is
missing or unfinished. What a variant's supervision needs before training (a learned gate fitted
on `config.supervision.gate.fit_split`, IPS propensities from the world) its runs prepare
themselves (`rankjax.supervision.prepare`); the notes they leave (the fitted gate) go into the
report. The report (`report.md`, `ndcg10_by_bucket.png`, `score_histograms.png`, `study.json`;
modules `stats`, `signals`, `report`, `plots`) has:

- NDCG@{1,3,5,10} and ERR@10 per bucket (high, medium, low, all) as mean +- std over seeds;
- paired t-tests (scipy) of each variant against the baseline on per-query values (each query's
  mean over seeds), Holm-corrected within each metric over all (variant, bucket) comparisons;
- (i) reliance on document-level click signals and (iii) on semantic match: the mean over queries
  of the Spearman correlation between a model's scores and the signal within the query;
- (ii) separation of relevant from non-relevant documents: per-query AUC and score histograms.
"""

from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
import json
import os
import pathlib
import time
import zipfile

import filelock
import jax
import ml_collections
import numpy as np

from rankjax import errors, models
from rankjax.configs import validate
from rankjax.configs.errors import ConfigError
from rankjax.data import pipeline, store
from rankjax.engine import data_source, evaluate, train
from rankjax.engine import mesh as mesh_lib
from rankjax.engine import validate as engine_validate
from rankjax.study import baselines as baselines_lib
from rankjax.study import external_runs, plots, stats, sweep
from rankjax.study import report as report_lib
from rankjax.study import signals as signals_lib

SCORES = "study_scores.npz"  # a finished run's scores on the evaluation split, in its workdir


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
  # Their entries are checked by `_run_file_problems` and `sweep.problems`.
  "runs": ("a mapping of names to TREC run files, {} for none", lambda v: hasattr(v, "items")),
  "sweep": ("{'key': <a config key>, 'values': (...)}, None for one study", lambda v: True),
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
  anything runs: the study section's keys, the variants' overrides, the sweep and what each of
  its values makes of the config, and every variant's run config (`rankjax.engine.validate`; a
  violation of the base config is named once, one of a variant's overrides with the variant)."""
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
  if "runs" in study and hasattr(study.runs, "items"):
    names = study.baselines if "baselines" in study and _names(study.baselines) else ()
    lines += _run_file_problems(study.runs, [*variants, *names])
  base_lines = engine_validate.problems(_base_config(config))
  lines += base_lines
  sweep_lines = sweep.problems(config) if "sweep" in study else []
  lines += sweep_lines
  if "sweep" in study and sweep.section(config) is not None and not sweep_lines:
    for name, at_value in sweep.studies(config):  # what a swept value breaks, named with it
      lines += [
        f"config.study.sweep: at {name}: {line}"
        for line in engine_validate.problems(_base_config(at_value))
        if line not in base_lines
      ]
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


@dataclasses.dataclass(frozen=True)
class Cell:
  """One run of a study's grid: a variant at a seed, in the study at one sweep value.

  Attributes:
    study: the study's directory under the workdir: "" or, in a sweep, "sweep/<key>=<value>".
    variant: a name of `config.study.variants`.
    seed: one of `config.study.seeds`.
  """

  study: str
  variant: str
  seed: int

  @property
  def name(self) -> str:
    """Its workdir under the study's: "runs/click/seed0", "sweep/<key>=<value>/runs/click/seed0"."""
    return str(pathlib.PurePosixPath(self.study, "runs", self.variant, f"seed{self.seed}"))


class RunsError(errors.UserError):
  """A selection of runs (`--only`) that matches none of the grid, or a report asked of runs that
  are missing or unfinished."""


def grid(config) -> list[Cell]:
  """Every run of the study, in a fixed order: sweep value, then variant, then seed (the orders of
  the config's sequences), so that shard i of n is the same set in every process."""
  return [
    Cell(study, variant, seed)
    for study, cfg in sweep.studies(config)
    for variant in cfg.study.variants
    for seed in cfg.study.seeds
  ]


def select(
  config, cells: list[Cell], shard: tuple[int, int] | None = None, only: dict | None = None
) -> list[Cell]:
  """The cells of shard `(i, n)` (cells i, i + n, ...) that match `only` ({"variant": "click",
  "seed": "0", <the sweep's key>: "0.5"}: each given key must match; all cells when None).

  Raises:
    RunsError: `only` names a key other than those, or matches no cell of the grid.
  """
  if shard is not None:
    cells = cells[shard[0] :: shard[1]]
  if not only:
    return cells
  sweep_key = sweep.section(config)["key"] if sweep.section(config) is not None else None
  fields = {
    "variant": lambda c: c.variant,
    "seed": lambda c: str(c.seed),
    **({sweep_key: lambda c: c.study.split("=", 1)[1]} if sweep_key else {}),
  }
  unknown = set(only) - set(fields)
  if unknown:
    raise RunsError(
      f"--only: no key {', '.join(sorted(unknown))} in the study's grid; its keys: "
      f"{', '.join(fields)}"
    )
  chosen = [c for c in cells if all(fields[k](c) == v for k, v in only.items())]
  if not chosen:
    have = {k: sorted({f(c) for c in grid(config)}) for k, f in fields.items()}
    raise RunsError(
      f"--only {','.join(f'{k}={v}' for k, v in only.items())}: no run of the study's grid"
      f"{' in this shard' if shard else ''} matches; it has "
      + "; ".join(f"{k} {', '.join(vs)}" for k, vs in have.items())
    )
  return chosen


def _record_config(config, cell: Cell) -> ml_collections.ConfigDict:
  """The run config a cell's scores were made with, as the report compares it (no data path:
  the study resolves it, and a moved workdir is the same study)."""
  study = dict(sweep.studies(config))[cell.study]
  return variant_config(study, cell.variant, cell.seed)


def _scored(run_dir: pathlib.Path, cfg) -> tuple[dict | None, str]:
  """(the run's saved evaluation scores and record, "") when it finished with `cfg` (the cell's
  `_record_config`) and was scored, else (None, why not: missing, unfinished, another config)."""
  path = run_dir / SCORES
  if not path.exists():
    steps = [int(p.name) for p in run_dir.glob("checkpoints/*") if p.name.isdigit()]
    if not steps:
      return None, "missing"
    return None, f"unfinished: checkpoint step {max(steps)} of {cfg.total_steps}"
  try:
    with np.load(path) as saved:
      scores, record = saved["scores"], json.loads(saved["record"].item())
  except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
    return None, f"its {SCORES} does not read ({type(e).__name__})"
  if record["step"] != cfg.total_steps:
    return None, f"scored at step {record['step']} of {cfg.total_steps}"
  diffs = train.config_differences(json.loads(record["config"]), cfg, prepared=False)
  if diffs:
    return None, f"scored with another config ({'; '.join(diffs[:3])})"
  return {"scores": scores, **record}, ""


def _save_scores(run_dir: pathlib.Path, scores: np.ndarray, record: dict) -> None:
  """Writes `SCORES` whole or not at all (a shard stopped while writing leaves no half file)."""
  if jax.process_index() != 0:
    return
  part = run_dir / f"{SCORES}.part"
  with open(part, "wb") as f:
    np.savez(f, scores=scores, record=np.array(json.dumps(record)))
  os.replace(part, run_dir / SCORES)


def _data(config, data_root: pathlib.Path) -> tuple[pathlib.Path, dict | None, store.Split]:
  """(dataset directory, its metadata, the evaluation split) of a study, prepared under
  `data_root` if needed, the config's needs of it checked (`_check_data`, per-item signals).

  Shards that start together prepare it once: one holds `<data_root>/data.lock` while it builds
  the world or a LETOR cache, the others then read it (the lock file system must support flock,
  as NFS and Lustre do). With several hosts data_source's host 0 builds and the others wait.
  """
  data_root.mkdir(parents=True, exist_ok=True)
  lock = (
    filelock.FileLock(data_root / "data.lock")
    if jax.process_count() == 1
    else contextlib.nullcontext()
  )
  with lock:
    data_path, meta = data_source.resolve(config, data_root)
  split = _check_data(config, data_path)
  study = config.study
  signals = tuple(study.doc_signals) + tuple(study.semantic_signals)
  missing = [e for e in signals if e not in signals_lib.available_signals(split.layout)]
  if missing:
    raise ConfigError(
      [
        f"config.study.doc_signals / semantic_signals: {data_path}: no per-item signals "
        f"{missing}; it has {signals_lib.available_signals(split.layout)}"
      ]
    )
  return data_path, meta, split


def _data_root(config, workdir: pathlib.Path, study: str) -> pathlib.Path:
  """Where a study's data is prepared: its own directory when a sweep changes the data
  (`data.*`), else the workdir, so the studies of a sweep over e.g. optimizer.lr share it."""
  section = sweep.section(config)
  return workdir / study if section is not None and section["key"].startswith("data.") else workdir


def run(
  config: ml_collections.ConfigDict,
  workdir: str | os.PathLike,
  *,
  shard: tuple[int, int] | None = None,
  only: dict | None = None,
) -> dict:
  """Runs the study in `workdir`: every cell of its grid, then the report (`report`); with
  `shard` or `only` (`select`) just those cells, without a report.

  The config is checked first (`check`). Each cell trains in its workdir
  (`<workdir>/[sweep/<key>=<value>/]runs/<variant>/seed<k>`, resuming from its checkpoint) and
  saves its scores on the evaluation split there (`SCORES`); a cell already scored with its config
  is reused. A run SIGTERM stops ends the study at once, its checkpoint saved: the summary is then
  only {"preempted": True, "seconds": ...}, and running it again resumes it ("preempted" is False
  in a full summary). A shard's summary: {"preempted": False, "seconds", "runs": cells run,
  "grid": cells in all}.
  """
  start = time.perf_counter()
  workdir = pathlib.Path(workdir)
  check(config)
  everything = grid(config)
  cells = select(config, everything, shard, only)
  workdir.mkdir(parents=True, exist_ok=True)
  if not jax.config.jax_compilation_cache_dir:
    # Seeds of a variant compile the same programs: a persistent cache compiles them once.
    jax.config.update("jax_compilation_cache_dir", str(workdir / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  mesh = mesh_lib.make_mesh()
  done = 0
  for study, study_config in sweep.studies(config):
    mine = [c for c in cells if c.study == study]
    if not mine:
      continue
    data_path, meta, split = _data(study_config, _data_root(config, workdir, study))
    for cell in mine:
      done += 1
      run_dir = workdir / cell.name
      print(f"study: run {done} of {len(cells)}: {cell.name}", flush=True)
      if _scored(run_dir, _record_config(config, cell))[0] is not None:
        continue
      cell_start = time.perf_counter()
      cfg = variant_config(study_config, cell.variant, cell.seed, data_path)
      out = train.train_and_evaluate(cfg, run_dir, metadata=meta)
      if out["preempted"]:  # its checkpoint is saved: a rerun resumes this run, reuses the others
        return {"preempted": True, "seconds": time.perf_counter() - start}
      record = {
        "config": _record_config(config, cell).to_json_best_effort(sort_keys=True),
        "step": out["step"],
        "preparation": out["preparation"],
        "prepared": prepared_keys(cfg.supervision, out["config"].supervision),
      }
      scores = score_run(cfg, out["state"], split, mesh)
      record["seconds"] = time.perf_counter() - cell_start
      _save_scores(run_dir, scores, record)
  if shard is None and not only:
    return report(config, workdir, start=start)
  return {
    "preempted": False,
    "seconds": time.perf_counter() - start,
    "runs": len(cells),
    "grid": len(everything),
  }


def report(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *, start=None) -> dict:
  """Writes the study's report from its runs' saved scores: `report.md`, `study.json` and the
  plots in the study's directory (in a sweep, each value's, and `sweep.md`, `sweep.json`,
  `sweep_ndcg10.png` in `workdir`); the baselines and run files are scored here. Returns the
  summary (the sweep's, in a sweep).

  Raises:
    RunsError: a run of the grid is missing or unfinished (one line naming every such run).
  """
  start = time.perf_counter() if start is None else start
  workdir = pathlib.Path(workdir)
  check(config)
  cells = grid(config)
  scored, unfinished = {}, []
  for cell in cells:
    scored[cell], why = _scored(workdir / cell.name, _record_config(config, cell))
    if scored[cell] is None:
      unfinished.append(f"{cell.name} ({why})")
  if unfinished:
    raise RunsError(
      f"{workdir}: {len(unfinished)} of the study's {len(cells)} runs are not finished: "
      f"{', '.join(unfinished)}; run them first (rankjax study without --report, or its "
      "--shard / --only)"
    )
  summaries = {}
  for study, study_config in sweep.studies(config):
    records = {(c.variant, c.seed): scored[c] for c in cells if c.study == study}
    data_root = _data_root(config, workdir, study)
    summaries[study] = _report(study_config, workdir / study, data_root, records, start)
  if sweep.section(config) is None:
    return summaries[""]
  summary = sweep.summarize(config, summaries)
  summary["seconds"] = time.perf_counter() - start
  summary["preempted"] = False
  if jax.process_index() == 0:
    sweep.plot(summary, workdir / "sweep_ndcg10.png")
    (workdir / "sweep.json").write_text(json.dumps(summary, indent=1))
    (workdir / "sweep.md").write_text(sweep.report(summary))
  return summary


def _report(config, study_dir: pathlib.Path, data_root, records: dict, start: float) -> dict:
  """One study's report in `study_dir` from its runs' records ({(variant, seed): record})."""
  study = config.study
  data_path, meta, split = _data(config, data_root)
  signals = tuple(study.doc_signals) + tuple(study.semantic_signals)
  data = signals_lib.padded_split(split, signals)
  scores: dict[str, list[np.ndarray]] = {}
  preparation: dict[str, list[str]] = {}  # variant -> its runs' distinct preparation notes
  prepared: dict[str, dict] = {}  # variant -> seed -> what preparation set (the fitted gate)
  for (variant, seed), record in records.items():
    scores.setdefault(variant, []).append(record["scores"])
    notes = preparation.setdefault(variant, [])
    notes += [n for n in record["preparation"] if n not in notes]
    prepared.setdefault(variant, {})[seed] = record["prepared"]
  described, left_out = {}, []
  chosen = {name: baselines_lib.get(name) for name in study.baselines}
  run_files = dict(study.runs)
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
  summary["run_seconds"] = sum(r["seconds"] for r in records.values())
  summary["preempted"] = False
  summary["world"] = meta
  summary["bucket_ranges"] = split.metadata.get("bucket_ranges")  # `rankjax data prepare`'s
  summary["preparation"] = preparation
  summary["prepared"] = prepared
  if jax.process_index() == 0:
    study_dir.mkdir(parents=True, exist_ok=True)
    plots.plot_bars(summary, study_dir / "ndcg10_by_bucket.png")
    plots.plot_histograms(scores, data, study, study_dir / "score_histograms.png")
    (study_dir / "study.json").write_text(json.dumps(summary, indent=1))
    (study_dir / "report.md").write_text(report_lib.report(summary, config))
  return summary


def headline(summary: dict, workdir: str | os.PathLike) -> list[str]:
  """What `rankjax study` prints at the end: the NDCG@10 table and where the report is (a
  sweep's table and sweep.md), or, after a shard, how many runs it ran and what comes next."""
  workdir = pathlib.Path(workdir).resolve()
  if "grid" in summary:
    return [
      f"study: {summary['runs']} of the grid's {summary['grid']} runs finished and scored "
      f"({summary['seconds']:.0f} s); once every run is, `rankjax study --report` writes the "
      "report"
    ]
  if "key" in summary:
    table, path = sweep.table(summary), workdir / "sweep.md"
  else:
    table, path = report_lib.metric_table(summary, "ndcg@10"), workdir / "report.md"
  return [
    "",
    "NDCG@10 (mean ± std over seeds):",
    *table,
    "",
    f"Report: {path} ({summary['seconds']:.0f} s)",
  ]
