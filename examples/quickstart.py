"""Quickstart: 128 learnable band-pass biquads over a batch of 32 one-second waveforms.

Prints the shapes, a coefficient gradient, and the time of ``lfilter_bank`` against
the same bank run as a Python loop over time (the way many models do it today).

Run:  python examples/quickstart.py          (``--short`` for a 4000-sample version)
"""
import argparse
import time

import torch

from multi_lfilter import available_backends, lfilter_bank
from multi_lfilter.design import biquad_coeffs, center_frequencies


def bandpass_bank(n_filters, sample_rate, f_min=50.0, f_max=7000.0, q=4.0):
    """``(a, b)`` of shape ``(n_filters, 3)``: 0 dB-peak band-pass biquads, log-spaced."""
    center = center_frequencies(n_filters, f_min, f_max, scale="log")
    bank = biquad_coeffs("bandpass_peak", sample_rate, center, q=q)
    return bank.a, bank.b


def python_loop_over_time(waveform, a, b):
    """The baseline: direct form I, one time step per Python iteration, autograd through all."""
    a0 = a[:, :1]
    a, b = a / a0, b / a0
    x = waveform.unsqueeze(-2)  # (B, 1, T)
    outputs = []
    x1 = x2 = y1 = y2 = torch.zeros(waveform.shape[0], a.shape[0])
    for n in range(waveform.shape[-1]):
        xn = x[..., n]
        yn = b[:, 0] * xn + b[:, 1] * x1 + b[:, 2] * x2 - a[:, 1] * y1 - a[:, 2] * y2
        outputs.append(yn)
        x2, x1, y2, y1 = x1, xn, y1, yn
    return torch.stack(outputs, -1)


def median_seconds(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="4000 samples, one timing run")
    args = parser.parse_args(argv)
    length = 4000 if args.short else 16000
    repeats = 1 if args.short else 3

    torch.manual_seed(0)
    waveform = torch.randn(32, length)
    a, b = bandpass_bank(n_filters=128, sample_rate=16000)
    a.requires_grad_(True)
    b.requires_grad_(True)

    y = lfilter_bank(waveform.unsqueeze(-2), a_coeffs=a, b_coeffs=b)  # (32, 128, T)
    y.square().mean().backward()
    print(f"backends available: {available_backends()}")
    print(f"waveform {tuple(waveform.shape)} -> output {tuple(y.shape)}")
    print(f"d loss / d b for filter 0: {b.grad[0].tolist()}")

    reference = python_loop_over_time(waveform, a.detach(), b.detach())
    print(f"max |lfilter_bank - python loop| = {(y.detach() - reference).abs().max().item():.2e}")

    def forward_backward(filter_function):
        a.grad = b.grad = None
        filter_function().square().mean().backward()

    ours = median_seconds(lambda: forward_backward(lambda: lfilter_bank(waveform.unsqueeze(-2), a, b)), repeats)
    loop = median_seconds(lambda: forward_backward(lambda: python_loop_over_time(waveform, a, b)), repeats)
    print(f"forward+backward: lfilter_bank {ours * 1e3:.0f} ms, python loop {loop * 1e3:.0f} ms "
          f"({loop / ours:.1f}x faster)")


if __name__ == "__main__":
    main()
