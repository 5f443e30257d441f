"""The pure training step: `train_step(state, batch) -> (state, measurements)` and its parts.

Everything a step needs and nothing of the loop around it (data, checkpoints, evaluation live
in `rankjax.engine.train`): the `TrainState`, the optimizer, the initial state, gradient
accumulation over micro-batches and the dropout key. It imports no input pipeline, so benchmarks
and other loops can run the engine's exact step on their own arrays.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import flax
import jax
import jax.numpy as jnp
import optax

from rankjax import registry
from rankjax.engine import mesh as mesh_lib

if TYPE_CHECKING:  # configs are duck-typed here, so the step runs without ml_collections
  import ml_collections


@flax.struct.dataclass
class TrainState:
  """Everything a step changes. `model_state` holds non-param collections (e.g. batch_stats).

  `objective` holds the objective's own variables, {"params": ..., "state": ...} (empty for most
  objectives; see `rankjax.supervision.objective`): its params train with the model's under the
  same optimizer, and neither is used to score or evaluate.
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
  objective's updates are multiplied by `config.supervision.objective_lr_scale`, as a
  propensity model may need a larger step than the ranker (ULTRA's DLA has its own propensity
  learning rate). Runs shorter than the warmup (tests, smoke runs) warm up over all but their
  last step.
  """
  opt = config.optimizer
  warmup = max(min(opt.warmup_steps, config.total_steps - 1), 0)
  schedule = optax.warmup_cosine_decay_schedule(
    0.0, opt.lr, warmup, max(config.total_steps, warmup + 1)
  )
  scale = config.supervision.objective_lr_scale
  return optax.chain(
    optax.clip_by_global_norm(opt.clip_norm),
    optax.adamw(
      schedule,
      weight_decay=opt.weight_decay,
      mask=lambda p: (jax.tree.map(lambda _: True, p[0]), jax.tree.map(lambda _: False, p[1])),
    ),
    optax.stateless(lambda u, _: (u[0], optax.tree.scale(scale, u[1]))),
  )


def init_state(
  model,
  tx,
  example_batch: dict,
  seed: int,
  model_module=None,
  model_config=None,
  objective_init=None,
) -> TrainState:
  """A fresh TrainState (call under jit for placement); pretrained weights when the model has them.

  `objective_init(rng) -> {"params": ..., "state": ...}` makes the objective's own variables
  (`Objective.init`); without it they are empty, as a stateless objective's.
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
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    rng=train_rng,
    params=params,
    model_state=model_state,
    opt_state=tx.init((params, objective["params"])),
    objective=objective,
  )


def _seeded_key(impl: str) -> Callable[[jax.Array], jax.Array]:
  """A key of bit generator `impl` seeded from the step's key."""
  return lambda rng: jax.random.key(jax.random.bits(rng, (), jnp.uint32), impl=impl)


# `config.dropout_rng_impl` -> (the step's key) -> the key dropout masks are drawn from: the step's
# own (threefry), or a key of XLA's RngBitGenerator ("rbg" / "unsafe_rbg": far cheaper bits on
# GPUs and TPUs).
DROPOUT_RNG_IMPLS: dict[str, Callable[[jax.Array], jax.Array]] = {
  "threefry2x32": lambda rng: rng,
  "rbg": _seeded_key("rbg"),
  "unsafe_rbg": _seeded_key("unsafe_rbg"),
}


def dropout_key(rng: jax.Array, impl: str) -> jax.Array:
  """The key dropout masks are drawn from, `DROPOUT_RNG_IMPLS[impl](rng)`
  (`registry.UnknownName` for another `impl`)."""
  return registry.lookup(DROPOUT_RNG_IMPLS, impl, "config.dropout_rng_impl")(rng)


def _value_and_grad(
  trainable, model_state, objective_state, batch, rng, step, *, model, objective, config
):
  """((loss, (new model state, aux, new objective state)), grads) of one (micro-)batch."""
  rng = dropout_key(rng, config.dropout_rng_impl)

  def loss_fn(trainable):
    params, objective_params = trainable
    variables = {"params": params, **model_state}
    # A list of collections (empty too) makes flax return (scores, their new values).
    scores, new_model_state = model.apply(
      variables, batch, train=True, rngs={"dropout": rng}, mutable=list(model_state)
    )
    variables = {"params": objective_params, "state": objective_state}
    loss, aux, new_objective_state = objective.apply(
      scores, batch, step=step, config=config, variables=variables
    )
    return loss, (new_model_state, aux, new_objective_state)

  return jax.value_and_grad(loss_fn, has_aux=True)(trainable)


