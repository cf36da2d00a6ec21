"""Time-varying filters: forward and forward+backward against the peers and the LTI floor.

Two workloads (float32, CPU, ``--threads`` threads, one process, medians of
``--repeats`` runs after a warm-up):

- ``per-sample``: 512 chains x 16000 samples, a swept band-pass biquad with new
  coefficients every sample (``a, b (512, 16000, 3)``); gradients for x, a and b (the
  leaf tensors made once, only their ``.grad`` cleared between runs).
- ``frames``: ``[8, 1, 48000]`` through 64 biquads with per-example frame-rate
  coefficients ``(8, 64, F, 3)``, hop 128 (``F = 375``).

Contenders: ``lfilter_varying`` on each of its backends that runs the workload
(the reference loop only with ``--loop``: it takes seconds), philtorch 0.7's
``lpv.lfilter`` (default ``tdf2``/``ssm``, and ``df1``/``torchlpc``) and torchlpc's
``sample_wise_lpc`` (the all-pole half only) where installed (a line says so where
not), and ``lfilter_bank`` with constant coefficients of the same shapes (the floor).
Peak memory: the rise of the resident set during one forward+backward, against the
output's size.

Usage::

    python benchmarks/bench_varying.py
    python benchmarks/bench_varying.py --workloads frames --repeats 3
    python benchmarks/bench_varying.py --backends native
"""
import argparse
import importlib.util
import math
import platform

import torch

import multi_lfilter
from multi_lfilter import lfilter_bank, lfilter_varying
from multi_lfilter.backends.dispatch import registered
from multi_lfilter.varying import varying_backends

from bench_lfilter import median_seconds, peak_rise_bytes

SAMPLE_RATE = 16000.0


def swept_bandpass(chains, length, q=4.0, low=200.0, high=4000.0):
    """``(a, b)`` ``(chains, length, 3)`` float32: cookbook band-passes whose centre
    sweeps geometrically from ``low`` to ``high`` Hz, each chain starting elsewhere."""
    phase = torch.linspace(0, 1, length).unsqueeze(0) + torch.rand(chains, 1)
    centre = low * (high / low) ** (phase % 1.0)
    omega = 2 * math.pi * centre / SAMPLE_RATE
    alpha = torch.sin(omega) / (2 * q)
    a = torch.stack([1 + alpha, -2 * torch.cos(omega), 1 - alpha], -1)
    b = torch.stack([alpha, torch.zeros_like(alpha), -alpha], -1)
    return a.float(), b.float()


def workload(name):
    """``(waveform, a, b, hop, constant_a, constant_b)``: the inputs and the LTI floor's."""
    torch.manual_seed(0)
    if name == "per-sample":
        waveform = torch.randn(512, 16000)
        a, b = swept_bandpass(512, 16000)
        return waveform, a, b, None, a[:, :1, :].squeeze(1).contiguous(), b[:, :1, :].squeeze(1).contiguous()
    hop, length = 128, 48000
    frames = math.ceil(length / hop)
    waveform = torch.randn(8, 1, length)
    a, b = swept_bandpass(8 * 64, frames)
    a, b = a.reshape(8, 64, frames, 3), b.reshape(8, 64, frames, 3)
    return waveform, a, b, hop, a[:, :, 0, :].contiguous(), b[:, :, 0, :].contiguous()


def contenders(name, waveform, a, b, hop, constant_a, constant_b, with_loop, backends):
    """``{label: (forward, leaves)}``: each contender's forward as a function of its leaves."""
    runs = {}
    for backend in varying_backends():
        if (backend == "loop" and not with_loop) or (backends and backend not in backends):
            continue
        if not registered(backend).supports(waveform, 2, waveform.dim() - 1):  # Triton runs CUDA tensors only
            continue
        runs[f"multi_lfilter lfilter_varying ({backend})"] = (
            lambda x, a, b, backend=backend: lfilter_varying(x, a, b, hop_length=hop, backend=backend), [waveform, a, b]
        )
    runs["multi_lfilter lfilter_bank, constant (the floor)"] = (
        lambda x, a, b: lfilter_bank(x, a, b), [waveform, constant_a, constant_b]
    )
    if name == "per-sample":
        if importlib.util.find_spec("philtorch"):
            from philtorch.lpv import lfilter as philtorch_lfilter

            normalised_a = (a[..., 1:] / a[..., :1]).contiguous()
            normalised_b = (b / a[..., :1]).contiguous()
            runs["philtorch lpv.lfilter (tdf2, ssm)"] = (
                lambda x, a, b: philtorch_lfilter(b, a, x), [waveform, normalised_a, normalised_b]
            )
            runs["philtorch lpv.lfilter (df1, torchlpc)"] = (
                lambda x, a, b: philtorch_lfilter(b, a, x, form="df1", backend="torchlpc"), [waveform, normalised_a, normalised_b]
            )
        else:
            print("philtorch is not installed: pip install --no-deps philtorch==0.7.0")
        if importlib.util.find_spec("torchlpc"):
            from torchlpc import sample_wise_lpc

            normalised_a = (a[..., 1:] / a[..., :1]).contiguous()
            runs["torchlpc sample_wise_lpc (all-pole only)"] = (
                lambda x, a: sample_wise_lpc(x, a), [waveform, normalised_a]
            )
        else:
            print("torchlpc is not installed (see the README's benchmark section)")
    return runs


def measure(name, repeats, with_loop, backends):
    waveform, a, b, hop, constant_a, constant_b = workload(name)
    rows = []
    floor = None
    for label, (forward, inputs) in contenders(name, waveform, a, b, hop, constant_a, constant_b, with_loop, backends).items():
        leaves = [tensor.detach().clone().requires_grad_() for tensor in inputs]
        output = forward(*leaves)
        upstream = torch.randn_like(output)

        def run_forward():
            with torch.no_grad():
                forward(*leaves)

        def run_backward():
            for leaf in leaves:
                leaf.grad = None
            forward(*leaves).backward(upstream)

        forward_time = median_seconds(run_forward, repeats, warmups=1)
        backward_time = median_seconds(run_backward, repeats, warmups=1)
        peak = peak_rise_bytes(run_backward)
        rows.append((label, forward_time, backward_time, peak, output.numel() * output.element_size()))
        if label.startswith("multi_lfilter lfilter_bank"):
            floor = (forward_time, backward_time)
    print(f"\n## {name}\n")
    print("| contender | forward | vs floor | forward+backward | vs floor | peak fwd+bwd / output |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, forward_time, backward_time, peak, output_bytes in rows:
        peak_text = "-" if peak is None else f"{peak / output_bytes:.1f}x"
        print(
            f"| {label} | {forward_time * 1e3:.1f} ms | {forward_time / floor[0]:.2f}x | "
            f"{backward_time * 1e3:.1f} ms | {backward_time / floor[1]:.2f}x | {peak_text} |"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=["per-sample", "frames"], default=["per-sample", "frames"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loop", action="store_true", help="also time the reference loop (seconds per run)")
    parser.add_argument("--backends", nargs="+", help="only these lfilter_varying backends (default: every one here)")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"multi_lfilter {multi_lfilter.__version__}")
    for name in arguments.workloads:
        measure(name, arguments.repeats, arguments.loop, arguments.backends)


if __name__ == "__main__":
    main()
