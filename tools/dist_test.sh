#!/usr/bin/env bash
# Distributed testing on one or several machines (torchrun):
#
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [ARGS of tools/test.py]
#
# Same environment variables as tools/dist_train.sh (NNODES, NODE_RANK,
# MASTER_ADDR, PORT, PYTHON). The launch: tools/dist_run.sh.

[ $# -ge 3 ] || { echo "usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [ARGS of tools/test.py]" >&2; exit 2; }

exec bash "$(dirname "$0")/dist_run.sh" test.py "$3" "$1" "$2" \
    --launcher pytorch "${@:4}"
