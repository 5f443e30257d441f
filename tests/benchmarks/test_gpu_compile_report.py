"""The GPU compile report's reading of optimized HLO and PTX (no CUDA plugin needed here)."""

import importlib.util
import pathlib
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "tools" / "benchmarks"


def _load(name):
  """The benchmark script `name`, imported from its file (as a script, its siblings are
  importable because its directory is sys.path[0]; here they are loaded the same way first)."""
  spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
  module = sys.modules[name] = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


try:
  for sibling in ("gpu_target", "cross_encoder_step"):
    _load(sibling)
  report = _load("gpu_compile_report")
except ImportError as e:  # what pytest.importorskip did: a missing optional library skips
  pytest.skip(f"gpu_compile_report does not import here: {e}", allow_module_level=True)

# The shape of an XLA GPU dump: fused computations, then the entry computation.
HLO = """HloModule jit_step, entry_computation_layout={(bf16[64,32]{1,0})->f32[]}

%gemm_computation (p0: bf16[64,32], p1: bf16[32,16]) -> bf16[64,16] {
  %p0 = bf16[64,32]{1,0} parameter(0)
  %p1 = bf16[32,16]{1,0} parameter(1)
  ROOT %dot.1 = bf16[64,16]{1,0} dot(%p0, %p1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%fused_pair (q0: bf16[64,16]) -> (bf16[64,16], pred[64,16]) {
  %q0 = bf16[64,16]{1,0} parameter(0)
  ROOT %t = (bf16[64,16]{1,0}, pred[64,16]{1,0}) tuple(%q0, %q0)
}

ENTRY %main.9 (x: bf16[64,32], w: bf16[32,16]) -> f32[] {
  %x = bf16[64,32]{1,0} parameter(0), metadata={op_name="x"}
  %w = bf16[32,16]{1,0} parameter(1)
  %gemm_fusion_dot.1 = bf16[64,16]{1,0} fusion(%x, %w), kind=kCustom, calls=%gemm_computation
  %loop_pair = (bf16[64,16]{1,0}, pred[64,16]{1,0}) fusion(%gemm_fusion_dot.1), calls=%fused_pair
  %bitcast.2 = pred[1024]{0} bitcast(%loop_pair#1)
  %attn = (bf16[64,16]{1,0}, u8[0]{0}) custom-call(%loop_pair#0), custom_call_target="__cudnn$fmha"
  ROOT %loss = f32[] fusion(%bitcast.2, %loop_pair#0), metadata={op_name="jit(step)/add"}
}
"""


def test_kernels_count_tuple_elements_dot_flops_and_cudnn_calls():
  kernels = {k.name: k for k in report.kernels(HLO)}
  assert list(kernels) == ["gemm_fusion_dot.1", "loop_pair", "attn", "loss"]  # no bitcast
  gemm = kernels["gemm_fusion_dot.1"]
  assert gemm.flops == 2 * 64 * 16 * 32 and not gemm.cudnn
  assert gemm.bytes == 2 * (64 * 32 + 32 * 16 + 64 * 16)
  assert kernels["loop_pair"].bytes == 2 * 64 * 16 + (2 * 64 * 16 + 64 * 16)  # in + tuple out
  assert kernels["attn"].cudnn and kernels["attn"].flops == 0
  # Operands by tuple element: the pred mask (via a bitcast) and the bf16 half, not the tuple.
  assert kernels["loss"].bytes == 4 + 1024 + 2 * 64 * 16


def test_model_parts_fold_layers_and_name_the_pass():
  part = report.model_part
  assert part("jit(step)/jvp(Model)/bert/encoder/layer_3/intermediate/dense/dot_general") == (
    "forward: layer_N/intermediate/dense/dot_general"
  )
  assert part(
    "jit(step)/transpose(jvp(Model))/bert/encoder/layer_0/intermediate/jvp(Model)/bert/"
    "encoder/layer_0/intermediate/checkpoint/reduce_sum"
  ) == ("backward: layer_N/intermediate/checkpoint/reduce_sum")
  assert part("jit(step)/add") == "optimizer, loss and other"


def test_atomics_are_counted_by_form(tmp_path):
  ptx = tmp_path / "m.ptx"
  ptx.write_text(
    "atom.global.v4.f32.add {%r1}, [%rd1], {%r2};\n"
    "atom.relaxed.sys.global.cas.b32 %r3, [%rd2], %r4, %r5;\n"
    "atom.global.v4.f32.add {%r6}, [%rd3], {%r7};\n"
  )
  assert report.atomics([str(ptx)]) == {
    "atom.global.v4.f32.add": 2,
    "atom.relaxed.sys.global.cas.b32": 1,
  }
