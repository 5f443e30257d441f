#!/usr/bin/env bash
# A Cloud TPU VM slice: the same command on every worker; JAX finds the slice's hosts from the TPU
# metadata (RANKJAX_DISTRIBUTED=1 makes rankjax call jax.distributed.initialize()). The repo and
# its .venv must exist at the same path on every worker; WORKDIR must be on a filesystem every
# worker shares (e.g. a mounted bucket or Filestore).
#   TPU_NAME=my-v5e-32 ZONE=us-west4-a WORKDIR=/mnt/shared/run launch/tpu_vm_slice.sh [...]
set -euo pipefail
source "$(dirname "$0")/common.sh"
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}" "${WORKDIR:?set WORKDIR}"
args=""
if (($#)); then args="$(printf ' %q' "$@")"; fi
remote="cd $(printf '%q' "$REPO") && RANKJAX_DISTRIBUTED=1"
remote+=" $(printf '%q' "$PYTHON") -m rankjax.cli train"
remote+=" --config=$(printf '%q' "${CONFIG:-configs/mslr_mlp.py}") --workdir=$(printf '%q' "$WORKDIR")$args"
run gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="$remote"
