"""The training loop: `train_and_evaluate(config, workdir)`.

One readable loop (as big_vision's): the pure `rankjax.engine.step.train_step(state, batch) ->
(state, measurements)`, jitted once with the state donated and explicit shardings (state replicated,
batches split on the "data" mesh axis); evaluation every `config.eval.every` steps; orbax
checkpoints every `config.checkpoint.every` steps and on SIGTERM; exact resume from the workdir's
latest checkpoint, input iterator included. Measurements of step t are read after step t+1 is
dispatched, so the host never stalls the device, except at checkpoint steps, where they are
checked first so that a checkpoint never holds a non-finite state.

Config keys, their defaults and meaning: `rankjax.configs.default`; the data comes from
`rankjax.engine.data_source.resolve`.

A workdir belongs to one run. A workdir holding checkpoints resumes only with the config it was
started with (saved before preparation as `config.user.json`): `check_workdir` refuses any other
before anything is written, naming the keys that differ. `RERUN_KEYS` may differ: they set how
long the run goes on and what it writes when, so a finished run can be extended
(`--config.total_steps`) or evaluated more often. `start_over` (`rankjax train --restart`) moves a
workdir's contents aside to start a new run there.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import pathlib
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from rankjax import errors, models, supervision
from rankjax import progress as progress_lib
from rankjax.configs import default as config_defaults
from rankjax.data import pipeline, store
from rankjax.engine import checkpoint as checkpoint_lib
from rankjax.engine import data_source, evaluate, validate
from rankjax.engine import logs as logging_utils
from rankjax.engine import mesh as mesh_lib
from rankjax.engine import step as step_lib


def build(config, mesh, example_batch: dict):
  """(model, tx, abstract state, init function) for a config; nothing is computed yet."""
  module, model = models.build(config.model)
  tx = step_lib.make_optimizer(config)
  example = jax.tree.map(lambda x: x[:1], example_batch)
  objective = supervision.get_objective(config.supervision.objective)
  init = jax.jit(
    functools.partial(
      step_lib.init_state,
      model,
      tx,
      example,
      config.seed,
      module,
      config.model,
      functools.partial(objective.init, config=config),
    ),
    out_shardings=mesh_lib.replicated(mesh),
  )
  abstract = jax.eval_shape(init)
  abstract = jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=mesh_lib.replicated(mesh)), abstract
  )
  return model, tx, abstract, init


# The config as given, before the preparation hooks filled it: what a rerun is compared with.
USER_CONFIG = "config.user.json"
# Keys a rerun in the same workdir may change (how long the run goes, what it logs, evaluates
# and checkpoints when); total_steps also stretches the learning-rate schedule to the new end.
RERUN_KEYS = (
  "total_steps",
  "log_every",
  "eval.every",
  "eval.batch_size",
  "checkpoint.every",
  "checkpoint.keep",
)
MAX_LISTED = 10  # differing keys a refusal names


class WorkdirInUse(errors.UserError):
  """The workdir holds checkpoints of a run with another config."""


def _flat(tree: dict, prefix: str = "") -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def _config_json(config) -> str:
  return config.to_json_best_effort(indent=1, sort_keys=True)


def config_differences(saved: dict, config, *, prepared: bool) -> list[str]:
  """ "key: old -> new" for each dotted key (not in `RERUN_KEYS`) where `config` differs from
  the `saved` config (parsed JSON).

  A key missing from `saved` that `config` has at its default was declared after that run (not
  a difference). `prepared`: `saved` is the prepared `config.json` of a workdir written before
  `USER_CONFIG` existed; there a key `config` leaves unset (None or empty) is one the
  preparation fills, not a difference.
  """
  absent = object()
  old = _flat(saved)
  new = _flat(json.loads(_config_json(config)))
  defaults = _flat(json.loads(_config_json(config_defaults.default_config())))
  out = []
  for key in sorted(old.keys() | new.keys()):
    before, after = old.get(key, absent), new.get(key, absent)
    if key in RERUN_KEYS or before == after:
      continue
    if before is absent and after == defaults.get(key, absent):
      continue
    if prepared and after in (None, []) and before is not absent:
      continue
    shown = ["(absent)" if v is absent else json.dumps(v) for v in (before, after)]
    out.append(f"{key}: {shown[0]} -> {shown[1]}")
  return out


def check_workdir(config, workdir: pathlib.Path) -> None:
  """Raises `WorkdirInUse` when `workdir` holds checkpoints of a run whose config differs from
  `config` (the user's, before preparation) in a key outside `RERUN_KEYS`; reads, never writes.

  A workdir without checkpoints, or without a saved config, is free.
  """
  checkpoints = workdir / "checkpoints"
  if not (checkpoints.is_dir() and any(checkpoints.iterdir())):
    return
  saved = workdir / USER_CONFIG
  prepared = not saved.exists()
  if prepared:
    saved = workdir / "config.json"
    if not saved.exists():
      return
  diffs = config_differences(json.loads(saved.read_text()), config, prepared=prepared)
  if diffs:
    more = f" and {len(diffs) - MAX_LISTED} more" if len(diffs) > MAX_LISTED else ""
    raise WorkdirInUse(
      f"{workdir} holds checkpoints of a run with another config ({saved.name}): "
      f"{'; '.join(diffs[:MAX_LISTED])}{more}. Rerun with that config to resume it, add "
      "--restart to move its files aside and start over, or choose another --workdir"
    )


def start_over(workdir: str | os.PathLike) -> pathlib.Path | None:
  """Moves the contents of `workdir` (except earlier `previous-*` folders) into
  `workdir/previous-<time>/`, deleting nothing; returns that folder, None if nothing was there."""
  workdir = pathlib.Path(workdir)
  entries = (
    [p for p in workdir.iterdir() if not p.name.startswith("previous-")] if workdir.is_dir() else []
  )
  target = workdir / f"previous-{datetime.datetime.now():%Y%m%d-%H%M%S}"
  if entries and jax.process_index() == 0:
    target.mkdir()
    for entry in entries:
      entry.rename(target / entry.name)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("rankjax_start_over")
  return target if entries else None


def _save_config(config, user_config, workdir: pathlib.Path):
  if jax.process_index() == 0:
    (workdir / USER_CONFIG).write_text(_config_json(user_config))
    (workdir / "config.json").write_text(_config_json(config))


def _check_finite(step: int, scalars: dict[str, float], last_saved: int | None):
  bad = [k for k in ("train/loss", "train/grad_norm") if not np.isfinite(scalars[k])]
  if bad:
    raise FloatingPointError(
      f"non-finite {', '.join(bad)} at step {step} ({scalars}); stopping. The last good "
      f"checkpoint is step {last_saved}"
      if last_saved is not None
      else f"non-finite {', '.join(bad)} at step {step}; stopping (no checkpoint saved yet)"
    )


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str | os.PathLike, *, metadata: dict | None = None
) -> dict:
  """Trains per `config` in `workdir`, resuming from its latest checkpoint if there is one.

  First the supervision's preparation hooks run (`rankjax.supervision.prepare`: e.g. the learned
  gate's fit, IPS propensities from `metadata`: what the dataset's maker knows about it, by
  default what `data_source.resolve` returns); the run trains with the prepared config and saves
  it as `config.json` (and `config` as given as `config.user.json`). A workdir holding another
  config's checkpoints is refused first (`check_workdir`); the run resumes from the newest
  checkpoint that restores, moving unrestorable ones aside (`Checkpointer.restore_newest_good`).

  Raises:
    WorkdirInUse: `workdir` holds checkpoints of a run with another config.
    checkpoint.NoGoodCheckpoint: `workdir` has checkpoints and none restores.

  Returns:
    {"step": final step, "eval": {split: {metric: {bucket: value}}}, "preempted": bool,
     "state": the final `step.TrainState`, "preparation": the preparation hooks' notes,
     "config": the prepared config the run trained with}.
  """
  validate.check(config)  # every violation of the config, one line each, before anything runs
  workdir = pathlib.Path(workdir)
  check_workdir(config, workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  mesh = mesh_lib.make_mesh()
  mesh_lib.local_batch_size(config.data.batch_size, mesh)  # checks divisibility
  step_lib.check_grad_accum(config, mesh)
  data_path, source_metadata = data_source.resolve(config, workdir)
  validate.check_data(config, data_path)  # its splits and label sources, before compiling
  if metadata is None:
    metadata = source_metadata or {}
  user_config = config
  config, notes = supervision.prepare(config, supervision.Context(data_path, metadata))
  if jax.process_index() == 0:
    for note in notes:
      print(note)
  _save_config(config, user_config, workdir)
  train_split = store.open_split(data_path, "train")
  eval_splits = {s: store.open_split(data_path, s) for s in config.eval.splits}
  long_lists = pipeline.count_long_lists(train_split.lengths, config.data.list_sizes)
  if long_lists and jax.process_index() == 0:
    print(
      f"{long_lists} of {len(train_split)} training lists are longer than "
      f"{max(config.data.list_sizes)} items; each batch samples that many of their items"
    )
  # Token widths from the training split, for evaluation too: one set of compiled shapes.
  token_widths = pipeline.token_widths(train_split, config.data.token_buckets)
  if token_widths and jax.process_index() == 0:
    print(f"token arrays cut to widths {token_widths}")
  train_data = pipeline.train_dataset(
    train_split,
    batch_size=config.data.batch_size,
    list_sizes=config.data.list_sizes,
    seed=config.seed,
    token_widths=token_widths,
    length_grouped=config.data.length_grouped,
    phases=supervision.data_phases(config),  # the data schedule's mixtures; None: every list
    process_index=jax.process_index(),
    process_count=jax.process_count(),
    num_threads=config.data.num_threads,
  )
  example_batch = pipeline.make_batch(
    [], batch_size=1, list_size=min(config.data.list_sizes), layout=train_split.layout
  )

  model, tx, abstract_state, init = build(config, mesh, example_batch)
  ckpt = checkpoint_lib.Checkpointer(
    workdir,
    keep=config.checkpoint.keep,
    best_metric=config.checkpoint.best_metric,
    best_mode=config.checkpoint.best_mode,
  )
  data_iter = iter(train_data)
  try:
    restored = ckpt.restore_newest_good(abstract_state, lambda _, data: data_iter.set_state(data))
  except checkpoint_lib.NoGoodCheckpoint:
    ckpt.close()  # the run ends here: stop orbax's threads
    raise
  if restored is not None:
    state = restored[0]
    print(f"resumed from step {int(state.step)} in {ckpt.directory}")
  else:
    with progress_lib.compiling("the initial state", jax.process_index() == 0):
      state = init()
  step = int(state.step)

  step_fn = progress_lib.announcing(
    step_lib.compile_train_step(
      mesh,
      model=model,
      tx=tx,
      objective=supervision.get_objective(config.supervision.objective),
      config=config,
    ),
    "the train step",
    shapes=lambda state, batch: pipeline.describe(batch),
    enabled=jax.process_index() == 0,
  )
  eval_step = evaluate.make_eval_step(model, config.eval.metrics, config.eval.label_source, mesh)
  writer = logging_utils.MetricWriter(workdir)
  progress = logging_utils.Progress(config.total_steps, step, config.log_every)
  last_saved = ckpt.latest_step()
  results: dict = {}
  if step >= config.total_steps and (workdir / "results.json").exists():  # already finished
    results = json.loads((workdir / "results.json").read_text())["splits"]
  pending = None  # (step, device measurements) not yet read

  def read(pending_item):
    s, measured = pending_item
    scalars = logging_utils.flatten(jax.device_get(measured), "train")
    _check_finite(s, scalars, last_saved)
    return s, scalars

  def run_eval(s):
    variables = {"params": state.params, **state.model_state}
    out = {}
    for name, split in eval_splits.items():
      out[name], _ = evaluate.evaluate_split(
        eval_step,
        variables,
        split,
        batch_size=config.eval.batch_size,
        list_sizes=config.data.list_sizes,
        token_widths=token_widths,
        mesh=mesh,
      )
    writer.write(s, logging_utils.flatten(out))
    evaluate.write_results(workdir, s, out)
    if jax.process_index() == 0:
      print(evaluate.markdown_table(s, out), flush=True)
    return out

  preempted = False
  try:
    with checkpoint_lib.PreemptionGuard() as guard:
      while step < config.total_steps:
        batch = mesh_lib.shard_batch(next(data_iter), mesh)
        with jax.transfer_guard("disallow"):  # the step itself never copies host <-> device
          state, measured = step_fn(state, batch)
        step += 1
        if pending is not None:  # step - 1, read while this step runs
          s, scalars = read(pending)
          if s % config.log_every == 0:
            writer.write(s, scalars)
          progress.update(s, {"loss": scalars["train/loss"]})
        pending = (step, measured)
        is_last = step == config.total_steps
        do_eval = is_last or step % config.eval.every == 0
        stop = guard.should_stop(step)
        if is_last or do_eval or stop or step % config.checkpoint.every == 0:
          s, scalars = read(pending)
          pending = None
          if s % config.log_every == 0 or is_last:
            writer.write(s, scalars)
          progress.update(s, {"loss": scalars["train/loss"]})
          if do_eval:
            results = run_eval(step)
          ckpt.save(
            step, state, data_iter.get_state(), logging_utils.flatten(results) if do_eval else None
          )
          last_saved = step
        if stop:
          print(f"SIGTERM: saved step {step}, waiting for the write, stopping")
          preempted = True
          break
  finally:
    ckpt.wait()
    ckpt.close()
    writer.close()
    progress.close()
  return {
    "step": step,
    "eval": results,
    "preempted": preempted,
    "state": state,
    "preparation": notes,
    "config": config,
  }


class Trained(NamedTuple):
  """A trained run, loaded for scoring."""

  config: ml_collections.ConfigDict
  model: Any
  variables: dict
  mesh: jax.sharding.Mesh
  data_path: pathlib.Path
  step: int
  best: bool = False  # the step is the best checkpoint by `config.checkpoint.best_metric`


def load_for_scoring(
  workdir: str | os.PathLike, step: int | None = None, *, best: bool | None = None
) -> Trained:
  """The run in `workdir` at checkpoint `step`, with its config and data.

  Without `step`: the best checkpoint by `config.checkpoint.best_metric` when one is recorded
  (`best` None or True; True without one is an error), else the latest (`best` False).
  """
  workdir = pathlib.Path(workdir)
  if not (workdir / "config.json").exists():
    raise FileNotFoundError(f"{workdir}: not a training run's directory (no config.json)")
  saved = json.loads((workdir / "config.json").read_text())
  if isinstance(saved.get("loss"), str):  # saved before losses took options
    saved["loss"] = {"name": saved["loss"]}
  config = config_defaults.default_config()
  config.update(saved)  # keys declared after the run was saved take their defaults
  mesh = mesh_lib.make_mesh()
  data_path, _ = data_source.resolve(config, workdir)
  layout = store.open_split(data_path, "train").layout
  example_batch = pipeline.make_batch(
    [], batch_size=1, list_size=min(config.data.list_sizes), layout=layout
  )
  model, _, abstract_state, _ = build(config, mesh, example_batch)
  ckpt = checkpoint_lib.Checkpointer(
    workdir,
    best_metric=config.checkpoint.best_metric,
    best_mode=config.checkpoint.best_mode,
    read_only=True,
  )
  best_step = ckpt.best_step() if step is None and best is not False else None
  if best and best_step is None:
    raise FileNotFoundError(
      f"{ckpt.directory}: no best checkpoint recorded (config.checkpoint.best_metric "
      f"{config.checkpoint.best_metric!r}); score the latest instead"
    )
  state = ckpt.restore_state(abstract_state, step if best_step is None else best_step)
  ckpt.close()
  return Trained(
    config,
    model,
    {"params": state.params, **state.model_state},
    mesh,
    data_path,
    int(state.step),
    best_step is not None,
  )
