"""The training loop: `train_and_evaluate(config, workdir)`.

One readable loop (as big_vision's): a pure `train_step(state, batch) -> (state, measurements)`,
jitted once with the state donated and explicit shardings (state replicated, batches split on the
"data" mesh axis); evaluation every `config.eval.every` steps; orbax checkpoints every
`config.checkpoint.every` steps and on SIGTERM; exact resume from the workdir's latest checkpoint,
input iterator included. Measurements of step t are read after step t+1 is dispatched, so the host
never stalls the device, except at checkpoint steps, where they are checked first so that a
checkpoint never holds a non-finite state.

Config fields (defaults and their meaning: `rankjax.config_defaults`): seed, total_steps,
grad_accum_steps, dropout_rng_impl, log_every, data.{name, path, cache_dir, batch_size,
list_sizes, num_threads}, model.{name, ...}, loss, supervision.{source, weights, objective},
optimizer.{lr, warmup_steps, weight_decay, clip_norm}, eval.{every, splits, label_source, metrics,
batch_size}, checkpoint.{every, keep, best_metric, best_mode}.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.experimental import multihost_utils

from rankjax import checkpoint as checkpoint_lib
from rankjax import evaluate
from rankjax import logging_utils
from rankjax import mesh as mesh_lib
from rankjax import models
from rankjax import supervision
from rankjax.data import pipeline
from rankjax.data import store
from rankjax.data import svmlight


@flax.struct.dataclass
class TrainState:
  """Everything a step changes. `model_state` holds non-param collections (e.g. batch_stats).

  `objective` holds the objective's own variables, {"params": ..., "state": ...} (empty for most
  objectives; see `rankjax.supervision`): its params train with the model's under the same
  optimizer, and neither is used to score or evaluate.
  """
  step: jax.Array
  rng: jax.Array
  params: Any
  model_state: Any
  opt_state: Any
  objective: Any


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """AdamW with linear warmup and cosine decay to 0, after clipping the gradient's global norm.

  It updates (model params, objective params). Weight decay is for the model only; the
  objective's updates are multiplied by `config.supervision.objective_lr_scale` (default 1), as a
  propensity model may need a larger step than the ranker (ULTRA's DLA has its own propensity
  learning rate). Runs shorter than the warmup (tests, smoke runs) warm up over all but their
  last step.
  """
  opt = config.optimizer
  warmup = max(min(opt.warmup_steps, config.total_steps - 1), 0)
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, opt.lr, warmup, max(config.total_steps, warmup + 1))
  scale = config.supervision.get("objective_lr_scale", 1.0)
  return optax.chain(optax.clip_by_global_norm(opt.clip_norm),
                     optax.adamw(schedule, weight_decay=opt.weight_decay,
                                 mask=lambda p: (jax.tree.map(lambda _: True, p[0]),
                                                 jax.tree.map(lambda _: False, p[1]))),
                     optax.stateless(lambda u, _: (u[0], optax.tree.scale(scale, u[1]))))


def init_state(model, tx, example_batch: dict, seed: int, model_module=None,
               model_config=None, objective_init=None) -> TrainState:
  """A fresh TrainState (call under jit for placement); pretrained weights when the model has them.

  `objective_init(rng) -> {"params": ..., "state": ...}` makes the objective's own variables.
  """
  init_rng, train_rng = jax.random.split(jax.random.PRNGKey(seed))
  variables = model.init({"params": init_rng, "dropout": init_rng}, example_batch, train=False)
  params = variables["params"]
  model_state = {k: v for k, v in variables.items() if k != "params"}
  if model_module is not None and hasattr(model_module, "load_pretrained"):
    params = model_module.load_pretrained(params, model_config)
  objective = {"params": {}, "state": {}}
  if objective_init is not None:
    objective.update(objective_init(jax.random.fold_in(init_rng, 1)))
  return TrainState(step=jnp.zeros((), jnp.int32), rng=train_rng, params=params,
                    model_state=model_state, opt_state=tx.init((params, objective["params"])),
                    objective=objective)


DROPOUT_RNG_IMPLS = ("threefry2x32", "rbg", "unsafe_rbg")


def dropout_key(rng: jax.Array, impl: str) -> jax.Array:
  """The key dropout masks are drawn from: `rng` itself, or a key of bit generator `impl` seeded
  from it ("rbg" / "unsafe_rbg": XLA's RngBitGenerator, far cheaper bits on GPUs and TPUs)."""
  if impl not in DROPOUT_RNG_IMPLS:
    raise ValueError(f"config.dropout_rng_impl={impl!r} is not one of {DROPOUT_RNG_IMPLS}")
  if impl == "threefry2x32":
    return rng
  return jax.random.key(jax.random.bits(rng, (), jnp.uint32), impl=impl)


def _value_and_grad(trainable, model_state, objective_state, batch, rng, step, *, model,
                    objective, config):
  """((loss, (new model state, aux, new objective state)), grads) of one (micro-)batch."""
  mutable = list(model_state)
  rng = dropout_key(rng, config.get("dropout_rng_impl", "threefry2x32"))

  def loss_fn(trainable):
    params, objective_params = trainable
    variables = {"params": params, **model_state}
    if mutable:
      scores, new_model_state = model.apply(variables, batch, train=True,
                                            rngs={"dropout": rng}, mutable=mutable)
    else:
      scores, new_model_state = model.apply(variables, batch, train=True,
                                            rngs={"dropout": rng}), {}
    if hasattr(objective, "init"):
      variables = {"params": objective_params, "state": objective_state}
      loss, aux, new_objective_state = objective(scores, batch, step=step, config=config,
                                                 variables=variables)
    else:
      loss, aux = objective(scores, batch, step=step, config=config)
      new_objective_state = objective_state
    return loss, (new_model_state, aux, new_objective_state)

  return jax.value_and_grad(loss_fn, has_aux=True)(trainable)


def split_microbatches(batch: dict, num: int) -> dict:
  """[B, ...] arrays -> [num, B / num, ...]: micro-batch j holds lists j, j + num, j + 2 num, ...

  Strided rather than contiguous, so that each device's contiguous share of a batch sharded on
  "data" splits into its own micro-batch shares, and no list moves between devices.
  """
  return jax.tree.map(lambda x: jnp.swapaxes(x.reshape(x.shape[0] // num, num, *x.shape[1:]),
                                             0, 1), batch)


def _accumulated(trainable, model_state, objective_state, batch, rng, step, *, num, **kwargs):
  """`_value_and_grad` over `num` micro-batches in a loop, holding one micro-batch's activations.

  The loss and gradient are the micro-batches' means; integer measurements (counts) add up and
  float ones are averaged. Model and objective state (batch statistics, EM counts) are updated
  micro-batch after micro-batch.
  """
  def body(carry, xs):
    grad_sum, model_state, objective_state = carry
    j, micro = xs
    (loss, (model_state, aux, objective_state)), grads = _value_and_grad(
        trainable, model_state, objective_state, micro, jax.random.fold_in(rng, j), step,
        **kwargs)
    return (jax.tree.map(jnp.add, grad_sum, grads), model_state, objective_state), (loss, aux)

  zeros = jax.tree.map(jnp.zeros_like, trainable)
  (grad_sum, model_state, objective_state), (losses, aux) = jax.lax.scan(
      body, (zeros, model_state, objective_state),
      (jnp.arange(num), split_microbatches(batch, num)))
  aux = jax.tree.map(lambda x: x.sum(0) if jnp.issubdtype(x.dtype, jnp.integer) else x.mean(0),
                     aux)
  grads = jax.tree.map(lambda g: g / num, grad_sum)
  return (losses.mean(), (model_state, aux, objective_state)), grads


def train_step(state: TrainState, batch: dict, *, model, tx, objective, config):
  """One optimizer step: (state, batch) -> (new state, measurements). Pure; jit it.

  The optimizer updates (model params, objective params) together; an objective with its own
  variables (`init`) also returns the new value of their non-gradient "state". With
  `config.grad_accum_steps` = k > 1 the batch runs as k micro-batches of B / k lists, one after
  another, and the step's loss and gradient are their means (`_accumulated`), at about 1 / k of
  the activation memory. That is the whole batch's for a listwise loss (a mean over lists) when
  every micro-batch has as many lists with labels; pointwise and pairwise losses average over
  items or pairs, so there each micro-batch weighs the same rather than by its item count.
  """
  rng = jax.random.fold_in(state.rng, state.step)
  trainable = (state.params, state.objective["params"])
  kwargs = dict(model=model, objective=objective, config=config)
  num = config.get("grad_accum_steps", 1)
  args = (trainable, state.model_state, state.objective["state"], batch, rng, state.step)
  if num > 1:
    value_and_grads = _accumulated(*args, num=num, **kwargs)
  else:
    value_and_grads = _value_and_grad(*args, **kwargs)
  (loss, (model_state, aux, objective_state)), grads = value_and_grads
  updates, opt_state = tx.update(grads, state.opt_state, trainable)
  params, objective_params = optax.apply_updates(trainable, updates)
  measurements = {"loss": loss, "grad_norm": optax.tree.norm(grads),
                  "param_norm": optax.tree.norm(params),
                  "update_norm": optax.tree.norm(updates), **aux}
  new_state = state.replace(step=state.step + 1, params=params, model_state=model_state,
                            opt_state=opt_state,
                            objective={"params": objective_params, "state": objective_state})
  return new_state, measurements


def compile_train_step(mesh, **kwargs):
  """`train_step` jitted once: state replicated and donated, batch sharded on "data"."""
  repl = mesh_lib.replicated(mesh)
  return jax.jit(functools.partial(train_step, **kwargs),
                 in_shardings=(repl, mesh_lib.data_sharding(mesh)),
                 out_shardings=(repl, repl), donate_argnums=0)


def prepare_data(config, workdir) -> pathlib.Path:
  """The prepared dataset: `config.data.path`, else built from a known svmlight set by name."""
  if config.data.path:
    return pathlib.Path(config.data.path)
  if config.data.name not in svmlight.DATASETS:
    raise ValueError(f"config.data.path is empty and {config.data.name!r} is not a known "
                     f"dataset; known: {sorted(svmlight.DATASETS)}")
  cache = pathlib.Path(config.data.cache_dir or pathlib.Path(workdir) / "data")
  if jax.process_index() == 0:
    store.ensure_dataset(cache, config.data.name, svmlight.DATASETS[config.data.name])
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("rankjax:prepare_data")
  return cache / config.data.name / store.VERSION


def build(config, mesh, example_batch: dict):
  """(model, tx, abstract state, init function) for a config; nothing is computed yet."""
  module, model = models.build(config.model)
  tx = make_optimizer(config)
  example = jax.tree.map(lambda x: x[:1], example_batch)
  objective = supervision.get_objective(config.supervision.objective)
  objective_init = (functools.partial(objective.init, config=config)
                    if hasattr(objective, "init") else None)
  init = jax.jit(functools.partial(init_state, model, tx, example, config.seed, module,
                                   config.model, objective_init),
                 out_shardings=mesh_lib.replicated(mesh))
  abstract = jax.eval_shape(init)
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=mesh_lib.replicated(mesh)),
      abstract)
  return model, tx, abstract, init


