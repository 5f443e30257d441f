r"""Device memory of the trainer's cross-encoder step under gradient accumulation and remat.

Compiles (never runs) `rankjax.engine.step.train_step` ahead of time for a listwise batch of
`--lists` lists x `--docs` documents x `--tokens` tokens, the cross-encoder of each `--sizes` entry
(random init, bf16 compute, fp32 parameters), the engine's AdamW and softmax loss, for each
`config.grad_accum_steps` in `--accum` (and with `--remat` also with rematerialised layers), and
prints XLA's memory analysis of the compiled step: arguments (state + batch), scratch (activations
and temporaries) and their sum, the step's peak on one device. Compilation is for the machine it
runs on, or with `--target h100|h200` for that card without one (jax's CUDA plugin needed, see
`gpu_target.py`); no data is needed. (XLA's CPU scheduler does not turn remat into savings: there
the scratch stays within a few percent.)

  PYTHONPATH=. .venv/bin/python tools/benchmarks/train_memory.py
  PYTHONPATH=. .venv/bin/python tools/benchmarks/train_memory.py --sizes minilm-l6 --docs 100
  PYTHONPATH=. /tmp/gpuaot/bin/python tools/benchmarks/train_memory.py --target h200 --remat
"""

import argparse
import datetime
import functools
import sys
import time

# Siblings: run as a file, this script's directory is sys.path[0].
import cross_encoder_step  # pylint: disable=g-import-not-at-top,wrong-import-position
import gpu_target  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import jax.numpy as jnp
import numpy as np

from rankjax import supervision
from rankjax.configs import default as config_defaults
from rankjax.engine import step as step_lib
from rankjax.models import cross_encoder


def abstract_batch(lists, docs, tokens):
  """Shapes and dtypes of a tokenized training batch, as the input pipeline makes it."""
  shape = lambda *s, dtype: jax.ShapeDtypeStruct(s, dtype)
  return {
    "tokens": shape(lists, docs, tokens, dtype=jnp.int32),
    "token_types": shape(lists, docs, tokens, dtype=jnp.int32),
    "mask": shape(lists, docs, dtype=jnp.bool_),
    "list_valid": shape(lists, dtype=jnp.bool_),
    "label_click": shape(lists, docs, dtype=jnp.float32),
    "mask_click": shape(lists, docs, dtype=jnp.bool_),
  }


def step_memory(size, accum, remat, batch, device=None):
  """(argument bytes, scratch bytes, compile seconds) of one compiled train step, for `device`
  (a compile-only GPU device; None: this machine's default)."""
  config = config_defaults.default_config()
  config.total_steps, config.loss.name, config.grad_accum_steps = 1000, "softmax", accum
  config.supervision.source = "click"
  # "auto" attention picks by the backend this process runs, not by the device compiled for.
  model = cross_encoder.Model(
    size=size, dtype="bfloat16", remat=remat, attention="auto" if device is None else "cudnn"
  )
  tx = step_lib.make_optimizer(config)
  concrete = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), batch)
  state = jax.eval_shape(functools.partial(step_lib.init_state, model, tx, concrete, 0))
  step = jax.jit(
    functools.partial(
      step_lib.train_step,
      model=model,
      tx=tx,
      config=config,
      objective=supervision.get_objective("single"),
    ),
    donate_argnums=0,
  )
  if device is not None:
    state, batch = gpu_target.on_device((state, batch), device)
  start = time.perf_counter()
  stats = step.lower(state, batch).compile().memory_analysis()
  return stats.argument_size_in_bytes, stats.temp_size_in_bytes, time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  cross_encoder_step.add_step_shape_args(parser)
  parser.add_argument("--accum", default="1,2,4,8", help="grad_accum_steps values")
  parser.add_argument("--remat", action="store_true", help="also rematerialised layers")
  parser.add_argument(
    "--target",
    default="",
    choices=sorted(gpu_target.TARGETS),
    help="compile for this card, without one (default: this machine)",
  )
  args = parser.parse_args()
  device = None
  if args.target:
    gpu_target.compile_here()
    device = gpu_target.compile_only_device(args.target)
  batch = abstract_batch(args.lists, args.docs, args.tokens)
  where = (
    f"compiled for {args.target} on the CPU (no device)"
    if args.target
    else f"{jax.devices()[0].device_kind} ({jax.default_backend()})"
  )
  header = (
    f"{datetime.date.today()} {where}, "
    f"jax {jax.__version__}, {args.lists} lists x {args.docs} docs x {args.tokens} tokens, "
    f"bf16 compute, fp32 parameters, AdamW"
  )
  print(header, flush=True)
  rows = []
  for size in args.sizes.split(","):
    for remat in (False, True) if args.remat else (False,):
      for accum in (int(a) for a in args.accum.split(",")):
        if args.lists % accum:
          print(f"  skipped {size} k={accum}: {args.lists} lists", file=sys.stderr)
          continue
        arg_bytes, temp_bytes, seconds = step_memory(size, accum, remat, batch, device)
        rows.append(
          f"| {size} | {'yes' if remat else 'no'} | {accum} | "
          f"{args.lists // accum * args.docs:,} | {arg_bytes / 2**30:.2f} | "
          f"{temp_bytes / 2**30:.2f} | {(arg_bytes + temp_bytes) / 2**30:.2f} | "
          f"{seconds:.0f} |"
        )
        print(rows[-1], flush=True)
  print(f"\n{header}\n")
  print(
    "| encoder | remat | grad_accum_steps | sequences per micro-batch | arguments (GiB) | "
    "scratch (GiB) | total (GiB) | compile (s) |"
  )
  print("|---|---|---:|---:|---:|---:|---:|---:|")
  print("\n".join(rows))


if __name__ == "__main__":
  main()