def split_microbatches(batch: dict, num: int) -> dict:
  """[B, ...] arrays -> [num, B / num, ...]: micro-batch j holds lists j, j + num, j + 2 num, ...

  Strided rather than contiguous, so that each device's contiguous share of a batch sharded on
  "data" splits into its own micro-batch shares, and no list moves between devices.
  """
  return jax.tree.map(
    lambda x: jnp.swapaxes(x.reshape(x.shape[0] // num, num, *x.shape[1:]), 0, 1), batch
  )


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
      trainable, model_state, objective_state, micro, jax.random.fold_in(rng, j), step, **kwargs
    )
    return (jax.tree.map(jnp.add, grad_sum, grads), model_state, objective_state), (loss, aux)

  zeros = jax.tree.map(jnp.zeros_like, trainable)
  (grad_sum, model_state, objective_state), (losses, aux) = jax.lax.scan(
    body, (zeros, model_state, objective_state), (jnp.arange(num), split_microbatches(batch, num))
  )
  aux = jax.tree.map(lambda x: x.sum(0) if jnp.issubdtype(x.dtype, jnp.integer) else x.mean(0), aux)
  grads = jax.tree.map(lambda g: g / num, grad_sum)
  return (losses.mean(), (model_state, aux, objective_state)), grads


def train_step(state: TrainState, batch: dict, *, model, tx, objective, config):
  """One optimizer step: (state, batch) -> (new state, measurements). Pure; jit it.

  The optimizer updates (model params, objective params) together; the objective
  (`rankjax.supervision.objective.Objective`) also returns the new value of its non-gradient
  "state". With
  `config.grad_accum_steps` = k > 1 the batch runs as k micro-batches of B / k lists, one after
  another, and the step's loss and gradient are their means (`_accumulated`), at about 1 / k of
  the activation memory. That is the whole batch's for a listwise loss (a mean over lists) when
  every micro-batch has as many lists with labels; pointwise and pairwise losses average over
  items or pairs, so there each micro-batch weighs the same rather than by its item count.
  """
  rng = jax.random.fold_in(state.rng, state.step)
  trainable = (state.params, state.objective["params"])
  kwargs = dict(model=model, objective=objective, config=config)
  num = config.grad_accum_steps
  args = (trainable, state.model_state, state.objective["state"], batch, rng, state.step)
  if num > 1:
    value_and_grads = _accumulated(*args, num=num, **kwargs)
  else:
    value_and_grads = _value_and_grad(*args, **kwargs)
  (loss, (model_state, aux, objective_state)), grads = value_and_grads
  updates, opt_state = tx.update(grads, state.opt_state, trainable)
  params, objective_params = optax.apply_updates(trainable, updates)
  measurements = {
    "loss": loss,
    "grad_norm": optax.tree.norm(grads),
    "param_norm": optax.tree.norm(params),
    "update_norm": optax.tree.norm(updates),
    **aux,
  }
  new_state = state.replace(
    step=state.step + 1,
    params=params,
    model_state=model_state,
    opt_state=opt_state,
    objective={"params": objective_params, "state": objective_state},
  )
  return new_state, measurements


def compile_train_step(mesh, **kwargs):
  """`train_step` jitted once: state replicated and donated, batch sharded on "data"."""
  repl = mesh_lib.replicated(mesh)
  return jax.jit(
    functools.partial(train_step, **kwargs),
    in_shardings=(repl, mesh_lib.data_sharding(mesh)),
    out_shardings=(repl, repl),
    donate_argnums=0,
  )


def check_grad_accum(config, mesh):
  """Each device's share of a batch must split into `config.grad_accum_steps` micro-batches."""
  num = config.grad_accum_steps
  per_device = config.data.batch_size // mesh.size
  if not isinstance(num, int) or num < 1 or per_device % num:
    raise ValueError(
      f"config.grad_accum_steps={num!r} must be a positive integer dividing the "
      f"{per_device} lists per device (data.batch_size {config.data.batch_size} "
      f"over {mesh.size} devices)"
    )
