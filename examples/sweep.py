"""Network-controlled filters: a resonant filter sweep and an equaliser driven by a network.

1. Sweep: a resonant low-pass (``Q = 8``) whose cut-off moves every 128 samples, from
   80 Hz up to 6 kHz and back, over a saw wave: ``BiquadFilterBank`` given frame-rate
   ``center_freq`` and ``hop_length`` designs a biquad per frame and interpolates
   between them.
2. Network-controlled equaliser: a tiny MLP reads the time of each frame and outputs
   the frequency, ``Q`` and gain of three peaking bands, which filter white noise in
   cascade. It learns with Adam to match a target made by a known time-varying EQ
   (one band sweeping, one band's gain swinging, one fixed cut); the printed loss is
   the mean squared error over the target's.

Saves a figure with spectrograms of the saw, the sweep, the target EQ's output and the
learnt EQ's output, with the bands' frequencies drawn over the last two.

Run:  python examples/sweep.py            (about 10 s on 2 cores; the figure goes to the
                                           temporary folder, or --output)
      python examples/sweep.py --short    (fewer, shorter steps; no figure unless
                                           --output is given)
"""
import argparse
import math
import os
import tempfile
import time

import torch
from torch import nn

from multi_lfilter import BiquadFilterBank

SAMPLE_RATE = 16000
HOP = 128
N_BANDS = 3
FULL = dict(steps=80, seconds=1.0)
SHORT = dict(steps=30, seconds=0.5)


def n_frames(length):
    """Frames at samples 0, HOP, ... covering ``length`` samples (one past the end)."""
    return length // HOP + 1


# --- 1. a resonant sweep -------------------------------------------------------------------------


def saw_wave(length, frequency=110.0):
    phase = torch.arange(length, dtype=torch.float32) * (frequency / SAMPLE_RATE)
    return 2 * (phase - torch.floor(phase + 0.5))


def sweep(signal):
    """``(T,)`` through a resonant low-pass whose cut-off goes 80 Hz -> 6 kHz -> 80 Hz
    (exponentially); returns the output and the ``(F,)`` cut-offs."""
    frames = n_frames(signal.shape[-1])
    position = torch.linspace(0.0, 2.0, frames)
    triangle = 1 - (position - 1).abs()  # 0 -> 1 -> 0
    cutoff = 80.0 * (6000.0 / 80.0) ** triangle
    filter_ = BiquadFilterBank(1, SAMPLE_RATE, kind="lowpass", center_freq=torch.tensor([1000.0]), q=8.0, learnable=False)
    with torch.no_grad():
        swept = filter_(signal, center_freq=cutoff[None], hop_length=HOP)  # (T,) -> (1, T)
    return swept[0], cutoff


# --- 2. a network-controlled equaliser -------------------------------------------------------------

# The ranges the network's outputs are mapped into (inside the bank's own, so every
# frame's biquad is stable).
F_LOW, F_HIGH = 100.0, 7000.0
Q_LOW, Q_HIGH = 0.5, 8.0
MAX_GAIN_DB = 15.0


def equalise(band_filter, waveform, frequency, q, gain_db):
    """``waveform (B, T)`` through ``N_BANDS`` peaking biquads in cascade; the band
    values are ``(N_BANDS, F)`` or ``(B, N_BANDS, F)`` (one filter each: the one-filter
    bank takes every design value from the call)."""
    output = waveform
    for band in range(N_BANDS):
        values = [value[..., band : band + 1, :] for value in (frequency, q, gain_db)]
        output = band_filter(output, *values, HOP).squeeze(-2)
    return output


def target_controls(frames):
    """The known time-varying EQ: ``(N_BANDS, F)`` frequencies, Qs and gains."""
    time_ = torch.linspace(0.0, 1.0, frames)
    frequency = torch.stack([
        400.0 * 3.0 ** time_,                           # a band sweeping 400 Hz -> 1.2 kHz
        torch.full_like(time_, 2500.0),
        torch.full_like(time_, 5000.0),
    ])
    q = torch.stack([torch.full_like(time_, 2.0), torch.full_like(time_, 3.0), torch.full_like(time_, 1.0)])
    gain_db = torch.stack([
        torch.full_like(time_, 9.0),
        9.0 * torch.sin(2 * math.pi * time_),           # a gain swinging +-9 dB
        torch.full_like(time_, -8.0),                    # a fixed cut
    ])
    return frequency, q, gain_db


class Controller(nn.Module):
    """Frame times ``(F,)`` in [0, 1] -> per-frame ``(N_BANDS, F)`` frequencies, Qs and gains."""

    def __init__(self, n_harmonics=3, hidden=32):
        super().__init__()
        self.harmonics = torch.arange(1, n_harmonics + 1, dtype=torch.float32)
        self.network = nn.Sequential(
            nn.Linear(1 + 2 * n_harmonics, hidden), nn.Tanh(),
            nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, 3 * N_BANDS),
        )
        last = self.network[-1]
        with torch.no_grad():  # start from flat bands at 500 Hz, 2 kHz and 5 kHz
            last.weight.mul_(0.1)
            start = torch.tensor([500.0, 2000.0, 5000.0])
            fraction = (start.log() - math.log(F_LOW)) / (math.log(F_HIGH) - math.log(F_LOW))
            last.bias.copy_(torch.cat([torch.logit(fraction), torch.zeros(2 * N_BANDS)]))

    def forward(self, time_):
        angles = 2 * math.pi * time_[:, None] * self.harmonics
        features = torch.cat([time_[:, None], angles.sin(), angles.cos()], -1)  # (F, 7)
        raw_frequency, raw_q, raw_gain = self.network(features).T.reshape(3, N_BANDS, -1)
        frequency = F_LOW * (F_HIGH / F_LOW) ** torch.sigmoid(raw_frequency)
        q = Q_LOW * (Q_HIGH / Q_LOW) ** torch.sigmoid(raw_q)
        return frequency, q, MAX_GAIN_DB * torch.tanh(raw_gain)


