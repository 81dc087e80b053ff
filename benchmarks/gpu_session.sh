#!/usr/bin/env bash
# One prepared GPU session: the test suite on cupy, torch-CUDA and JAX on the GPU, then the GPU benchmarks.
#
# Meant for a machine with an NVIDIA GPU and no network (the project's lent device
# machine): it uses the python3 there, which already has torch, cupy, numpy,
# pytest and hypothesis, and installs the two pure-Python wheels it lacks from
# ./.whl (download them beforehand with
#   python3 -m pip download --no-deps -d .whl array-api-compat array-api-strict
# ). Every log goes to $OUT (default ./gpu_out) so a timeout still brings it back.
#
#   OUT=/tmp/gpu bash benchmarks/gpu_session.sh [per-test timeout seconds]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_out}"
mkdir -p "$OUT"
PER_TEST="${1:-120}"

if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi

{
    nvidia-smi -L
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 -c "import sys, numpy, torch, cupy, array_api_compat, array_api_strict; print(sys.version); print('numpy', numpy.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda, 'cupy', cupy.__version__, 'compat', array_api_compat.__version__, 'strict', array_api_strict.__version__)"
    lscpu | grep -E "Model name|^CPU\(s\)"
} 2>&1 | tee "$OUT/env.txt"

timeout_opt=()
python3 -c "import pytest_timeout" 2>/dev/null && timeout_opt=(--timeout "$PER_TEST")
python3 -c "import xdist" 2>/dev/null && timeout_opt+=(-n 8)

export JAX_ENABLE_X64=1  # the suite's float64 checks (the test configuration sets it too)
for b in cupy torch-cuda jax-gpu; do
    echo "== suite on $b =="
    NU_XP_TEST_BACKENDS=$b timeout 170 python3 -m pytest -q -p no:cacheprovider "${timeout_opt[@]}" \
        -o addopts="-ra --strict-markers" --tb=short tests >"$OUT/suite-$b.txt" 2>&1
    tail -n 25 "$OUT/suite-$b.txt"
done

echo "== benchmarks =="
for spec in "cupy|" "torch|--device cuda"; do
    b="${spec%%|*}"
    extra="${spec#*|}"
    # shellcheck disable=SC2086
    timeout 60 python3 benchmarks/run.py --backend "$b" $extra --workloads mlp_mid,mlp_large,mlp_xl --repeats 3 --pause 0.1 \
        --no-sklearn >"$OUT/bench-$b.txt" 2>&1
    tail -n 12 "$OUT/bench-$b.txt"
    # shellcheck disable=SC2086
    timeout 60 python3 benchmarks/conv.py --backend "$b" $extra --repeats 3 --pause 0.1 >"$OUT/conv-$b.txt" 2>&1
    tail -n 8 "$OUT/conv-$b.txt"
done
# the sequence models: nu_xp on torch-CUDA against torch-CUDA
timeout 90 python3 benchmarks/sequence.py --device cuda --repeats 3 --pause 0.1 >"$OUT/sequence-cuda.txt" 2>&1
tail -n 4 "$OUT/sequence-cuda.txt"
# mixed precision: nu_xp's fit(precision=...) against float32 and PyTorch's autocast (mlp_xl)
timeout 120 python3 benchmarks/precision.py --device cuda --steps 8 --rounds 3 >"$OUT/precision-cuda.txt" 2>&1
tail -n 10 "$OUT/precision-cuda.txt"
