#!/usr/bin/env bash
# Distributed training on one or several machines (torchrun):
#
#   bash tools/dist_train.sh CONFIG GPUS [ARGS of tools/train.py]
#
# GPUS is the number of processes on this machine. Several machines: run the
# same command on each with NNODES (machines), NODE_RANK (0..NNODES-1),
# MASTER_ADDR (address of the NODE_RANK=0 machine) and PORT set. On a machine
# without GPUs the processes use gloo on the CPU. PYTHON picks the
# interpreter (default: python). The launch: tools/dist_run.sh.

[ $# -ge 2 ] || { echo "usage: bash tools/dist_train.sh CONFIG GPUS [ARGS of tools/train.py]" >&2; exit 2; }

exec bash "$(dirname "$0")/dist_run.sh" train.py "$2" "$1" \
    --launcher pytorch "${@:3}"
