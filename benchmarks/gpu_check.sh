#!/usr/bin/env bash
# The GPU checks of issue 17 in one go (benchmarks/gpu_check.py): CUDA fp32 vs CPU parity on the oracle,
# fp16 and bf16 parity, torch.compile on/off, real-size BS-RoFormer time and peak GPU memory per precision
# (and the reference's on the same GPU when REF_PYTHON names a Python with audio-separator 0.47.1 + CUDA torch).
# Run from anywhere:  bash benchmarks/gpu_check.sh            (results: benchmarks/results/gpu_check.json)
# Budget: 8 minutes on one H100/H200; without CUDA it exits 3 at once with a one-line message.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=${GPU_CHECK_JSON:-benchmarks/results/gpu_check.json}
LIMIT=${GPU_CHECK_LIMIT_S:-470}
args=(--json "$OUT")
if [[ -n "${REF_PYTHON:-}" ]]; then
    args+=(--reference-python "$REF_PYTHON")
fi
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)" || {
    echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False): run it on a machine with an NVIDIA GPU and a CUDA build of torch" >&2
    exit 3
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec timeout "$LIMIT" "$PYTHON" benchmarks/gpu_check.py "${args[@]}" "$@"