def check_grad_accum(config, mesh):
  """Each device's share of a batch must split into `config.grad_accum_steps` micro-batches."""
  num = config.get("grad_accum_steps", 1)
  per_device = config.data.batch_size // mesh.size
  if not isinstance(num, int) or num < 1 or per_device % num:
    raise ValueError(f"config.grad_accum_steps={num!r} must be a positive integer dividing the "
                     f"{per_device} lists per device (data.batch_size {config.data.batch_size} "
                     f"over {mesh.size} devices)")


def _save_config(config, workdir: pathlib.Path):
  if jax.process_index() == 0:
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=1, sort_keys=True))


def _check_finite(step: int, scalars: dict[str, float], last_saved: int | None):
  bad = [k for k in ("train/loss", "train/grad_norm") if not np.isfinite(scalars[k])]
  if bad:
    raise FloatingPointError(
        f"non-finite {', '.join(bad)} at step {step} ({scalars}); stopping. The last good "
        f"checkpoint is step {last_saved}" if last_saved is not None else
        f"non-finite {', '.join(bad)} at step {step}; stopping (no checkpoint saved yet)")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
  """Trains per `config` in `workdir`, resuming from its latest checkpoint if there is one.

  Returns:
    {"step": final step, "eval": {split: {metric: {bucket: value}}}, "preempted": bool,
     "state": the final TrainState}.
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  _save_config(config, workdir)
  mesh = mesh_lib.make_mesh()
  mesh_lib.local_batch_size(config.data.batch_size, mesh)  # checks divisibility
  check_grad_accum(config, mesh)
  data_path = prepare_data(config, workdir)
  train_split = store.open_split(data_path, "train")
  eval_splits = {s: store.open_split(data_path, s) for s in config.eval.splits}
  long_lists = pipeline.count_long_lists(train_split.lengths, config.data.list_sizes)
  if long_lists and jax.process_index() == 0:
    print(f"{long_lists} of {len(train_split)} training lists are longer than "
          f"{max(config.data.list_sizes)} items; each batch samples that many of their items")
  # Token widths from the training split, for evaluation too: one set of compiled shapes.
  token_widths = pipeline.token_widths(train_split, config.data.get("token_buckets", 0))
  if token_widths and jax.process_index() == 0:
    print(f"token arrays cut to widths {token_widths}")
  train_data = pipeline.train_dataset(
      train_split, batch_size=config.data.batch_size, list_sizes=config.data.list_sizes,
      seed=config.seed, token_widths=token_widths,
      length_grouped=config.data.get("length_grouped", False), process_index=jax.process_index(),
      process_count=jax.process_count(), num_threads=config.data.num_threads)
  example_batch = pipeline.make_batch([], batch_size=1, list_size=min(config.data.list_sizes),
                                      layout=train_split.layout)

  model, tx, abstract_state, init = build(config, mesh, example_batch)
  ckpt = checkpoint_lib.Checkpointer(workdir, keep=config.checkpoint.keep,
                                     best_metric=config.checkpoint.best_metric,
                                     best_mode=config.checkpoint.best_mode)
  data_iter = iter(train_data)
  if ckpt.latest_step() is not None:
    state, data_state = ckpt.restore(abstract_state)
    data_iter.set_state(data_state)
    print(f"resumed from step {int(state.step)} in {ckpt.directory}")
  else:
    state = init()
  step = int(state.step)

  step_fn = compile_train_step(mesh, model=model, tx=tx,
                               objective=supervision.get_objective(config.supervision.objective),
                               config=config)
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
          eval_step, variables, split, batch_size=config.eval.batch_size,
          list_sizes=config.data.list_sizes, token_widths=token_widths, mesh=mesh)
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
          ckpt.save(step, state, data_iter.get_state(),
                    logging_utils.flatten(results) if do_eval else None)
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
  return {"step": step, "eval": results, "preempted": preempted, "state": state}


class Trained(NamedTuple):
  """A trained run, loaded for scoring."""
  config: ml_collections.ConfigDict
  model: Any
  variables: dict
  mesh: jax.sharding.Mesh
  data_path: pathlib.Path
  step: int


def load_for_scoring(workdir: str | os.PathLike, step: int | None = None) -> Trained:
  """The run in `workdir` at checkpoint `step` (default the latest), with its config and data."""
  workdir = pathlib.Path(workdir)
  config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
  config.data.list_sizes = tuple(config.data.list_sizes)
  mesh = mesh_lib.make_mesh()
  data_path = prepare_data(config, workdir)
  layout = store.open_split(data_path, "train").layout
  example_batch = pipeline.make_batch([], batch_size=1, list_size=min(config.data.list_sizes),
                                      layout=layout)
  model, _, abstract_state, _ = build(config, mesh, example_batch)
  ckpt = checkpoint_lib.Checkpointer(workdir, read_only=True)
  state = ckpt.restore_state(abstract_state, step)
  ckpt.close()
  return Trained(config, model, {"params": state.params, **state.model_state}, mesh, data_path,
                 int(state.step))
