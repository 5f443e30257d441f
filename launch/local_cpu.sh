#!/usr/bin/env bash
# Local CPU run (the README's first command). Extra arguments go to `rankjax train`, e.g.
#   launch/local_cpu.sh --config.total_steps=100
#   CONFIG=configs/lightgbm_example.py:local WORKDIR=/tmp/lgb launch/local_cpu.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$REPO"
run env JAX_PLATFORMS=cpu "$PYTHON" -m rankjax.cli train \
  --config="${CONFIG:-configs/mslr_mlp.py:local}" --workdir="${WORKDIR:-/tmp/rankjax_run}" "$@"
