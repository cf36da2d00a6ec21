"""A small sweep of the Triton backend's launch constants, on a GPU.

Times the bank workload (``[32, 16000]`` float32 through 128 band-pass biquads) and
the streaming one (``[1, 512]``), forward and forward+backward, for each setting of
``NUM_WARPS`` (chains per program: 32 per warp) and ``PARALLEL_CHAINS`` (how many
(chain, chunk) pairs the time chunks aim for), in one process, medians of
``--repeats`` runs after a warm-up (which includes compiling the kernels). Prints one
markdown table, fastest first, and the current defaults' row marked.

Usage (on a CUDA machine)::

    python benchmarks/triton_sweep.py
    python benchmarks/triton_sweep.py --warps 1 2 4 --parallel 32768 65536 262144
"""
import argparse
import itertools

import torch

import multi_lfilter
from bench_lfilter import WORKLOADS, bandpass_bank, median_seconds
from multi_lfilter.backends import triton as triton_backend


def timings(workload, repeats):
    batch, length, n_filters = WORKLOADS[workload]
    torch.manual_seed(0)
    waveform = torch.randn(batch, 1, length, device="cuda")
    a, b = bandpass_bank(n_filters, torch.float32, device="cuda")
    upstream = torch.randn(batch, n_filters, length, device="cuda")
    a_leaf = a.clone().requires_grad_(True)

    def forward():
        with torch.no_grad():
            multi_lfilter.lfilter_bank(waveform, a, b, backend="triton")

    def forward_backward():
        a_leaf.grad = None
        (multi_lfilter.lfilter_bank(waveform, a_leaf, b, backend="triton") * upstream).sum().backward()

    return (median_seconds(forward, repeats, "cuda", warmups=2),
            median_seconds(forward_backward, repeats, "cuda", warmups=2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warps", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--parallel", nargs="+", type=int, default=[1 << 15, 1 << 16, 1 << 18])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    defaults = (triton_backend.NUM_WARPS, triton_backend.PARALLEL_CHAINS)
    rows = []
    for warps, parallel in itertools.product(args.warps, args.parallel):
        triton_backend.NUM_WARPS, triton_backend.BLOCK = warps, 32 * warps
        triton_backend.PARALLEL_CHAINS = parallel
        bank = timings("bank", args.repeats)
        streaming = timings("streaming", args.repeats)
        rows.append(((warps, parallel), bank, streaming))
        print(f"warps={warps} parallel={parallel} bank={bank} streaming={streaming}", flush=True)
    print(f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}\n")
    print("| NUM_WARPS | PARALLEL_CHAINS | bank forward | bank fwd+bwd | streaming forward | streaming fwd+bwd |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for setting, bank, streaming in sorted(rows, key=lambda row: row[1][1]):
        mark = " (default)" if setting == defaults else ""
        cells = [f"{seconds * 1e3:.3f} ms" for seconds in bank + streaming]
        print(f"| {setting[0]}{mark} | {setting[1]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
