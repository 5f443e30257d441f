"""Compiling for the GPU machine's cards on a machine without a GPU (jax's CUDA plugin needed).

XLA's CUDA compiler needs no device when it is given the target's description: jax's compile-only
topologies (`jax.experimental.topologies`) take one as `target_config`. Programs lowered onto such
a device compile to the same optimized HLO and PTX as on the card, except where a real compile
autotunes (GEMM configurations). Install the plugin in its own environment (see
`gpu_compile_report.py`) and call `compile_here()` before jax starts a backend.
"""

import os

import jax
from jax.experimental import topologies

# XLA's GpuTargetConfigProto for the two cards of the GPU machine (public device properties).
_TARGET = """gpu_device_info {{
  threads_per_block_limit: 1024 threads_per_warp: 32 shared_memory_per_block: 49152
  shared_memory_per_core: 233472 threads_per_core_limit: 2048 core_count: 132 fpus_per_core: 128
  block_dim_limit_x: 2147483647 block_dim_limit_y: 65535 block_dim_limit_z: 65535
  memory_bandwidth: {bandwidth} l2_cache_size: 52428800 clock_rate_ghz: 1.98
  device_memory_size: {memory} shared_memory_per_block_optin: 232448
  cuda_compute_capability {{ major: 9 }} registers_per_core_limit: 65536
  registers_per_block_limit: 65536
}}
platform_name: "CUDA" dnn_version_info {{ major: 9 minor: 10 }} runtime_version {{ major: 13 }}
device_description_str: "{name}"
"""
TARGETS = {
  "h100": _TARGET.format(name="NVIDIA H100 80GB HBM3", bandwidth=3352320000000, memory=84978434048),
  "h200": _TARGET.format(name="NVIDIA H200", bandwidth=4800000000000, memory=150754820096),
}


def compile_here():
  """Sets up this process to compile for CUDA on the CPU: the plugin is compiled for, never run,
  so it must not look for a driver. Call before jax's first computation."""
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")


def compile_only_device(target: str):
  """A device of `target` ("h100" or "h200") to lower and compile for, never to run on."""
  try:
    return topologies.get_topology_desc(
      "rankjax", "cuda", target_config=TARGETS[target], topology="1x1x1"
    ).devices[0]
  except NotImplementedError as e:
    raise SystemExit(
      f"no CUDA compiler in this jax ({e}): install jax[cuda13] "
      "(see tools/benchmarks/gpu_compile_report.py)"
    ) from e


def on_device(tree, device):
  """Shapes and dtypes of `tree`'s arrays (or shape structs), placed on `device` for lowering."""
  sharding = jax.sharding.SingleDeviceSharding(device)
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
