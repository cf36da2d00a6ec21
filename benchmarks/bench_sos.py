"""Cascades of second-order sections: one pass against the composed calls and scipy.

Workload: ``x`` of ``[16, 1, 32000]`` through 64 Butterworth band-passes of ``S``
sections each (``design.butter_sos(S, edges, "bandpass")``: ``2 S`` poles), loss
``(y * g).sum()`` with gradients for the sections. Contenders, for ``S`` = 1, 4, 8:

- ``sosfilt_bank`` (``backend="auto"``: with the C kernels, every section per sample
  in one pass, and an adjoint that recomputes instead of keeping ``S`` signals);
- the same cascade composed of ``S`` calls of ``lfilter_bank_with_state``, one per
  section (what ``sosfilt_bank`` did before: every section writes an output-sized
  signal, and keeps one for backward);
- ``scipy.signal.sosfilt`` per filter (forward only, float64).

Figures are medians of ``--repeats`` runs; peak memory is the rise of the process's
resident set during one forward+backward (Linux only), as a multiple of the output's
size. The last table is the float32 error of the ``S = 8`` bank against scipy in float64
on the float32-rounded sections, relative to each filter's peak output.

Usage::

    python benchmarks/bench_sos.py                  # a few minutes
    python benchmarks/bench_sos.py --sections 1 8 --repeats 3
    python benchmarks/bench_sos.py --backend block     # the block algorithm (CUDA's default)
"""
import argparse
import functools
import platform

import numpy as np
import scipy.signal
import torch

from multi_lfilter import lfilter_bank_with_state, sosfilt_bank
from multi_lfilter.design import butter_sos, center_frequencies

from bench_lfilter import median_seconds, peak_rise_bytes

BATCH, LENGTH, FILTERS = 16, 32000, 64


def band_edges(n_filters, dtype):
    centre = center_frequencies(n_filters, 100.0, 6000.0, scale="mel", dtype=torch.float64)
    return torch.stack([centre / 1.2, centre * 1.2], -1).to(dtype)


def composed(waveform, sos, backend="auto"):
    y = waveform
    for index in range(sos.shape[-2]):
        y, _ = lfilter_bank_with_state(y, sos[..., index, 3:], sos[..., index, :3], backend=backend)
    return y


def run(sections, repeats, dtype, backend="auto"):
    torch.manual_seed(0)
    waveform = torch.randn(BATCH, 1, LENGTH, dtype=dtype)
    sos = butter_sos(sections, band_edges(FILTERS, torch.float64), "bandpass", sample_rate=16000).to(dtype)
    upstream = torch.randn(BATCH, FILTERS, LENGTH, dtype=dtype)
    output_bytes = upstream.numel() * upstream.element_size()
    rows = []
    one_pass = functools.partial(sosfilt_bank, backend=backend)
    for name, function in (("sosfilt_bank (one pass)", one_pass), ("composed calls", functools.partial(composed, backend=backend))):
        def forward():
            with torch.no_grad():
                function(waveform, sos)

        def forward_backward():
            leaf = sos.clone().requires_grad_(True)
            (function(waveform, leaf) * upstream).sum().backward()

        fwd = median_seconds(forward, repeats, warmups=2)
        fwd_bwd = median_seconds(forward_backward, repeats, warmups=2)
        peak = peak_rise_bytes(forward_backward)
        rows.append((name, fwd, fwd_bwd, peak / output_bytes if peak is not None else None))
    x, s = waveform[:, 0].double().numpy(), sos.double().numpy()
    scipy_time = median_seconds(lambda: [scipy.signal.sosfilt(s[c], x) for c in range(FILTERS)], max(1, repeats // 2), warmups=2)
    rows.append(("scipy.signal.sosfilt per filter (float64)", scipy_time, None, None))
    return rows


def float32_error(sections=8):
    sos32 = butter_sos(sections, band_edges(FILTERS, torch.float64), "bandpass", sample_rate=16000).float()
    waveform = torch.randn(2, 1, 16000)
    y = sosfilt_bank(waveform, sos32).double().numpy()
    worst = 0.0
    for c in range(FILTERS):
        reference = scipy.signal.sosfilt(sos32[c].double().numpy(), waveform[:, 0].double().numpy())
        worst = max(worst, float(np.abs(y[:, c] - reference).max() / np.abs(reference).max()))
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--backend", default="auto", help="for both multi_lfilter contenders (e.g. block, the CUDA default)")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"[{BATCH}, 1, {LENGTH}] {args.dtype} through {FILTERS} Butterworth band-passes, backend {args.backend!r}; "
          f"medians of {args.repeats}")
    # The first large allocations of a process pay page faults that later ones do not
    # (glibc then keeps freed memory): warm the allocator up before any figure.
    run(1, 1, dtype, args.backend)
    results = {sections: run(sections, args.repeats, dtype, args.backend) for sections in args.sections}
    # At S = 1 both contenders run the same single filter call: the faster of the two
    # figures is the baseline (the machine's page faults make the other one noisy).
    first = results[min(results)]
    baseline = min(fwd_bwd for _, _, fwd_bwd, _ in first if fwd_bwd is not None)
    print(f"\n| S | contender | forward | fwd+bwd | fwd+bwd / S={min(results)} | peak / output |")
    print("|---|---|---:|---:|---:|---:|")
    for sections, rows in results.items():
        for name, fwd, fwd_bwd, peak in rows:
            ratio = f"{fwd_bwd / baseline:.2f}x" if fwd_bwd is not None else ""
            bwd = f"{fwd_bwd * 1e3:.0f} ms" if fwd_bwd is not None else ""
            shown_peak = f"{peak:.2f}" if peak is not None else ""
            print(f"| {sections} | {name} | {fwd * 1e3:.0f} ms | {bwd} | {ratio} | {shown_peak} |")
    print(f"\nfloat32 error, 8-section band-pass bank vs scipy float64 on the float32 sections: {float32_error():.1e} of the peak")


if __name__ == "__main__":
    main()
