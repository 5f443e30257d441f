#!/usr/bin/env bash
# One host, all its GPUs: one process drives every local GPU over the "data" mesh axis.
#   WORKDIR=/scratch/run launch/gpu_single_host.sh [--config.key=value ...]
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$REPO"
: "${WORKDIR:?set WORKDIR to the run directory}"
# Overlap the gradient all-reduce with compute.
xla_flags="${XLA_FLAGS:-} --xla_gpu_enable_latency_hiding_scheduler=true"
gpu_env=(env "XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}" "XLA_FLAGS=${xla_flags# }")
run "${gpu_env[@]}" "$PYTHON" -m rankjax.cli train --config="${CONFIG:-configs/mslr_mlp.py}" \
  --workdir="$WORKDIR" "$@"
