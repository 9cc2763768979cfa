#!/usr/bin/env bash
# The GPU check on a lent device (docs/benchmarks.md, "The GPU check"), in two steps:
#   bash benchmarks/gpu_device.sh fetch   here: download the wheels the GPU image lacks into .whl/ (2.7 MiB)
#   bash benchmarks/gpu_device.sh run     there: install them under /tmp/site, run benchmarks/gpu.py into $OUT
# The GPU image has torch 2.11, torchaudio 2.11 and numpy but no pydantic, which the model zoo's option
# schemas need (pipeline/models/options.py). Carry .whl with the run (the device tool's `carry: [".whl"]`).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0)
case "${1:-}" in
  fetch)
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl "${WHEELS[@]}"
    du -ch .whl/*.whl | tail -1
    ;;
  run)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
    out="${OUT:-.}"
    if command -v nvidia-smi >/dev/null; then
      nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/nvidia-smi.csv"
    fi
    python3 benchmarks/gpu.py --json "$out/gpu.json" --budget-s "${BUDGET_S:-420}" 2>&1 | tee "$out/gpu.log"
    ;;
  *)
    echo "usage: bash benchmarks/gpu_device.sh fetch|run" >&2
    exit 2
    ;;
esac
