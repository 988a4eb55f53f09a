#!/usr/bin/env bash
# The project's test command (README, .ci/run):
#   1. set up or verify the full CPU stack and the Fashion-MNIST files
#      (tools/setup_env.sh --full --data: upgrades a light venv made by
#      tools/run_default.sh in place; seconds when the venv is up to date),
#   2. lint and check formatting with ruff (configured in pyproject.toml),
#   3. run the whole test suite with the venv's pytest.
#
#   bash tools/run_tests.sh [extra pytest arguments, e.g. -k resume]
#
# Exits non-zero when any step fails, including when pytest collects no
# tests (its exit code 5).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMST_VENV:-$REPO/.venv}
cd "$REPO"

t0=$(date +%s)
log() { echo "[run_tests $(( $(date +%s) - t0 ))s] $*"; }
trap 'rc=$?; log "finished with exit code $rc"' EXIT

log "setup: bash tools/setup_env.sh --full --data"
bash tools/setup_env.sh --full --data

log "lint: ruff check . && ruff format --check ."
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .

log "tests: python -m pytest tests -q --durations=25 $*"
rc=0
"$VENV/bin/python" -m pytest tests -q --durations=25 "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
  log "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
