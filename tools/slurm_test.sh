#!/usr/bin/env bash
# Testing on a Slurm cluster (one task per GPU):
#
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#   bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [ARGS]
#
# ARGS go to tools/test.py. GPU machines only (on CPU use dist_test.sh).
# The launch: tools/slurm_run.sh.

exec bash "$(dirname "$0")/slurm_run.sh" "$1" "$2" test.py "$3" "$4" \
    --launcher="slurm" "${@:5}"
