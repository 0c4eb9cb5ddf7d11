#!/usr/bin/env bash
# The GPU checks of the fused Triton LTC kernel, as one short run.
#
#   scripts/gpu_check.sh wheels       # on a machine with network: the wheels a CUDA image with
#                                     # torch and triton lacks, into .whl/ (about 1.3 MB)
#   scripts/gpu_check.sh [OUTDIR]     # on the CUDA machine (no network): install those wheels,
#                                     # run the CUDA tests, then the benchmarks; logs and JSON in
#                                     # OUTDIR (default gpu_results/)
#
# The second form takes about 5 minutes on an H200: the Triton and CUDA tests, the cell table
# at the issue's size (batch 1024, 64 steps, 64 units) with the triton and eager LTC kernels,
# and RecurrentSAC updates per second on the GPU. Record the tables in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=(gymnasium==1.4.0 farama-notifications==0.0.6 stable-baselines3==2.9.2 sb3-contrib==2.9.2
        ncps==1.0.1 future==1.0.0)

if [[ "${1:-}" == "wheels" ]]; then
    "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any \
        -d .whl "${WHEELS[@]}"
    exit 0
fi

OUTDIR=${1:-gpu_results}
mkdir -p "$OUTDIR"
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
unset TRITON_INTERPRET
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUTDIR/machine.txt"
"$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUTDIR/machine.txt"

status=0
"$PY" -m pytest -q -p no:cacheprovider tests/test_triton_cuda.py tests/test_triton_ltc.py tests/test_triton_cfc.py tests/test_cuda.py \
    tests/test_sequence.py -k "cuda or triton or synchron" 2>&1 | tee "$OUTDIR/tests.log" || status=1

"$PY" scripts/bench_cells.py --device cuda --batch 1024 --units 64 --kernel triton eager --min-time 1 \
    --skip-unflushed --json "$OUTDIR/bench_cells_cuda_triton.json" 2>&1 | tee "$OUTDIR/bench_cells.log" || status=1
"$PY" scripts/bench_cells.py --device cuda --batch 1 --steps 1 --units 64 --kernel triton eager --min-time 1 \
    --skip-unflushed --json "$OUTDIR/bench_cells_cuda_b1.json" 2>&1 | tee "$OUTDIR/bench_cells_b1.log" || status=1

"$PY" scripts/bench_recurrent_sac_speed.py --device cuda --updates 100 \
    --speed-configs rsac-cfc64-L32-B32 rsac-ltc32-L32-B32 rsac-lstm64-L32-B32 \
    --speed-results "$OUTDIR/recurrent_sac_speed_cuda.jsonl" 2>&1 | tee "$OUTDIR/recurrent_sac.log" || status=1
exit $status
