r"""The cross-encoder train step compiled for an H100 / H200 on a machine with no GPU.

XLA's CUDA compiler runs without a device when it is given the target's description (jax's
compile-only topologies), so this machine can see what the GPU machine would run: every kernel
of the optimized program, and the PTX. For each variant of `cross_encoder_step.py`'s step
(16 lists x 32 documents x 128 tokens by default) it reports:
  * kernels: launches per step (fusions, GEMMs, cuDNN calls, copies);
  * GEMM TFLOP, from the dot inside each GEMM fusion or custom call;
  * other traffic: bytes read and written by every kernel that is not a GEMM or cuDNN call (each
    operand and output counted whole; a kernel that reads part of an operand counts all of it),
    and that traffic's time at `--bandwidth` (about what a device-to-device copy reaches on the
    H200): the part of the step that no faster matmul can remove;
  * atomics: the atomic instructions in the PTX. A float scatter-add should be a native
    `atom...add.f32` (vectorised `.v4` for rows); `cas` marks a compare-and-swap loop (jaxlib
    0.10.2's scalar float32 scatter-add) and `bf16` a scatter-add in bfloat16;
and, per variant, where that traffic goes by model part (layers folded into `layer_N`).

What it cannot see: timings; GEMM configurations, which a real compile picks by autotuning on the
device (the FLOPs are the same; a fusion that autotuning would make can differ); and integer work
inside a kernel, such as threefry dropout bits computed in the fusion that uses them, which costs
ALU time but no traffic.

It needs jax's CUDA plugin (no driver, no GPU) in its own environment, e.g. the GPU machine's jax:

  /root/.pyenv/versions/3.12.1/bin/python -m venv /tmp/gpuaot && /tmp/gpuaot/bin/pip install \
      "jax[cuda13]==0.11.2" flax optax safetensors
  PYTHONPATH=. /tmp/gpuaot/bin/python tools/benchmarks/gpu_compile_report.py --sizes bert-base

A BERT-base variant compiles in 1-3 minutes on 2 CPU cores; `--layers 3` compiles a 3-layer copy
of a size in under one (per-layer figures are the same).
"""

import argparse
import collections
import dataclasses
import datetime
import glob
import math
import os
import re
import tempfile
import time

# Siblings: run as a file, this script's directory is sys.path[0].
import cross_encoder_step as bench  # pylint: disable=wrong-import-position
import gpu_target  # pylint: disable=wrong-import-position
import jax
import jax.numpy as jnp

from rankjax.models import cross_encoder  # pylint: disable=wrong-import-position
from rankjax.models.layers import bert  # pylint: disable=wrong-import-position

# name: (cross_encoder.Model options over its defaults, step key implementation); the names are
# cross_encoder_step.py's rows.
VARIANTS = {
  "cudnn attention": ({}, "threefry2x32"),
  "cudnn attention, threefry dropout masks": ({"dropout_masks": "prng"}, "threefry2x32"),
  "cudnn attention, rbg dropout masks": ({"dropout_masks": "prng"}, "rbg"),
  "cudnn attention, separate q/k/v matmuls": ({"fused_qkv": False}, "threefry2x32"),
  "cudnn attention, every position in the last layer": ({"cls_only": False}, "threefry2x32"),
  "xla attention": ({"attention": "xla"}, "threefry2x32"),
}
_DTYPE_BYTES = {
  "pred": 1,
  "s8": 1,
  "u8": 1,
  "s16": 2,
  "u16": 2,
  "f16": 2,
  "bf16": 2,
  "s32": 4,
  "u32": 4,
  "f32": 4,
  "s64": 8,
  "u64": 8,
  "f64": 8,
}
_ARRAY = re.compile(r"\b(" + "|".join(_DTYPE_BYTES) + r")\[([0-9,]*)\]")
_NO_KERNEL = {"parameter", "bitcast", "get-tuple-element", "tuple", "constant", "opt-barrier"}


@dataclasses.dataclass
class Kernel:
  name: str
  bytes: int  # operands + outputs
  flops: int  # GEMMs only
  cudnn: bool
  op_name: str  # the jax op the kernel's root came from


