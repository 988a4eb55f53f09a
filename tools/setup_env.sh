#!/usr/bin/env bash
# One-command setup of the mmst CPU stack on a fresh machine (x86_64, Python
# 3.11, no GPU). Idempotent: a second run with nothing changed only verifies.
#
#   bash tools/setup_env.sh [--full] [--data]     (venv at $MMST_VENV, default .venv)
#
# Without --full: the light stack, what classification needs
# (requirements/cls.txt): torch, mmengine, mmcv-lite (mmcv's pure-Python
# part, no compiler), mmpretrain, numpy 2. tools/run_default.sh uses it.
# A venv that already has the full stack keeps it (the full stack is a
# superset): its files are brought up to date instead.
# --full: the full stack (requirements/stack.txt, openmmlab.txt, dev.txt):
# mmcv 2.1.0 compiled with its C++ ops (once, cached), mmdet, mmseg, mmpose,
# numpy 1, the test tools. tools/run_tests.sh uses it. Replaces mmcv-lite.
# --data also installs Debian's dataset-fashion-mnist and decompresses it into
# data/fashion_mnist (what the embedded default run and some tests read).
#
# An interrupted run leaves no stamp, so the next run (either mode) installs
# again and leaves a consistent venv: mmcv and mmcv-lite share the `mmcv`
# folder, so each mode removes the other one before installing its own.
#
# Installs go through uv (from PyPI, into the venv), with the package sources
# that pip is configured with (pip config list: index-url, extra-index-url,
# find-links): several times faster than pip for torch's large wheels.
#
# Environment knobs:
#   MMST_VENV        venv folder (default <repo>/.venv, ignored by git)
#   MMST_WHEELHOUSE  cache of the compiled mmcv wheel, outside the repo
#                    (default ~/.cache/mmst-wheelhouse); keyed by the mmcv,
#                    torch and Python versions because pip's own cache key
#                    ignores the torch version the wheel was built against.
#   MAX_JOBS         parallel compile jobs for mmcv (default: number of cores)
#   FORCE_CUDA=1     compile mmcv's CUDA ops too (automatic when torch sees a
#                    GPU; needs nvcc for torch's CUDA version; untested here)
#   UV_CACHE_DIR     uv's download cache (default ~/.cache/uv)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMST_VENV:-$REPO/.venv}
WHEELHOUSE=${MMST_WHEELHOUSE:-$HOME/.cache/mmst-wheelhouse}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
MMCV_VERSION=2.1.0
UV_VERSION=0.13.9
REQ=$REPO/requirements
WITH_DATA=0
MODE=light
for arg in "$@"; do
  case "$arg" in
    --data) WITH_DATA=1 ;;
    --full) MODE=full ;;
    *) echo "setup_env.sh: unknown argument '$arg' (allowed: --full, --data)" >&2; exit 2 ;;
  esac
done

t0=$(date +%s)
CURRENT_STEP="start"
step() { CURRENT_STEP="$*"; echo "[setup $(( $(date +%s) - t0 ))s] $*"; }
trap 'echo "[setup $(( $(date +%s) - t0 ))s] FAILED at step: $CURRENT_STEP (re-run the same command to repair)" >&2' ERR

# The stamp ("MODE HASH") records what the venv was built from; when it
# matches, the install steps are skipped (a re-run takes seconds).
stamp_of() {  # stamp_of MODE
  if [ "$1" = full ]; then
    cat "$REQ/constraints.txt" "$REQ/stack.txt" "$REQ/openmmlab.txt" "$REQ/dev.txt"
  else
    cat "$REQ/constraints.txt" "$REQ/cls.txt"
  fi | cat - "$REPO/tools/setup_env.sh" "$REPO/setup.py" | sha256sum | cut -c1-16
}
STAMP="$VENV/.mmst-stamp"
OLD_STAMP=$(cat "$STAMP" 2>/dev/null || true)
case "$OLD_STAMP" in
  "" | *" "*) ;;
  *) OLD_STAMP="full $OLD_STAMP" ;;  # a stamp without mode: an older full venv
esac
ASKED=$MODE
if [ "$MODE" = light ] && [ "${OLD_STAMP%% *}" = full ]; then
  MODE=full  # keep the superset; never downgrade a full venv
  step "venv $VENV has the full stack: keeping it (light mode needs a subset)"
fi
WANT="$MODE $(stamp_of "$MODE")"

if [ "$OLD_STAMP" = "$WANT" ] && [ -x "$VENV/bin/python" ]; then
  step "venv $VENV is up to date ($WANT); skipping installs"
