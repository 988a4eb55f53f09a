#!/usr/bin/env bash
# Distributed training on one or several machines (torchrun):
#
#   bash tools/dist_train.sh CONFIG GPUS [ARGS of tools/train.py]
#
# GPUS is the number of processes on this machine. Several machines: run the
# same command on each with NNODES (machines), NODE_RANK (0..NNODES-1),
# MASTER_ADDR (address of the NODE_RANK=0 machine) and PORT set. On a machine
# without GPUs the processes use gloo on the CPU. PYTHON picks the
# interpreter (default: python).

CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
${PYTHON:-python} -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