def _arrays(shape: str) -> list[tuple[str, int]]:
  """(dtype, elements) of each array in an HLO shape (a tuple lists several)."""
  return [
    (dtype, math.prod(int(d) for d in filter(None, dims.split(","))))
    for dtype, dims in _ARRAY.findall(shape)
  ]


def _computations(hlo: str) -> dict[str, list[str]]:
  comps, current = {}, None
  for line in hlo.splitlines():
    head = re.match(r"^(?:ENTRY )?%(\S+) .*\{$", line)
    if head:
      current = comps.setdefault(head.group(1), [])
    elif current is not None and line.startswith("  "):
      current.append(line)
  return comps


def _dot_flops(lines: list[str]) -> int:
  """2 x output elements x contracted size, summed over the dots of one computation."""
  shapes = {}
  for line in lines:
    m = re.match(r"\s+(?:ROOT )?%(\S+) = (\S+)", line)
    if m:
      shapes[m.group(1)] = m.group(2)
  flops = 0
  for line in lines:
    m = re.search(r"= (\S+) dot\(%([\w.\-]+),.*lhs_contracting_dims=\{([0-9,]*)\}", line)
    if m:
      ((_, out),) = _arrays(m.group(1))
      dims = [int(d) for d in _ARRAY.search(shapes[m.group(2)]).group(2).split(",")]
      flops += 2 * out * math.prod(dims[int(d)] for d in m.group(3).split(","))
  return flops


def kernels(hlo: str) -> list[Kernel]:
  """The kernels of an optimized GPU HLO module's entry computation, in schedule order."""
  comps = _computations(hlo)
  entry = next(name for name in comps if re.search(rf"^ENTRY %{re.escape(name)} ", hlo, re.M))
  shapes, out = {}, []
  for line in comps[entry]:
    m = re.match(r"\s+(?:ROOT )?%(\S+) = (.*?) ([\w-]+)\((.*?)\)(, .*)?$", line)
    if not m:
      continue
    name, shape, op, operands, attrs = m.groups()
    shapes[name] = shape
    if op in _NO_KERNEL:
      continue
    arrays = _arrays(shape)
    for operand, _, index in re.findall(r"%([\w.\-]+)(#(\d+))?", operands):
      found = _arrays(shapes.get(operand, ""))
      # `#k`: one element of a multi-output fusion's tuple
      arrays += [found[int(index)]] if index and found else found
    nbytes = sum(_DTYPE_BYTES[dtype] * n for dtype, n in arrays)
    attrs = attrs or ""
    called = re.search(r"calls=%([\w.\-]+)", attrs)
    op_name = re.search(r'op_name="([^"]*)"', attrs)
    out.append(
      Kernel(
        name,
        nbytes,
        _dot_flops(comps[called.group(1)]) if called else 0,
        "__cudnn$fmha" in attrs,
        op_name.group(1) if op_name else "",
      )
    )
  return out


def atomics(ptx_files: list[str]) -> collections.Counter:
  counts = collections.Counter()
  for path in ptx_files:
    with open(path) as f:
      counts.update(re.findall(r"\batom\.[\w.]+", f.read()))
  return counts


def model_part(op_name: str) -> str:
  """'jit(step)/transpose(jvp(Model))/bert/encoder/layer_3/intermediate/mul' ->
  'backward: layer_N/intermediate/mul'."""
  part = re.sub(r"layer_\d+", "layer_N", op_name)
  direction = "backward" if "transpose(" in part else "forward"
  part = re.sub(r"^.*\bbert/(encoder/)?", "", part)  # greedy: past a checkpoint's nested name
  part = re.sub(r"^jit\(step\)/", "", part)
  return f"{direction}: {part}" if "/" in part else "optimizer, loss and other"


