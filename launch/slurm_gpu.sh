#!/usr/bin/env bash
# Several GPU hosts under SLURM: one task per host, each driving its local GPUs. JAX's
# distributed runtime finds its peers from SLURM (rankjax calls jax.distributed.initialize when
# SLURM_NTASKS > 1); each host reads its part of every global batch. WORKDIR must be on a shared
# filesystem (checkpoints are written by all hosts together).
#   WORKDIR=/shared/run sbatch --nodes=4 launch/slurm_gpu.sh [--config.key=value ...]
#SBATCH --job-name=rankjax
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
#SBATCH --signal=TERM@120
# (--signal: SIGTERM two minutes before the time limit; the run saves and stops cleanly.)
set -euo pipefail
source "${RANKJAX_REPO:-${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}}/launch/common.sh"
cd "$REPO"
: "${WORKDIR:?set WORKDIR to a run directory on a shared filesystem}"
xla_flags="${XLA_FLAGS:-} --xla_gpu_enable_latency_hiding_scheduler=true"
gpu_env=(env "XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}" "XLA_FLAGS=${xla_flags# }")
run srun --kill-on-bad-exit=1 "${gpu_env[@]}" "$PYTHON" -m rankjax.cli train \
  --config="${CONFIG:-configs/mslr_mlp.py}" --workdir="$WORKDIR" "$@"
