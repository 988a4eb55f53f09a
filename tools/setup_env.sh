#!/usr/bin/env bash
# One-command setup of the mmst CPU stack on a fresh machine (x86_64, Python
# 3.11, no GPU). Idempotent: a second run with nothing changed only verifies.
#
#   bash tools/setup_env.sh [--data]      (venv at $MMST_VENV, default .venv)
#
# --data also installs Debian's dataset-fashion-mnist and decompresses it into
# data/fashion_mnist (what the embedded default run and some tests read).
#
# Environment knobs:
#   MMST_VENV        venv folder (default <repo>/.venv, ignored by git)
#   MMST_WHEELHOUSE  cache of the compiled mmcv wheel, outside the repo
#                    (default ~/.cache/mmst-wheelhouse); keyed by the mmcv,
#                    torch and Python versions because pip's own cache key
#                    ignores the torch version the wheel was built against.
#   MAX_JOBS         parallel compile jobs for mmcv (default: number of cores)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMST_VENV:-$REPO/.venv}
WHEELHOUSE=${MMST_WHEELHOUSE:-$HOME/.cache/mmst-wheelhouse}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
MMCV_VERSION=2.1.0
WITH_DATA=0
for arg in "$@"; do
  case "$arg" in
    --data) WITH_DATA=1 ;;
    *) echo "setup_env.sh: unknown argument '$arg' (allowed: --data)" >&2; exit 2 ;;
  esac
done

t0=$(date +%s)
CURRENT_STEP="start"
step() { CURRENT_STEP="$*"; echo "[setup $(( $(date +%s) - t0 ))s] $*"; }
trap 'echo "[setup $(( $(date +%s) - t0 ))s] FAILED at step: $CURRENT_STEP" >&2' ERR

# The stamp records what the venv was built from; when it matches, the
# install steps are skipped (a re-run takes seconds, not minutes).
STAMP_SRC=$(cat "$REPO/requirements/"*.txt "$REPO/tools/setup_env.sh" "$REPO/setup.py" | sha256sum | cut -c1-16)
STAMP="$VENV/.mmst-stamp"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_SRC" ]; then
  step "venv $VENV is up to date (stamp $STAMP_SRC); skipping installs"
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
else
  step "create venv $VENV"
  python3 -m venv "$VENV"
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  rm -f "$STAMP"

  step "torch, torchvision and pinned dependencies"
  pip install --disable-pip-version-check -q \
    -c "$REPO/requirements/constraints.txt" -r "$REPO/requirements/stack.txt"

  TORCH_VER=$(python -c 'import torch; print(torch.__version__)')
  PYTAG=$(python -c 'import sys; print(f"cp{sys.version_info.major}{sys.version_info.minor}")')
  WH="$WHEELHOUSE/mmcv-${MMCV_VERSION}_torch-${TORCH_VER}_${PYTAG}"
  mkdir -p "$WH"
  if ! ls "$WH"/mmcv-${MMCV_VERSION}-*.whl >/dev/null 2>&1; then
    step "compile mmcv==$MMCV_VERSION with CPU ops against torch $TORCH_VER (MAX_JOBS=$MAX_JOBS; ~15-20 min, once)"
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
      pip wheel --disable-pip-version-check --no-cache-dir --no-deps \
        --no-build-isolation "mmcv==$MMCV_VERSION" -w "$BUILD"
    mv "$BUILD"/mmcv-${MMCV_VERSION}-*.whl "$WH"/   # never leave a half wheel in the cache
    rm -rf "$BUILD"
  else
    step "reuse cached $(ls "$WH"/mmcv-${MMCV_VERSION}-*.whl)"
  fi
  pip install --disable-pip-version-check -q --no-deps "$WH"/mmcv-${MMCV_VERSION}-*.whl

  step "OpenMMLab packages (--no-deps: their dependencies are pinned above)"
  pip install --disable-pip-version-check -q --no-deps \
    -c "$REPO/requirements/constraints.txt" -r "$REPO/requirements/openmmlab.txt"

  step "mmst (editable) and the development tools"
  pip install --disable-pip-version-check -q --no-deps -e "$REPO"
  pip install --disable-pip-version-check -q -c "$REPO/requirements/constraints.txt" \
    -r "$REPO/requirements/dev.txt"
  echo "$STAMP_SRC" > "$STAMP"
fi

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
  python -m mmst.datasets.fashion_mnist_files "$SRC" "$REPO/data/fashion_mnist"
fi

step "verify the stack (imports, registries, mmcv.ops on CPU)"
python -W ignore - <<'EOF'
import torch, torchvision, numpy, mmengine, mmcv, mmcv.ops
import mmdet, mmseg, mmpretrain, mmpose, mmst
b = torch.rand(50, 4); b[:, 2:] += b[:, :2]
mmcv.ops.nms(b, torch.rand(50), 0.5)
print('  torch', torch.__version__, '| mmengine', mmengine.__version__,
      '| mmcv', mmcv.__version__, '| mmdet', mmdet.__version__,
      '| mmseg', mmseg.__version__, '| mmpretrain', mmpretrain.__version__,
      '| mmpose', mmpose.__version__, '| mmst', mmst.__version__)
EOF
step "done: activate with '. $VENV/bin/activate'"
