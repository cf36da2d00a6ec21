"""Coefficient design: cookbook biquads, centre frequencies, frequency responses."""
import math

import numpy as np
import pytest
import scipy.signal
import torch

from multi_lfilter import freqz_bank, lfilter_bank
from multi_lfilter.design import BIQUAD_KINDS, biquad_coeffs, center_frequencies

from helpers import TORCHAUDIO_ERROR, random_filter_bank, torchaudio_functional

SAMPLE_RATE = 16000
# kind -> torchaudio filter with the same coefficients, as (waveform, frequency, q, gain) -> y
TORCHAUDIO_TWINS = {
    "lowpass": lambda x, f, q, g: torchaudio_functional.lowpass_biquad(x, SAMPLE_RATE, f, q),
    "highpass": lambda x, f, q, g: torchaudio_functional.highpass_biquad(x, SAMPLE_RATE, f, q),
    "bandpass": lambda x, f, q, g: torchaudio_functional.bandpass_biquad(x, SAMPLE_RATE, f, q, const_skirt_gain=True),
    "bandpass_peak": lambda x, f, q, g: torchaudio_functional.bandpass_biquad(x, SAMPLE_RATE, f, q),
    "notch": lambda x, f, q, g: torchaudio_functional.bandreject_biquad(x, SAMPLE_RATE, f, q),
    "allpass": lambda x, f, q, g: torchaudio_functional.allpass_biquad(x, SAMPLE_RATE, f, q),
    "peaking": lambda x, f, q, g: torchaudio_functional.equalizer_biquad(x, SAMPLE_RATE, f, g, q),
}


@pytest.mark.skipif(torchaudio_functional is None, reason=TORCHAUDIO_ERROR)
@pytest.mark.parametrize("kind", list(TORCHAUDIO_TWINS))
def test_biquads_filter_like_torchaudio(kind):
    """Same coefficients, seen through the output (torchaudio's biquads filter directly)."""
    waveform = 0.05 * torch.randn(2, 500, dtype=torch.float64)  # small: torchaudio clamps to [-1, 1]
    for frequency, q, gain in [(300.0, 0.7, 6.0), (2500.0, 3.0, -9.0)]:
        b, a = biquad_coeffs(kind, SAMPLE_RATE, torch.tensor(frequency, dtype=torch.float64), q, gain)
        expected = TORCHAUDIO_TWINS[kind](waveform, frequency, q, gain)
        torch.testing.assert_close(lfilter_bank(waveform, a, b), expected, rtol=1e-10, atol=1e-10)


def test_shelves_match_the_cookbook_by_hand():
    frequency, q, gain = 1000.0, 0.9, 6.0
    w0 = 2 * math.pi * frequency / SAMPLE_RATE
    cos, alpha, amp = math.cos(w0), math.sin(w0) / (2 * q), 10 ** (gain / 40)
    root = 2 * math.sqrt(amp) * alpha
    low_b = [amp * ((amp + 1) - (amp - 1) * cos + root), 2 * amp * ((amp - 1) - (amp + 1) * cos), amp * ((amp + 1) - (amp - 1) * cos - root)]
    low_a = [(amp + 1) + (amp - 1) * cos + root, -2 * ((amp - 1) + (amp + 1) * cos), (amp + 1) + (amp - 1) * cos - root]
    high_b = [amp * ((amp + 1) + (amp - 1) * cos + root), -2 * amp * ((amp - 1) + (amp + 1) * cos), amp * ((amp + 1) + (amp - 1) * cos - root)]
    high_a = [(amp + 1) - (amp - 1) * cos + root, 2 * ((amp - 1) - (amp + 1) * cos), (amp + 1) - (amp - 1) * cos - root]
    for kind, (b_ref, a_ref) in {"lowshelf": (low_b, low_a), "highshelf": (high_b, high_a)}.items():
        b, a = biquad_coeffs(kind, SAMPLE_RATE, torch.tensor(frequency, dtype=torch.float64), q, gain)
        torch.testing.assert_close(b, torch.tensor(b_ref, dtype=torch.float64), rtol=1e-12, atol=0)
        torch.testing.assert_close(a, torch.tensor(a_ref, dtype=torch.float64), rtol=1e-12, atol=0)


