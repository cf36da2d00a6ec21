"""Side-by-side timings of multi_lfilter's backends and the alternatives, in one process.

Contenders: each multi_lfilter backend, the TorchScript-scripted ``lfilter_bank``,
``torchaudio.functional.lfilter`` (with ``batching=True`` on the expanded input, its
fastest bank layout), a Python loop over time (direct form I, autograd through every
step) and ``scipy.signal.lfilter`` (forward only, one call per filter). Workloads:

- ``bank``: ``[32, 16000]`` through 128 band-pass biquads -> ``[32, 128, 16000]``;
- ``streaming``: ``[1, 512]`` through the same 128 biquads;
- ``wide``: ``[8, 16000]`` through 1024 biquads;
- ``large``: ``[256, 16000]`` through 128 biquads (for GPUs: 2 GB of float32 output).

Passes: forward, and forward+backward of ``loss = (y * g).sum()`` with gradients for
``a`` and ``b``. Every figure is the median of ``--repeats`` runs; the *floor* is a
fresh allocation plus fill of an output-sized tensor, the least a forward pass must
do, and for forward+backward the loss alone on a ready output (its product and that
product's gradient allocate two output-sized tensors, which every contender pays).
Peak memory is the rise of the process's resident set during one extra run (Linux
only), or with ``--device cuda`` the rise of ``torch.cuda.max_memory_allocated``
(times then come from CUDA events around synchronised runs). Prints one markdown
table per workload, with ratios.

Usage::

    python benchmarks/bench_lfilter.py                   # everything (several minutes)
    python benchmarks/bench_lfilter.py --workloads bank --dtypes float32
    THP_MEM_ALLOC_ENABLE=1 python benchmarks/bench_lfilter.py   # huge pages for torch
    python benchmarks/bench_lfilter.py --device cuda --skip "python loop" scipy
    python benchmarks/bench_lfilter.py --json results.json   # the rows, for scripts
"""
import argparse
import json
import math
import platform
import statistics
import time
import warnings

import numpy as np
import torch

import multi_lfilter
from multi_lfilter.backends.dispatch import resolve_backend

try:
    import torchaudio.functional as torchaudio_functional
except Exception:  # torchaudio missing, or built for another torch
    torchaudio_functional = None
try:
    import scipy.signal as scipy_signal
except ImportError:
    scipy_signal = None

# Below this output size the resident set's noise swamps the peak: it is not shown.
PEAK_MIN_BYTES = 16 << 20
WORKLOADS = {
    "bank": (32, 16000, 128),
    "streaming": (1, 512, 128),
    "wide": (8, 16000, 1024),
    "large": (256, 16000, 128),
}
DEFAULT_WORKLOADS = ["bank", "streaming", "wide"]


def bandpass_bank(n_filters, dtype, sample_rate=16000.0, device="cpu"):
    """``(a, b)`` ``(n_filters, 3)``: constant-peak band-pass biquads, log-spaced 50 Hz - 7 kHz."""
    center = torch.logspace(math.log10(50.0), math.log10(7000.0), n_filters, dtype=torch.float64)
    omega = 2 * math.pi * center / sample_rate
    alpha = torch.sin(omega) / (2 * 4.0)
    a = torch.stack([1 + alpha, -2 * torch.cos(omega), 1 - alpha], -1)
    b = torch.stack([alpha, torch.zeros_like(alpha), -alpha], -1)
    return a.to(device, dtype), b.to(device, dtype)


def python_loop_over_time(waveform, a, b):
    """Direct form I, one Python iteration per sample: ``(B, T)`` x ``(C, K)`` -> ``(B, C, T)``."""
    a0 = a[:, :1]
    a, b = a / a0, b / a0
    order = a.shape[-1] - 1
    past_x = [waveform.new_zeros(waveform.shape[0], 1)] * order
    past_y = [waveform.new_zeros(waveform.shape[0], a.shape[0])] * order
    outputs = []
    for n in range(waveform.shape[-1]):
        sample = waveform[:, n : n + 1]
        y = b[:, 0] * sample
        for k in range(order):
            y = y + b[:, k + 1] * past_x[k] - a[:, k + 1] * past_y[k]
        past_x = [sample] + past_x[:-1]
        past_y = [y] + past_y[:-1]
        outputs.append(y)
    return torch.stack(outputs, -1)