def train_equaliser(steps=80, seconds=1.0, batch=4, learning_rate=0.02, seed=0, show_progress=True):
    """Train the controller; returns ``(controller, losses)``, ``losses`` the relative
    error of each step (before its update)."""
    torch.manual_seed(seed)
    length = int(seconds * SAMPLE_RATE)
    frames = n_frames(length)
    time_ = torch.linspace(0.0, 1.0, frames)
    band_filter = BiquadFilterBank(1, SAMPLE_RATE, kind="peaking", learnable=False)
    target = target_controls(frames)
    controller = Controller()
    optimizer = torch.optim.Adam(controller.parameters(), lr=learning_rate)
    losses = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        noise = torch.randn(batch, length)
        with torch.no_grad():
            expected = equalise(band_filter, noise, *target)
        actual = equalise(band_filter, noise, *controller(time_))
        loss = (actual - expected).square().mean() / expected.square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if show_progress and (step == 1 or step % 10 == 0 or step == steps):
            print(f"step {step:3d}  relative error {losses[-1]:.4f}  ({time.perf_counter() - start:.1f} s)")
    return controller, losses


# --- the figure ------------------------------------------------------------------------------------


def spectrogram_db(signal, n_fft=512, smoothing=1):
    """Power in dB, ``(n_fft / 2 + 1, frames)``; ``smoothing`` STFT frames averaged
    (noise's spectrogram is itself noisy: averaging shows the EQ's few dB)."""
    window = torch.hann_window(n_fft)
    power = torch.stft(signal, n_fft, hop_length=n_fft // 4, window=window, return_complex=True).abs().square()
    if smoothing > 1:
        power = torch.nn.functional.avg_pool1d(power[None], smoothing, 1, smoothing // 2, count_include_pad=False)[0]
    return 10 * torch.log10(power.clamp_min(1e-8))


def plot(panels, path):
    """``panels``: ``(title, signal (T,), lines, smoothing, dynamic range in dB)``,
    ``lines`` a list of ``((..., F) frequencies, style)`` to draw over the spectrogram."""
    try:
        import matplotlib
    except ImportError:
        print("no figure: matplotlib is not installed (pip install matplotlib, or the package's examples extra)")
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), sharey=True)
    for axis, (title, signal, lines, smoothing, dynamic_range) in zip(axes, panels):
        decibels = spectrogram_db(signal, smoothing=smoothing)
        seconds = signal.shape[-1] / SAMPLE_RATE
        top = decibels.max().item()
        axis.imshow(decibels.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=top - dynamic_range, vmax=top,
                    extent=(0, seconds, 0, SAMPLE_RATE / 2))
        for frequencies, style in lines:
            axis.plot(torch.linspace(0, seconds, frequencies.shape[-1]), frequencies.T, style, linewidth=1.2)
        axis.set(title=title, xlabel="time (s)")
    axes[0].set_ylabel("frequency (Hz)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    print(f"saved {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="a few seconds: fewer, shorter steps")
    parser.add_argument(
        "--output", default=None,
        help="where to save the figure (default: sweep.png in the system's temporary folder; none in --short mode)",
    )
    args = parser.parse_args(argv)
    settings = SHORT if args.short else FULL
    begin = time.perf_counter()

    length = int(2 * settings["seconds"] * SAMPLE_RATE)
    saw = saw_wave(length)
    swept, cutoff = sweep(saw)
    print(f"sweep: {length} samples, {cutoff.shape[0]} frames of {HOP} samples (cut-off 80 Hz -> 6 kHz -> 80 Hz); "
          f"peak |y| = {swept.abs().max():.2f}")

    controller, losses = train_equaliser(steps=settings["steps"], seconds=settings["seconds"])
    print(f"equaliser: relative error {losses[0]:.4f} -> {losses[-1]:.4f} ({losses[0] / losses[-1]:.0f}x lower)")
    print(f"took {time.perf_counter() - begin:.1f} s")

    output = args.output or (None if args.short else os.path.join(tempfile.gettempdir(), "sweep.png"))
    if output:
        torch.manual_seed(1)
        eq_length = int(settings["seconds"] * SAMPLE_RATE)
        frames = n_frames(eq_length)
        noise = torch.randn(eq_length)
        band_filter = BiquadFilterBank(1, SAMPLE_RATE, kind="peaking", learnable=False)
        target = target_controls(frames)
        with torch.no_grad():
            learnt = controller(torch.linspace(0.0, 1.0, frames))
            expected = equalise(band_filter, noise, *target)
            actual = equalise(band_filter, noise, *learnt)
        plot(
            [
                ("input: saw wave", saw, [], 1, 80),
                ("resonant low-pass sweep", swept, [(cutoff[None], "c--")], 1, 80),
                ("target EQ on noise", expected, [(target[0], "c--")], 15, 30),
                ("learnt EQ (dotted: its bands)", actual, [(target[0], "c--"), (learnt[0], "w:")], 15, 30),
            ],
            output,
        )


if __name__ == "__main__":
    main()
