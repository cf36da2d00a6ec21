#!/usr/bin/env bash
# The GPU verification in one run of at most six minutes: a device window is 15
# minutes with the machine's start and must leave room for one rerun. Steps run in
# order of value, each under a time limit, with its exit code and seconds recorded
# in steps.txt; everything goes to one folder.
#
#   1. device: versions, the card, and which test dependencies are there
#   2. bench: bank, streaming and [256, 16000] workloads against torchaudio's CUDA
#      lfilter (bench.txt, bench.json)
#   3. sweep: the Triton launch constants (NUM_WARPS, PARALLEL_CHAINS)
#   4. tests: every CUDA and Triton test, in parallel shards so the kernels compile
#      once across the machine's cores; failures shown in tests.txt
#   5. precision: float32 error of the output and the gradients
#   6. report: triton_report.py (what each kernel compiles to)
#   7. ops: op counts of one forward+backward
#   8. verdict: the last line says which backend "auto" should take here, and why
#
# Usage (from the repository root, on a machine with a CUDA GPU, torch and Triton):
#     bash benchmarks/gpu_check.sh [OUTPUT_FOLDER]      # default: $OUT, else ./gpu-check
set -uo pipefail
out="${1:-${OUT:-gpu-check}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export MULTI_LFILTER_DISABLE_NATIVE=1  # CPU kernels: not what this run is for (and not built here)
export python=${PYTHON:-python3} shards=${SHARDS:-12} out
export selection=${TESTS:-"cuda or triton or autocast"}

step() {  # step NAME LIMIT_SECONDS COMMAND...: run, record, show the tail
    local name=$1 limit=$2 started=$SECONDS
    shift 2
    timeout --kill-after=5 "$limit" "$@" > "$out/$name.txt" 2>&1
    local rc=$?
    printf '%-10s rc=%-3s %4ss (limit %ss)\n' "$name" "$rc" "$((SECONDS - started))" "$limit" | tee -a "$out/steps.txt"
    tail -n 12 "$out/$name.txt"
}

run_tests() {  # the CUDA and Triton tests, split over parallel pytest processes
    "$python" -m pytest --collect-only -q -p no:cacheprovider -o addopts= tests -k "$selection" 2>/dev/null \
        | grep '::' > "$out/test_ids.txt"
    echo "$(wc -l < "$out/test_ids.txt") tests in $shards shards"
    split -n "r/$shards" -d "$out/test_ids.txt" "$out/shard_"
    local pids=()
    for shard in "$out"/shard_*; do
        "$python" -m pytest -q -p no:cacheprovider -o addopts= -rfE $(cat "$shard") > "$shard.log" 2>&1 &
        pids+=($!)
    done
    local failed=0
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    grep -h -E '^(FAILED|ERROR)' "$out"/shard_*.log || true
    grep -h -E '[0-9]+ (passed|failed|error)' "$out"/shard_*.log | tail -n "$shards"
    return $failed
}
export -f run_tests

: > "$out/steps.txt"
step device 30 "$python" -c "
import importlib.util, torch, triton
print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda)
print(torch.cuda.get_device_name(), 'capability', torch.cuda.get_device_capability())
for name in ('torchaudio', 'scipy', 'pytest', 'hypothesis', 'numpy', 'onnx', 'onnxruntime'):
    print(name, 'yes' if importlib.util.find_spec(name) else 'MISSING')
"
step bench 105 "$python" benchmarks/bench_lfilter.py --device cuda --workloads bank streaming large \
    --dtypes float32 --repeats 10 --skip "python loop" "multi_lfilter loop" scripted --json "$out/bench.json"
step sweep 50 "$python" benchmarks/triton_sweep.py --warps 1 2 4 --parallel 65536 262144 --repeats 5
step tests 100 bash -c run_tests
step precision 20 "$python" benchmarks/precision.py --device cuda
step report 30 "$python" benchmarks/triton_report.py --jobs "$(nproc)"
step ops 15 "$python" benchmarks/count_ops.py --device cuda --backends block triton --lengths 16000 128000
step verdict 10 "$python" benchmarks/gpu_verdict.py "$out/bench.json"
