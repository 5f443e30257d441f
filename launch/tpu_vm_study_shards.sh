#!/usr/bin/env bash
# A study fanned out over separate Cloud TPU VMs: one shard of the study's grid of (sweep value,
# variant, seed) runs per VM (`rankjax study --shard=I/N` on worker 0 of VM I, all at once), then
# the report on the first VM once every shard has ended (`rankjax study --report`; it refuses,
# naming them, runs that a failed or preempted shard left unfinished: run this again to resume
# them, finished runs are reused). The repo and its .venv must exist at the same path on every VM,
# and WORKDIR on a filesystem they all share (a mounted bucket or Filestore).
#   TPU_NAMES="vm-0 vm-1 vm-2 vm-3" ZONE=us-west4-a WORKDIR=/mnt/shared/study \
#     launch/tpu_vm_study_shards.sh [--config.key=value ...]
set -euo pipefail
source "$(dirname "$0")/common.sh"
: "${TPU_NAMES:?set TPU_NAMES to the VMs, one shard each}" "${ZONE:?set ZONE}" "${WORKDIR:?set WORKDIR}"
read -r -a names <<<"$TPU_NAMES"
args=""
if (($#)); then args="$(printf ' %q' "$@")"; fi

remote() { # what a VM runs: the study with $1 (--shard=I/N or --report)
  printf 'cd %q && %q -m rankjax.cli study --config=%q --workdir=%q %s%s' "$REPO" "$PYTHON" \
    "${CONFIG:-configs/demo.py}" "$WORKDIR" "$1" "$args"
}

pids=()
for i in "${!names[@]}"; do
  ssh=(gcloud compute tpus tpu-vm ssh "${names[$i]}" --zone="$ZONE" --worker=0
    --command="$(remote "--shard=$i/${#names[@]}")")
  if [[ "${DRY_RUN:-0}" == 1 ]]; then
    run "${ssh[@]}"
  else
    "${ssh[@]}" &
    pids+=("$!")
  fi
done
for pid in "${pids[@]}"; do
  wait "$pid" || echo "a shard ended with status $?; the report names the runs it left" >&2
done
run gcloud compute tpus tpu-vm ssh "${names[0]}" --zone="$ZONE" --worker=0 --command="$(remote --report)"
