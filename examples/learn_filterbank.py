"""Learn a bank of 128 band-pass biquads that reproduces a target bank's output on noise.

The target is a fixed ``BiquadFilterBank`` whose centre frequencies and Qs are the
model's, each moved by a random factor. The model learns its centre frequencies and
Qs with Adam from the mean squared error between its outputs and the target's on
fresh white noise; the loss curve is measured on one held-out noise batch. Saves a
figure of the frequency responses (target, before, after) and of the loss curve.

Run:  python examples/learn_filterbank.py           (about 15 s on 2 cores; the figure goes
                                                      to the temporary folder, or --output)
      python examples/learn_filterbank.py --short   (60 short steps, a few seconds, no
                                                      figure unless --output is given)

The full run lowers the held-out error about 200 000 times (0.70 to 3.6e-6); the short
run about 44 times, and ``tests/test_examples.py`` checks it is at least 20 times.
"""
import argparse
import os
import sys
import tempfile
import time

import torch

from multi_lfilter import BiquadFilterBank

SAMPLE_RATE = 16000
N_FILTERS = 128
FULL = dict(steps=200, length=4096)
SHORT = dict(steps=60, length=2048)


def make_banks(seed=0):
    """``(model, target)``: the learnable bank and a fixed target near it."""
    generator = torch.Generator().manual_seed(seed)
    model = BiquadFilterBank(N_FILTERS, SAMPLE_RATE, kind="bandpass", f_min=80.0, f_max=6000.0, scale="mel", q=3.0)
    # The target: the model's bank with every centre frequency and Q moved.
    frequency_factors = torch.exp(0.2 * torch.randn(N_FILTERS, generator=generator))
    target_freq = (model.center_freq.detach() * frequency_factors).clamp(60.0, 7500.0)
    target_q = 3.0 * torch.exp(0.5 * torch.randn(N_FILTERS, generator=generator))
    target = BiquadFilterBank(
        N_FILTERS, SAMPLE_RATE, kind="bandpass", center_freq=target_freq, q=target_q, learnable=False
    )
    return model, target


def relative_error(model, target, waveform):
    """Mean squared error of the outputs over the target's mean square."""
    expected = target(waveform)
    return (model(waveform) - expected).square().mean() / expected.square().mean()


def progress_bar(step, total, loss, start, width=30):
    done = int(width * step / total)
    elapsed = time.perf_counter() - start
    sys.stdout.write(f"\r[{'#' * done}{'.' * (width - done)}] {step}/{total}  loss {loss:.3e}  {elapsed:.1f} s")
    if step == total:
        sys.stdout.write("\n")
    sys.stdout.flush()


def train(steps=200, batch=8, length=4096, learning_rate=0.03, seed=0, show_progress=True):
    """Train the model bank; returns ``(model, target, initial_model, losses)``.

    ``losses`` holds the held-out relative error before training and after each step.
    """
    torch.manual_seed(seed)
    model, target = make_banks(seed)
    initial_model, _ = make_banks(seed)
    held_out = torch.randn(batch, length)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    with torch.no_grad():
        losses = [relative_error(model, target, held_out).item()]
    start = time.perf_counter()
    for step in range(1, steps + 1):
        noise = torch.randn(batch, length)
        optimizer.zero_grad()
        loss = relative_error(model, target, noise)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            losses.append(relative_error(model, target, held_out).item())
        if show_progress:
            progress_bar(step, steps, losses[-1], start)
    return model, target, initial_model, losses


def plot(model, target, initial_model, losses, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (responses, curve) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    shown = slice(0, N_FILTERS, 8)  # every 8th filter keeps the picture readable
    for bank, style, label in [(target, "k-", "target"), (initial_model, "C1:", "before"), (model, "C0--", "after")]:
        freqs, response = bank.frequency_response(2048)
        decibels = 20 * torch.log10(response.abs().detach().clamp_min(1e-6))[shown]
        lines = responses.semilogx(freqs[1:], decibels[:, 1:].T, style, linewidth=0.9)
        lines[0].set_label(label)
    responses.set(xlabel="frequency (Hz)", ylabel="gain (dB)", ylim=(-30, 20), xlim=(40, SAMPLE_RATE / 2),
                  title=f"band-pass biquads (every 8th of {N_FILTERS})")
    responses.legend(loc="lower left")
    curve.semilogy(losses)
    curve.set(xlabel="step", ylabel="held-out relative error", title="loss")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    print(f"saved {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="a few seconds: fewer, shorter steps")
    parser.add_argument(
        "--output", default=None,
        help="where to save the figure (default: learn_filterbank.png in the system's temporary folder; none in --short mode)",
    )
    args = parser.parse_args(argv)
    model, target, initial_model, losses = train(**(SHORT if args.short else FULL))
    print(f"held-out relative error: {losses[0]:.3e} before, {losses[-1]:.3e} after ({losses[0] / losses[-1]:.0f}x lower)")
    frequency_error = (model.center_freq / target.center_freq).log().abs().max().exp().item() - 1
    print(f"largest centre frequency error after training: {100 * frequency_error:.2f}%")
    output = args.output or (None if args.short else os.path.join(tempfile.gettempdir(), "learn_filterbank.png"))
    if output:
        plot(model, target, initial_model, losses, output)


if __name__ == "__main__":
    main()
