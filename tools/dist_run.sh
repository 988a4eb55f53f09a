#!/usr/bin/env bash
# The torchrun launch behind tools/dist_train.sh and tools/dist_test.sh:
#
#   bash tools/dist_run.sh SCRIPT GPUS [ARGS of tools/SCRIPT]
#
# Environment: NNODES (machines, default 1), NODE_RANK (0..NNODES-1),
# MASTER_ADDR (address of the NODE_RANK=0 machine), PORT (default 29500),
# PYTHON (the interpreter, default python).

SCRIPT=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
exec ${PYTHON:-python} -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/$SCRIPT" \
    "${@:3}"
