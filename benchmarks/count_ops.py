"""How many aten ops one forward+backward runs, and whether that grows with ``T``.

On a GPU the pure-tensor path's cost is its kernel launches, so the block algorithm's
op count must not grow with the signal. Counts every ``aten::`` event the profiler
records (nested ones included), the top-level ones (what Python called), and the
events that touch data (all but views, reshapes, allocations and other metadata
ops: on a GPU, the launches), for the bank layout: 2 signals through 16 biquads, gradients for the
coefficients, ``y.backward(g)``.

Usage::

    python benchmarks/count_ops.py                      # block, T = 16000 and 128000
    python benchmarks/count_ops.py --backends block native --lengths 16000
"""
import argparse

import torch
from torch.profiler import profile

import multi_lfilter
from bench_lfilter import bandpass_bank

# aten ops that only make views, allocate, or change metadata: no kernel runs.
METADATA_OPS = {
    "aten::" + name
    for name in (
        "as_strided", "slice", "select", "view", "reshape", "_reshape_alias", "alias", "permute",
        "transpose", "t", "expand", "unsqueeze", "squeeze", "narrow", "unfold", "_unsafe_view",
        "resolve_conj", "resolve_neg", "detach", "lift_fresh", "split", "chunk", "contiguous",
        "empty", "empty_strided", "empty_like", "new_empty", "is_nonzero", "item", "_local_scalar_dense",
        "to", "size", "stride", "view_as", "expand_as", "diagonal", "unbind", "flatten", "unflatten",
    )
}


def count_ops(backend, length, device="cpu"):
    """``(all aten events, top-level aten ops, data ops)`` of one forward+backward."""
    torch.manual_seed(0)
    waveform = torch.randn(2, 1, length, device=device)
    a, b = bandpass_bank(16, torch.float32, device=device)
    a.requires_grad_(True)
    b.requires_grad_(True)
    upstream = torch.randn(2, 16, length, device=device)
    multi_lfilter.lfilter_bank(waveform, a, b, backend=backend).backward(upstream)  # warm-up
    with profile() as profiler:
        multi_lfilter.lfilter_bank(waveform, a, b, backend=backend).backward(upstream)
    events = [event for event in profiler.events() if event.name.startswith("aten::")]
    top_level = [
        event for event in events if event.cpu_parent is None or not event.cpu_parent.name.startswith("aten::")
    ]
    data = [event for event in events if event.name not in METADATA_OPS]
    return len(events), len(top_level), len(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["block"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[16000, 128000])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print("| backend | T | aten ops (all events) | top-level aten ops | data ops |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for backend in args.backends:
        for length in args.lengths:
            every, top, data = count_ops(backend, length, args.device)
            print(f"| {backend} | {length} | {every} | {top} | {data} |", flush=True)


if __name__ == "__main__":
    main()
