#!/usr/bin/env bash
# The project's test command (README, .ci/run):
#   1. set up or verify the full CPU stack and the Fashion-MNIST files
#      (tools/setup_env.sh --full --data: upgrades a light venv made by
#      tools/run_default.sh in place; seconds when the venv is up to date),
#   2. lint and check formatting with ruff (configured in pyproject.toml),
#   3. run the test suite with the venv's pytest in two phases:
#      the single-process tests on $MMST_TEST_WORKERS pytest-xdist workers
#      (default 2, one per core; 0: no workers), then the tests marked
#      `multiprocess` (torchrun jobs of 2 processes) one at a time,
#   4. print the slowest tests and the suite's time against its budget
#      (benchmarks/suite_time.py; JUnit reports in work_dirs/test_reports).
#      With MMST_SUITE_BUDGET=SECONDS, a suite over budget fails.
#
#   bash tools/run_tests.sh [extra pytest arguments, e.g. -k resume]
#
# Exits non-zero when any step fails, including when pytest collects no
# tests in either phase (its exit code 5).
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

REPORTS=$REPO/work_dirs/test_reports
rm -rf "$REPORTS"
mkdir -p "$REPORTS"
WORKERS=${MMST_TEST_WORKERS:-2}
XDIST=()
if [ "$WORKERS" != 0 ]; then
  # one module per worker: a module-scoped fixture (a trained checkpoint,
  # a torchrun job) is built once. (--dist loadgroup with conftest marks
  # did not group anything under pytest 9.2 / pytest-xdist 3.8: every such
  # fixture was built on both workers.)
  XDIST=(-n "$WORKERS" --dist loadfile)
fi
PYTEST=("$VENV/bin/python" -m pytest tests -q -p no:cacheprovider)
rc1=0
rc2=0
log "tests 1/2: ${PYTEST[*]:1} ${XDIST[*]} -m 'not multiprocess' $*"
"${PYTEST[@]}" "${XDIST[@]}" -m 'not multiprocess' \
  --junitxml="$REPORTS/1_single_process.xml" "$@" || rc1=$?
# only the files that have multi-process tests: collecting the others
# would import every test module again
mapfile -t MULTI < <(grep -rl --include='test_*.py' 'mark.multiprocess' tests | sort)
log "tests 2/2: ${PYTEST[*]:1} -m multiprocess (${#MULTI[@]} files) $*"
"${PYTEST[@]:0:3}" "${MULTI[@]}" "${PYTEST[@]:4}" -m multiprocess \
  --junitxml="$REPORTS/2_multiprocess.xml" "$@" || rc2=$?

budget_rc=0
"$VENV/bin/python" "$REPO/benchmarks/suite_time.py" --reports "$REPORTS" \
  ${MMST_SUITE_BUDGET:+--budget "$MMST_SUITE_BUDGET"} || budget_rc=$?

if [ "$rc1" -eq 5 ] && [ "$rc2" -eq 5 ]; then
  log "pytest collected no tests: failing" >&2
  exit 1
fi
for rc in "$rc1" "$rc2"; do
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then
    exit "$rc"
  fi
done
if [ -n "${MMST_SUITE_BUDGET:-}" ] && [ "$budget_rc" -ne 0 ]; then
  log "the suite is over its budget of ${MMST_SUITE_BUDGET} s" >&2
  exit 1
fi
exit 0
