#!/usr/bin/env bash
# The main job: set up the light classification stack (no compiler; a venv
# that has the full stack keeps it) and Fashion-MNIST
# (tools/setup_env.sh --data),
# then train CT and ST++ on Fashion-MNIST and print the main network's test
# accuracy and the loafing table for both (tools/embedded_default.py).
#
#   bash tools/run_default.sh [embedded_default.py options, e.g. --epochs 3]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMST_VENV:-$REPO/.venv}
cd "$REPO"
bash tools/setup_env.sh --data
exec "$VENV/bin/python" tools/embedded_default.py "$@"
