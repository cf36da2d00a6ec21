"""Float32 error of each contender against a float64 reference, on the bank workload.

The bank's 128 band-pass biquads (50 Hz - 7 kHz at 16 kHz) filter ``[B, T]`` float32
noise; the reference is the float64 loop on the same float32-rounded inputs and
coefficients (on CPU). Prints the largest error relative to the largest output, per
contender, and the ratio to torchaudio's (a float32 recurrence).

Usage::

    python benchmarks/precision.py                    # CPU contenders
    python benchmarks/precision.py --device cuda      # CUDA contenders
"""
import argparse

import torch

import multi_lfilter
from bench_lfilter import backend_runs, bandpass_bank, torchaudio_functional


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=16000)
    args = parser.parse_args()
    torch.manual_seed(0)
    waveform = torch.randn(args.batch, 1, args.length)
    a, b = bandpass_bank(128, torch.float32)
    reference = multi_lfilter.lfilter_bank(waveform.double(), a.double(), b.double(), backend="native"
                                           if "native" in multi_lfilter.available_backends() else "loop")
    scale = reference.abs().max().item()
    device_inputs = [t.to(args.device) for t in (waveform, a, b)]
    errors = {}
    for backend in multi_lfilter.available_backends():
        if backend_runs(backend, device_inputs[0]):
            y = multi_lfilter.lfilter_bank(*device_inputs, backend=backend)
            errors[f"multi_lfilter {backend}"] = (y.double().cpu() - reference).abs().max().item() / scale
    if torchaudio_functional is not None:
        x, a_dev, b_dev = device_inputs
        y = torchaudio_functional.lfilter(x.expand(-1, 128, -1), a_dev, b_dev, clamp=False, batching=True)
        errors["torchaudio lfilter"] = (y.double().cpu() - reference).abs().max().item() / scale
    baseline = errors.get("torchaudio lfilter")
    print(f"float32 error / max|y|, [{args.batch}, {args.length}] x 128 band-passes, {args.device}\n")
    print("| contender | max error / max abs output | / torchaudio's |")
    print("| --- | ---: | ---: |")
    for name, error in errors.items():
        ratio = f"{error / baseline:.3g}x" if baseline else "-"
        print(f"| {name} | {error:.3g} | {ratio} |")


if __name__ == "__main__":
    main()
