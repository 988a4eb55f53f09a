#!/usr/bin/env bash
# Training on a Slurm cluster (one task per GPU):
#
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [ARGS]
#
# ARGS go to tools/train.py. GPU machines only (on CPU use dist_train.sh).
# The launch: tools/slurm_run.sh.

exec bash "$(dirname "$0")/slurm_run.sh" "$1" "$2" train.py "$3" \
    --work-dir="$4" --launcher="slurm" "${@:5}"