def compile_variant(size, options, prng, target, args, dump_dir):
  """Compiles the benchmark's step for `target` with no device into `dump_dir`; returns the
  optimized HLO text and the PTX's atomic instructions."""
  device = gpu_target.compile_only_device(target)
  model = cross_encoder.Model(size=size, dtype="bfloat16", **{"attention": "cudnn", **options})
  data = bench.make_data(args.lists, args.docs, args.tokens, bert.SIZES[size].vocab_size)
  batch = jax.eval_shape(lambda: {k: jnp.asarray(v) for k, v in data.items()})
  params = jax.eval_shape(model.init, jax.random.key(0), batch)["params"]
  tx = bench.optimizer()
  abstract = (
    params,
    jax.eval_shape(tx.init, params),
    jax.eval_shape(lambda: jax.random.key(1, impl=prng)),
    batch,
  )
  lowered = jax.jit(bench.train_step(model, tx), donate_argnums=(0, 1)).lower(
    *gpu_target.on_device(abstract, device)
  )
  lowered.compile(
    {"xla_dump_to": dump_dir, "xla_dump_hlo_as_text": True, "xla_dump_emitter_re": ".*"}
  )  # the emitter pattern also dumps the PTX
  (hlo,) = glob.glob(f"{dump_dir}/*jit_step*gpu_after_optimizations.txt")
  with open(hlo) as f:
    return f.read(), atomics(glob.glob(f"{dump_dir}/*jit_step*.ptx"))


def main():
  gpu_target.compile_here()
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  bench.add_step_shape_args(parser, sizes="bert-base")
  parser.add_argument("--layers", type=int, default=0, help="compile this many layers (0: all)")
  parser.add_argument(
    "--variants",
    default="",
    help=f"regular expression over the variant names ({', '.join(VARIANTS)})",
  )
  parser.add_argument("--target", default="h200", choices=sorted(gpu_target.TARGETS))
  parser.add_argument("--bandwidth", type=float, default=4.0, help="TB/s for the traffic's time")
  parser.add_argument("--parts", type=int, default=12, help="model parts listed per variant")
  parser.add_argument("--keep_dump", default="", help="keep XLA's dumps under this directory")
  args = parser.parse_args()
  variants = {n: v for n, v in VARIANTS.items() if re.search(args.variants, n)}

  header = (
    f"{datetime.date.today()}, compiled for {args.target} on the CPU (no device), jax "
    f"{jax.__version__}, {args.lists} lists x {args.docs} docs x {args.tokens} tokens, "
    f"bf16 compute, traffic time at {args.bandwidth:g} TB/s"
  )
  print(header, flush=True)
  rows, details = [], []
  for size in args.sizes.split(","):
    label = size
    if args.layers:
      label = f"{size} ({args.layers} layers)"
      bert.SIZES[label] = dataclasses.replace(bert.SIZES[size], num_layers=args.layers)
    for variant, (options, prng) in variants.items():
      print(f"  {label}: {variant} ...", flush=True)
      start = time.perf_counter()
      with tempfile.TemporaryDirectory() as tmp:
        dump = (
          os.path.join(args.keep_dump, re.sub(r"\W+", "_", f"{label}_{variant}"))
          if (args.keep_dump)
          else tmp
        )
        hlo, atoms = compile_variant(label, options, prng, args.target, args, dump)
      found = kernels(hlo)
      other = [k for k in found if not k.flops and not k.cudnn]
      traffic = sum(k.bytes for k in other)
      rows.append(
        f"| {label} | {variant} | {len(found):,} | "
        f"{sum(k.flops for k in found) / 1e12:.1f} | {traffic / 1e9:.1f} | "
        f"{traffic / args.bandwidth / 1e9:.1f} | "
        f"{', '.join(f'{n} {a}' for a, n in sorted(atoms.items())) or 'none'} |"
      )
      print(f"    {rows[-1]} (compiled in {time.perf_counter() - start:.0f} s)", flush=True)
      by_part = collections.Counter()
      for k in other:
        by_part[model_part(k.op_name)] += k.bytes
      details.append(
        f"\n{label}, {variant}: other traffic by model part (GB)\n"
        + "\n".join(f"  {b / 1e9:6.2f}  {part}" for part, b in by_part.most_common(args.parts))
      )

  print(f"\n{header}\n")
  print("| encoder | variant | kernels | GEMM TFLOP | other traffic GB | its ms | PTX atomics |")
  print("|---|---|---|---|---|---|---|")
  print("\n".join(rows))
  print("\n".join(details))


if __name__ == "__main__":
  main()
