"""Float32 error of each contender against a float64 reference, on the bank workload:
the output, and the gradients of a loss for the waveform and the coefficients.

The bank's 128 band-pass biquads (50 Hz - 7 kHz at 16 kHz) filter ``[B, T]`` float32
noise; the reference is the float64 filter on the same float32-rounded inputs and
coefficients (on CPU: the native kernels where built, else the loop). The loss is
``(y * g).sum()`` with a fixed float32 ``g``. Prints, per contender, the largest error
relative to the largest reference value of the output and of each gradient, and the
ratio to torchaudio's (a float32 recurrence).

Usage::

    python benchmarks/precision.py                    # CPU contenders
    python benchmarks/precision.py --device cuda      # CUDA contenders
"""
import argparse

import torch

import multi_lfilter
from bench_lfilter import backend_runs, bandpass_bank, torchaudio_functional

QUANTITIES = ("output", "grad waveform", "grad a", "grad b")


def outputs_and_gradients(filter_bank, waveform, a, b, upstream):
    """``[y, dL/dwaveform, dL/da, dL/db]`` for ``L = (y * upstream).sum()``."""
    leaves = [tensor.clone().requires_grad_(True) for tensor in (waveform, a, b)]
    y = filter_bank(*leaves)
    gradients = torch.autograd.grad((y * upstream).sum(), leaves)
    return [y.detach()] + list(gradients)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=16000)
    args = parser.parse_args()
    torch.manual_seed(0)
    waveform = torch.randn(args.batch, 1, args.length)
    a, b = bandpass_bank(128, torch.float32)
    upstream = torch.randn(args.batch, 128, args.length)
    reference_backend = "native" if "native" in multi_lfilter.available_backends() else "loop"
    reference = outputs_and_gradients(
        lambda x, a, b: multi_lfilter.lfilter_bank(x, a, b, backend=reference_backend),
        waveform.double(), a.double(), b.double(), upstream.double(),
    )
    scales = [value.abs().max().item() for value in reference]
    device_inputs = [t.to(args.device) for t in (waveform, a, b, upstream)]
    contenders = {}
    for backend in multi_lfilter.available_backends():
        if backend_runs(backend, device_inputs[0]):
            contenders[f"multi_lfilter {backend}"] = lambda x, a, b, backend=backend: multi_lfilter.lfilter_bank(
                x, a, b, backend=backend
            )
    if torchaudio_functional is not None:
        contenders["torchaudio lfilter"] = lambda x, a, b: torchaudio_functional.lfilter(
            x.expand(-1, a.shape[0], -1), a, b, clamp=False, batching=True
        )
    errors = {}
    for name, filter_bank in contenders.items():
        values = outputs_and_gradients(filter_bank, *device_inputs)
        errors[name] = [
            (value.double().cpu() - wanted).abs().max().item() / scale
            for value, wanted, scale in zip(values, reference, scales)
        ]
    baseline = errors.get("torchaudio lfilter")
    print(f"float32 error / max|reference|, [{args.batch}, {args.length}] x 128 band-passes, {args.device}, "
          f"loss (y * g).sum()\n")
    print("| contender | " + " | ".join(f"{quantity} | / torchaudio's" for quantity in QUANTITIES) + " |")
    print("| --- |" + " ---: | ---: |" * len(QUANTITIES))
    for name, values in errors.items():
        cells = []
        for index, error in enumerate(values):
            ratio = f"{error / baseline[index]:.3g}x" if baseline and baseline[index] > 0 else "-"
            cells += [f"{error:.3g}", ratio]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
