"""XLA flags that rankjax sets before JAX starts a backend.

jaxlib 0.10.2 and 0.11.0 lower scalar float32 scatter-adds on NVIDIA GPUs to compare-and-swap
loops instead of the native atomic add (an LLVM NVPTX change, jax-ml/jax#38806), which collapse
when many updates hit the same address. The hidden LLVM option `-nvptx-allow-ftz-atomics` brings
the native atomic back (it flushes float32 denormals inside the atomic add, as jaxlib 0.10.1 did).
Read off the PTX of `t.at[i].add(u)` compiled for an H200 with each CUDA 13 jaxlib
(`tools/benchmarks/gpu_compile_report.py` explains compiling without a GPU): 0.10.1 and 0.11.1 /
0.11.2 emit `atom.add.f32` either way, and 0.10.1 rejects the option (the compile fails); 0.10.2
and 0.11.0 emit `atom.cas.b32` loops without it and `atom.add.f32` with it. Row scatters (an
embedding table's gradient) are vectorised `atom.v4.f32.add` in every one of them.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
from collections.abc import MutableMapping

FTZ_ATOMICS = "-nvptx-allow-ftz-atomics"
_AFFECTED = ((0, 10, 2), (0, 11, 1))  # [first, first unaffected), read off their PTX


def with_backend_option(xla_flags: str, option: str) -> str:
  """`xla_flags` with `option` added to its `--xla_backend_extra_options` list.

  >>> with_backend_option("--xla_dump_to=/tmp/d", "-a")
  '--xla_dump_to=/tmp/d --xla_backend_extra_options=-a'
  >>> with_backend_option("--xla_backend_extra_options=-b", "-a")
  '--xla_backend_extra_options=-b,-a'
  """
  prefix = "--xla_backend_extra_options="
  tokens = xla_flags.split()
  for i, token in enumerate(tokens):
    if token.startswith(prefix):
      current = token[len(prefix) :]
      tokens[i] = prefix + (f"{current},{option}" if current else option)
      return " ".join(tokens)
  return " ".join(tokens + [prefix + option])


def _version(text: str) -> tuple[int, int, int]:
  return tuple(int(x) for x in re.match(r"(\d+)\.(\d+)\.(\d+)", text).groups())


def _has_cuda_plugin() -> bool:
  return any(importlib.util.find_spec(f"jax_cuda{v}_plugin") is not None for v in (12, 13))


def fix_gpu_scatter_atomics(
  environ: MutableMapping[str, str] = os.environ,
  jax_version: str | None = None,
  has_cuda: bool | None = None,
) -> bool:
  """Adds `FTZ_ATOMICS` to XLA_FLAGS where the installed jaxlib needs it; True if it did.

  Call it before the first JAX computation (XLA reads XLA_FLAGS once, when a backend starts).
  Nothing changes on CPU-only installs, on unaffected versions, or where the flag (or
  `--xla_gpu_ftz=true`) is already set.
  """
  if jax_version is None:  # the installed version, without importing jax (seconds)
    jax_version = importlib.metadata.version("jax")
  if not _AFFECTED[0] <= _version(jax_version) < _AFFECTED[1]:
    return False
  if not (_has_cuda_plugin() if has_cuda is None else has_cuda):
    return False
  flags = environ.get("XLA_FLAGS", "")
  if FTZ_ATOMICS in flags or "--xla_gpu_ftz=true" in flags.lower():
    return False
  environ["XLA_FLAGS"] = with_backend_option(flags, FTZ_ATOMICS)
  return True
