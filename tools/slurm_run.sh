#!/usr/bin/env bash
# The srun launch behind tools/slurm_train.sh and tools/slurm_test.sh:
#
#   bash tools/slurm_run.sh PARTITION JOB_NAME SCRIPT [ARGS of tools/SCRIPT]
#
# (the callers pass --launcher=slurm among the ARGS)
#
# Environment: GPUS (default 8), GPUS_PER_NODE (8), CPUS_PER_TASK (5),
# SRUN_ARGS (extra srun options), PYTHON (default python).

set -x

PARTITION=$1
JOB_NAME=$2
SCRIPT=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}

# SRUN_ARGS is split into words on purpose (several srun options).
# shellcheck disable=SC2086
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    --gres=gpu:"${GPUS_PER_NODE}" \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    ${PYTHON:-python} -u "$(dirname "$0")/${SCRIPT}" "${@:4}"