def scipy_bank(waveform, a, b):
    x = waveform.numpy()
    return [scipy_signal.lfilter(b[c].numpy(), a[c].numpy(), x, axis=-1) for c in range(a.shape[0])]


def backend_runs(backend, waveform):
    """Whether a backend takes this device's tensors (the Triton interpreter on CPU is
    a test tool, not a contender; the export backend, what exported graphs compute,
    has its own benchmark, bench_export.py)."""
    if backend == "export" or (backend == "triton" and waveform.device.type != "cuda"):
        return False
    try:
        resolve_backend(backend, waveform, order=2, batch_ndim=2)
    except ValueError:
        return False
    return True


def contenders(waveform, a, b):
    """name -> (forward function, supports backward)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(multi_lfilter.lfilter_bank)
    found = {}
    for backend in multi_lfilter.available_backends():
        if not backend_runs(backend, waveform):
            continue
        found[f"multi_lfilter {backend}"] = (
            lambda a, b, backend=backend: multi_lfilter.lfilter_bank(waveform.unsqueeze(-2), a, b, backend=backend),
            True,
        )
    found["multi_lfilter scripted"] = (lambda a, b: scripted(waveform.unsqueeze(-2), a, b), True)
    if torchaudio_functional is not None:
        batch, length = waveform.shape
        found["torchaudio lfilter"] = (
            lambda a, b: torchaudio_functional.lfilter(
                waveform.unsqueeze(-2).expand(batch, a.shape[0], length), a, b, clamp=False, batching=True
            ),
            True,
        )
    found["python loop"] = (lambda a, b: python_loop_over_time(waveform, a, b), True)
    if scipy_signal is not None and waveform.device.type == "cpu":
        found["scipy"] = (lambda a, b: scipy_bank(waveform, a, b), False)
    return found


def median_seconds(function, repeats, device="cpu", warmups=0):
    """Median wall time of ``function()`` (after ``warmups`` untimed runs); on CUDA
    measured with events around a synchronised run (the work queued, not just the
    launches)."""
    for _ in range(warmups):
        function()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            function()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise KeyError(field)


def peak_rise_bytes(function, device="cpu"):
    """Rise of the memory high-water mark during one call: the resident set's (None
    off Linux), or on CUDA the caching allocator's ``max_memory_allocated``."""
    if device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        function()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # resets VmHWM to the current resident set
        before = _status_kib("VmRSS:")
        function()
        return (_status_kib("VmHWM:") - before) * 1024
    except OSError:
        return None


