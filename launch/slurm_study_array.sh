#!/usr/bin/env bash
# A study fanned out over SLURM: an array job, one shard of the study's grid of (sweep value,
# variant, seed) runs per task (`rankjax study --shard=I/N`), then a report job once every task
# has ended (`rankjax study --report`; it refuses, naming them, runs that a failed or preempted
# task left unfinished: run this again to resume them, finished runs are reused). Run it where
# jobs are submitted; it submits itself twice (RANKJAX_STUDY_PART says which part a job is).
# WORKDIR must be on a filesystem every node shares; SHARDS is the number of array tasks (at
# most the number of runs: variants x seeds [x sweep values]); GPUS_PER_SHARD (default 1).
#   WORKDIR=/shared/study SHARDS=8 CONFIG=configs/demo.py launch/slurm_study_array.sh [--config.key=value ...]
#SBATCH --job-name=rankjax-study
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
#SBATCH --signal=TERM@120
# (--signal: SIGTERM two minutes before the time limit; the shard saves and exits with 75.)
set -euo pipefail
source "${RANKJAX_REPO:-${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}}/launch/common.sh"
cd "$REPO"
: "${WORKDIR:?set WORKDIR to the study's directory on a shared filesystem}"
: "${SHARDS:?set SHARDS to the number of array tasks (shards of the study's grid)}"
study=("$PYTHON" -m rankjax.cli study --config="${CONFIG:-configs/demo.py}" --workdir="$WORKDIR")
case "${RANKJAX_STUDY_PART:-submit}" in
  shard)
    xla_flags="${XLA_FLAGS:-} --xla_gpu_enable_latency_hiding_scheduler=true"
    gpu_env=(env "XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}" "XLA_FLAGS=${xla_flags# }")
    run srun --kill-on-bad-exit=1 "${gpu_env[@]}" "${study[@]}" --shard="${SLURM_ARRAY_TASK_ID:?not an array task}/$SHARDS" "$@"
    ;;
  report)
    run "${study[@]}" --report "$@"
    ;;
  submit)
    script="$REPO/launch/slurm_study_array.sh"
    shards=(sbatch --parsable --array="0-$((SHARDS - 1))" --gpus-per-node="${GPUS_PER_SHARD:-1}"
      --export="ALL,RANKJAX_STUDY_PART=shard,RANKJAX_REPO=$REPO" "$script" "$@")
    if [[ "${DRY_RUN:-0}" == 1 ]]; then
      run "${shards[@]}"
      job='$ARRAY_JOB_ID'  # what sbatch would answer
    else
      job="$("${shards[@]}")"
      job="${job%%;*}"  # --parsable: "<id>[;<cluster>]"
      echo "submitted the shards: array job $job"
    fi
    # afterany: the report also runs when a shard failed, and then names the runs it left.
    run sbatch --dependency="afterany:$job" --time=01:00:00 \
      --export="ALL,RANKJAX_STUDY_PART=report,RANKJAX_REPO=$REPO" "$script" "$@"
    ;;
  *)
    echo "RANKJAX_STUDY_PART=${RANKJAX_STUDY_PART}: submit, shard or report" >&2
    exit 2
    ;;
esac