else
  step "create venv $VENV ($MODE stack)"
  python3 -m venv "$VENV"
  rm -f "$STAMP"
  PY="$VENV/bin/python"

  step "uv==$UV_VERSION (the installer) into the venv"
  "$PY" -m pip install --disable-pip-version-check -q "uv==$UV_VERSION"
  UV="$VENV/bin/uv"
  # pip's configured sources, in pip's terms, for uv
  SOURCES=()
  while IFS='=' read -r key value; do
    value=${value#\'}; value=${value%\'}
    case "$key" in
      *.index-url) for v in $value; do SOURCES+=(--index-url "$v"); done ;;
      *.extra-index-url) for v in $value; do SOURCES+=(--extra-index-url "$v"); done ;;
      *.find-links) for v in $value; do SOURCES+=(--find-links "$v"); done ;;
    esac
  done < <("$PY" -m pip config list 2>/dev/null || true)
  # pip's rule when several sources have a package: the best version anywhere
  uvi() { "$UV" pip install --python "$PY" -q --index-strategy unsafe-best-match "${SOURCES[@]}" "$@"; }
  has() { "$UV" pip show --python "$PY" -q "$1" >/dev/null 2>&1; }

  if [ "$MODE" = light ]; then
    # pieces of a full stack left by an interrupted run: they need numpy 1
    # and the compiled mmcv, which the light stack replaces
    FULL_ONLY=()
    for p in mmcv mmdet mmsegmentation mmpose xtcocotools; do
      if has "$p"; then FULL_ONLY+=("$p"); fi
    done
    if [ ${#FULL_ONLY[@]} -gt 0 ]; then
      step "remove ${FULL_ONLY[*]} (full-stack pieces; the light stack replaces them)"
      "$UV" pip uninstall --python "$PY" -q "${FULL_ONLY[@]}"
    fi
    step "light stack: requirements/cls.txt (torch, mmengine, mmcv-lite, mmpretrain)"
    uvi --reinstall-package mmcv-lite -c "$REQ/constraints.txt" -r "$REQ/cls.txt"
    step "mmst (editable, --no-deps)"
    # pip, not uv, for mmst itself: setuptools then writes mmst.egg-info into
    # the checkout, with which MMEngine resolves mmst:: configs from here.
    "$PY" -m pip install --disable-pip-version-check -q --no-deps -e "$REPO"
  else
    if has mmcv-lite; then
      step "remove mmcv-lite (the compiled mmcv replaces it)"
      "$UV" pip uninstall --python "$PY" -q mmcv-lite
    fi
    step "torch, torchvision and pinned dependencies (requirements/stack.txt)"
    uvi -c "$REQ/constraints.txt" -r "$REQ/stack.txt"

    TORCH_VER=$("$PY" -c 'import torch; print(torch.__version__)')
    PYTAG=$("$PY" -c 'import sys; print(f"cp{sys.version_info.major}{sys.version_info.minor}")')
    WH="$WHEELHOUSE/mmcv-${MMCV_VERSION}_torch-${TORCH_VER}_${PYTAG}"
    # mmcv's setup.py adds CUDA ops when torch sees a GPU or FORCE_CUDA=1
    # (needs nvcc of torch's CUDA version): such a wheel is cached apart
    if [ "${FORCE_CUDA:-0}" = 1 ] || "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
      WH="${WH}_cuda"
    fi
    mkdir -p "$WH"
    if ! ls "$WH"/mmcv-${MMCV_VERSION}-*.whl >/dev/null 2>&1; then
      step "compile mmcv==$MMCV_VERSION with its ops ($WH) against torch $TORCH_VER (MAX_JOBS=$MAX_JOBS; ~10-20 min on 2 cores, once)"
      # torch>=2.14 headers need C++20 but mmcv's setup.py appends -std=c++17
      # to every compile line; gcc obeys the last -std, so compile through a
      # shim that appends -std=c++20.
      SHIM="$VENV/bin/g++-std20"
      printf '#!/bin/sh\nexec g++ "$@" -std=c++20\n' > "$SHIM"
      chmod +x "$SHIM"
      # No debug info: about 2x faster to compile and a 1 MB wheel, not 32 MB.
      # --no-build-isolation: an isolated build gets setuptools>=81 without
      # pkg_resources, which mmcv's setup.py imports.
      BUILD=$(mktemp -d)
      CXX="$SHIM" CFLAGS="-O2 -g0 -DNDEBUG" MMCV_WITH_OPS=1 \
        "$PY" -m pip wheel --disable-pip-version-check --no-cache-dir --no-deps \
          --no-build-isolation "mmcv==$MMCV_VERSION" -w "$BUILD"
      mv "$BUILD"/mmcv-${MMCV_VERSION}-*.whl "$WH"/   # never leave a half wheel in the cache
      rm -rf "$BUILD"
    else
      step "reuse cached $(ls "$WH"/mmcv-${MMCV_VERSION}-*.whl)"
    fi
    # reinstalled every time: removing mmcv-lite may have removed its files
    uvi --no-deps --reinstall-package mmcv "$WH"/mmcv-${MMCV_VERSION}-*.whl

    step "OpenMMLab packages (--no-deps: their dependencies are pinned above)"
    uvi --no-deps -c "$REQ/constraints.txt" -r "$REQ/openmmlab.txt"

    step "mmst (editable) and the development tools (requirements/dev.txt)"
    # pip, not uv, for mmst itself: setuptools then writes mmst.egg-info into
    # the checkout, with which MMEngine resolves mmst:: configs from here.
    "$PY" -m pip install --disable-pip-version-check -q --no-deps -e "$REPO"
    uvi -c "$REQ/constraints.txt" -r "$REQ/dev.txt"
  fi
  echo "$WANT" > "$STAMP"
fi

PY="$VENV/bin/python"
if [ "$WITH_DATA" = 1 ]; then
  step "Fashion-MNIST from Debian's dataset-fashion-mnist"
  SRC=/usr/share/datasets/fashion-mnist
  if [ ! -f "$SRC/train-images-idx3-ubyte.gz" ]; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist
    else
      sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist
    fi
  fi
  # run as a file: it needs only mmst.fileio (standard library), and
  # `-m mmst.datasets...` would first import mmst.datasets' transforms
  "$PY" "$REPO/mmst/datasets/fashion_mnist_files.py" "$SRC" "$REPO/data/fashion_mnist"
fi

if [ "$ASKED" = full ]; then
  step "verify the full stack (versions, mmcv.ops on CPU): python -m mmst.stack all"
  "$PY" -W ignore -m mmst.stack all --run-ops
else
  step "verify the classification stack: python -m mmst.stack cls"
  "$PY" -W ignore -m mmst.stack cls
fi
step "done ($MODE stack): activate with '. $VENV/bin/activate'"