def run_workload(name, dtype, repeats, skip, device="cpu"):
    batch, length, n_filters = WORKLOADS[name]
    torch.manual_seed(0)
    waveform = torch.randn(batch, length, dtype=dtype, device=device)
    a, b = bandpass_bank(n_filters, dtype, device=device)
    output_shape = (batch, n_filters, length)
    output_bytes = batch * n_filters * length * waveform.element_size()
    upstream = torch.randn(output_shape, dtype=dtype, device=device)
    # Slow contenders get fewer runs on big workloads (they still get at least 3).
    slow_repeats = max(3, repeats // 2) if batch * n_filters * length > 1e7 else repeats

    floor = median_seconds(lambda: torch.empty(output_shape, dtype=dtype, device=device).fill_(1.0), repeats, device)
    # The loss alone, on a ready output: what every contender's fwd+bwd pays on top of
    # its filtering (the product y * g forward, and its gradient g * 1 backward).
    ready_output = torch.randn(output_shape, dtype=dtype, device=device).requires_grad_(True)

    def loss_alone():
        ready_output.grad = None
        (ready_output * upstream).sum().backward()

    loss_floor = median_seconds(loss_alone, repeats, device)
    del ready_output
    rows = [("floor (forward: allocate + fill output; fwd+bwd: the loss alone)", floor, loss_floor, None)]
    for contender, (forward, differentiable) in contenders(waveform, a, b).items():
        if any(word in contender for word in skip):
            continue
        count = slow_repeats if contender in ("python loop", "multi_lfilter loop", "scipy") else repeats

        def forward_only():
            with torch.no_grad():
                forward(a, b)

        def forward_backward():
            a_leaf, b_leaf = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
            (forward(a_leaf, b_leaf) * upstream).sum().backward()

        # Warm-up: compilation, lazy scripting, page cache; TorchScript's profiling
        # executor needs two runs of each kind (with and without grad) to optimise.
        warmups = 1 if count < repeats else 3
        for _ in range(warmups):
            forward_only()
        fwd = median_seconds(forward_only, count, device)
        if differentiable:
            for _ in range(2 if "scripted" in contender else 1):
                forward_backward()
        fwd_bwd = median_seconds(forward_backward, count, device) if differentiable else None
        peak = peak_rise_bytes(forward_backward if differentiable else forward_only, device)
        rows.append((contender, fwd, fwd_bwd, peak))
    return rows, output_bytes


def format_table(name, dtype, rows, output_bytes, device="cpu"):
    baseline = {row[0]: row for row in rows}.get("torchaudio lfilter")
    floor = rows[0][1]
    lines = [
        f"### {name} {WORKLOADS[name][:2]} x {WORKLOADS[name][2]} filters, {str(dtype).replace('torch.', '')}, {device}",
        "",
        "| contender | forward | fwd / floor | torchaudio / fwd | fwd+bwd | torchaudio / fwd+bwd | peak (fwd+bwd) / output |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def ms(seconds):
        if seconds is None:
            return "-"
        return f"{seconds * 1e3:.3g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.3g} µs"

    def ratio(numerator, denominator):
        return "-" if numerator is None or denominator is None else f"{numerator / denominator:.2f}x"

    for contender, fwd, fwd_bwd, peak in rows:
        lines.append(
            "| "
            + " | ".join(
                [
                    contender,
                    ms(fwd),
                    ratio(fwd, floor),
                    ratio(baseline[1], fwd) if baseline else "-",
                    ms(fwd_bwd),
                    ratio(baseline[2], fwd_bwd) if baseline else "-",
                    "-" if peak is None or (output_bytes < PEAK_MIN_BYTES and device == "cpu") else f"{peak / output_bytes:.2f}",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=DEFAULT_WORKLOADS)
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "float64"], default=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip", nargs="*", default=[], help="skip contenders whose name contains a word")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--json", help="also write every row here: workload, dtype, contender, seconds, peak")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    card = f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""
    print(
        f"machine: {platform.processor() or platform.machine()}{card}, {args.threads} threads, "
        f"torch {torch.__version__}, numpy {np.__version__}, "
        f"multi_lfilter backends {multi_lfilter.available_backends()}\n"
    )
    records = []
    for name in args.workloads:
        for dtype_name in args.dtypes:
            dtype = getattr(torch, dtype_name)
            rows, output_bytes = run_workload(name, dtype, args.repeats, args.skip, args.device)
            print(format_table(name, dtype, rows, output_bytes, args.device) + "\n", flush=True)
            records += [
                dict(workload=name, dtype=dtype_name, contender=contender, forward_s=fwd, forward_backward_s=fwd_bwd,
                     peak_over_output=None if peak is None else peak / output_bytes)
                for contender, fwd, fwd_bwd, peak in rows
            ]
            if args.json:  # rewritten after every table, so a run cut short keeps what it measured
                with open(args.json, "w") as file:
                    json.dump(records, file, indent=1)


if __name__ == "__main__":
    main()
