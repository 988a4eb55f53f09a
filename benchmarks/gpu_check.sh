#!/usr/bin/env bash
# GPU checks, run on a lent device machine (never in CI): the ST++ step under
# MMEngine's AmpOptimWrapper (tests/test_core/test_st_step_cuda.py) and the
# CT vs ST++ step cost on ResNet-50 at 224 px, fp32 and AMP. Needs .whl/ from
# benchmarks/gpu_wheels.sh, carried with the working tree. Logs go to $OUT
# (the device tool's output folder) or ./work_dirs/gpu_check. Every step runs;
# the exit status is non-zero if any failed.
set -uo pipefail
rc=0
out=${OUT:-work_dirs/gpu_check}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi -L | tee "$out/device.log"
python3 -c 'import torch, numpy; print("torch", torch.__version__, "numpy", numpy.__version__)' |
    tee -a "$out/device.log"
python3 -m pytest -q -p no:cacheprovider tests/test_core/test_st_step_cuda.py \
    tests/test_core/test_st_step.py 2>&1 | tee "$out/pytest.log" || rc=1
for amp in "" "--amp"; do
    python3 benchmarks/step_cost.py --device cuda $amp --steps 10 --batch 64 \
        2>&1 | grep -v Warning | tee "$out/step_cost_cuda${amp/--/_}.log" ||
        rc=1
done
exit $rc
