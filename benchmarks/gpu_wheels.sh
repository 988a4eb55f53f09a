#!/usr/bin/env bash
# Download the pure-Python wheels that the GPU check (benchmarks/gpu_check.sh)
# needs into .whl/ (git-ignored). The device machine has Python 3.12, torch
# and numpy but no OpenMMLab packages and no network; mmcv-lite stands in for
# mmcv there (the classification path uses no compiled mmcv ops).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
for pkg in mmcv-lite==2.1.0 mmengine==0.10.7 mmpretrain==1.2.0 addict yapf \
    termcolor mat4py modelindex ordered-set platformdirs; do
    python3 -m pip download -q --no-deps --only-binary=:all: \
        --python-version 3.12 --implementation cp \
        --platform manylinux2014_x86_64 --platform any -d .whl "$pkg"
done
du -sh .whl
