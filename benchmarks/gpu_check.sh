#!/usr/bin/env bash
# The GPU verification in one run: the test suite's CUDA cases (every backend on the
# device axis, the Triton kernels compiled), then the GPU benchmark (bank, streaming
# and [256, 16000] workloads against torchaudio's CUDA lfilter), the float32
# precision table and the op counts. Everything goes to one folder.
#
# Usage (from the repository root, on a machine with a CUDA GPU, torch, Triton,
# torchaudio, scipy, pytest and hypothesis):
#     bash benchmarks/gpu_check.sh [OUTPUT_FOLDER]      # default: $OUT, else ./gpu-check
set -uo pipefail
out="${1:-${OUT:-gpu-check}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())" \
    2>&1 | tee "$out/device.txt"
# The C kernels are CPU-only; built in place so the CPU cases beside the CUDA ones run too.
python3 setup.py build_ext --inplace > "$out/build.log" 2>&1 || echo "C kernels not built (CPU only)"

timeout 300 python3 -m pytest -q -p no:cacheprovider tests -k "cuda or triton or autocast" 2>&1 | tee "$out/tests.txt" | tail -n 15
python3 benchmarks/bench_lfilter.py --device cuda --workloads bank streaming large --dtypes float32 \
    --repeats 10 --skip "python loop" "multi_lfilter loop" 2>&1 | tee "$out/bench.txt"
python3 benchmarks/precision.py --device cuda 2>&1 | tee "$out/precision.txt"
python3 benchmarks/count_ops.py --device cuda --backends block triton --lengths 16000 128000 2>&1 | tee "$out/ops.txt"
