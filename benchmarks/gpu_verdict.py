"""Which backend ``"auto"`` should take for CUDA tensors, from a GPU run of
``bench_lfilter.py --json``: the Triton kernels where they beat the block algorithm
(today's CUDA default) on every workload measured, forward and forward+backward.

Prints one line, ``AUTO cuda: <backend> (<why>)``.

Usage::

    python benchmarks/gpu_verdict.py gpu-check/bench.json
"""
import json
import sys


def main(path):
    with open(path) as file:
        records = json.load(file)
    seconds = {(r["workload"], r["dtype"], r["contender"]): r for r in records}
    reasons, triton_wins = [], True
    for (workload, dtype, contender), record in sorted(seconds.items()):
        if contender != "multi_lfilter triton":
            continue
        block = seconds.get((workload, dtype, "multi_lfilter block"))
        if block is None:
            continue
        for key, label in (("forward_s", "fwd"), ("forward_backward_s", "fwd+bwd")):
            ours, theirs = record[key], block[key]
            if ours is None or theirs is None:
                continue
            triton_wins &= ours < theirs
            reasons.append(f"{workload} {dtype} {label} {theirs / ours:.1f}x")
    if not reasons:
        print("AUTO cuda: block (no Triton and block timings to compare)")
        return
    choice = "triton" if triton_wins else "block"
    print(f"AUTO cuda: {choice} (triton vs block: {', '.join(reasons)})")


if __name__ == "__main__":
    main(sys.argv[1])