@pytest.mark.parametrize("kind, dc_db, nyquist_db", [("lowshelf", 6.0, 0.0), ("highshelf", 0.0, 6.0), ("peaking", 0.0, 0.0)])
def test_shelf_and_peak_gains_at_the_band_edges(kind, dc_db, nyquist_db):
    b, a = biquad_coeffs(kind, SAMPLE_RATE, torch.tensor(1000.0, dtype=torch.float64), 0.7071, 6.0)
    _, response = freqz_bank(a_coeffs=a, b_coeffs=b, n_freqs=4096)
    gains_db = 20 * torch.log10(response.abs())
    assert gains_db[0].item() == pytest.approx(dc_db, abs=1e-9)
    assert gains_db[-1].item() == pytest.approx(nyquist_db, abs=0.01)


def test_biquad_parameters_broadcast_and_are_differentiable():
    frequency = torch.tensor([200.0, 800.0, 3000.0], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([[0.5], [2.0]], dtype=torch.float64, requires_grad=True)
    b, a = biquad_coeffs("peaking", SAMPLE_RATE, frequency, q, gain_db=3.0)
    assert b.shape == a.shape == (2, 3, 3)
    assert torch.autograd.gradcheck(lambda f, q: biquad_coeffs("peaking", SAMPLE_RATE, f, q, 3.0), (frequency, q))


def test_unknown_kind_lists_the_kinds():
    with pytest.raises(ValueError, match=r"expected kind to be one of \['lowpass', .*'highshelf'\], got 'lowpas'"):
        biquad_coeffs("lowpas", SAMPLE_RATE, 100.0)
    assert len(BIQUAD_KINDS) == 9


@pytest.mark.parametrize("with_rate", [False, True])
def test_freqz_bank_matches_scipy(with_rate, rng):
    a, b = random_filter_bank(4, n_filters=3, rng=rng)
    b = b[:, :3]  # unequal lengths
    freqs, response = freqz_bank(a_coeffs=a, b_coeffs=b, n_freqs=300, sample_rate=SAMPLE_RATE if with_rate else None)
    assert response.shape == (3, 300) and response.dtype == torch.complex128
    for c in range(3):
        kwargs = {"fs": SAMPLE_RATE} if with_rate else {}
        w, h = scipy.signal.freqz(b[c].numpy(), a[c].numpy(), worN=300, **kwargs)
        np.testing.assert_allclose(freqs.numpy(), w, rtol=0, atol=1e-10)
        np.testing.assert_allclose(response[c].numpy(), h, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("scale", ["linear", "log", "mel", "erb"])
def test_center_frequencies_are_even_on_their_scale(scale):
    frequencies = center_frequencies(10, 50.0, 7000.0, scale=scale, dtype=torch.float64)
    assert frequencies[0].item() == 50.0 and frequencies[-1].item() == 7000.0
    warp = {
        "linear": lambda f: f,
        "log": torch.log,
        "mel": lambda f: 2595 * torch.log10(1 + f / 700),
        "erb": lambda f: 21.4 * torch.log10(1 + 0.00437 * f),
    }[scale]
    steps = warp(frequencies).diff()
    torch.testing.assert_close(steps, steps.mean().expand(9), rtol=1e-9, atol=0)


def test_center_frequencies_reject_bad_scales_and_ranges():
    with pytest.raises(ValueError, match=r"expected scale to be one of \['linear', 'log', 'mel', 'erb'\], got 'bark'"):
        center_frequencies(4, 50.0, 7000.0, scale="bark")
    with pytest.raises(ValueError, match=r"expected 0 < f_min < f_max for scale 'log', got f_min=0.0, f_max=100.0"):
        center_frequencies(4, 0.0, 100.0, scale="log")
    with pytest.raises(ValueError, match=r"got f_min=200.0, f_max=100.0"):
        center_frequencies(4, 200.0, 100.0, scale="linear")
