"""Network-controlled filter banks: frame-rate values in the Modules' ``forward``.

Each bank designs its filters frame by frame from the values it is given (the rest
from its own parameters) and filters with ``lfilter_varying`` / ``sosfilt_varying``:
the tests compare with those functions on coefficients designed independently, check
that constant values give the time-invariant bank, gradients, streaming, TorchScript
and the error messages.
"""
import math

import numpy as np
import pytest
import scipy.signal
import torch
from torch.autograd import gradcheck
from torch.func import functional_call

from multi_lfilter import (
    BiquadFilterBank,
    ButterworthFilterBank,
    SOSFilterBank,
    lfilter_varying,
    sosfilt_varying,
)
from multi_lfilter.design import biquad_coeffs, butter_sos

SAMPLE_RATE = 16000
HOP = 16
LENGTH = 400
FRAMES = LENGTH // HOP + 1  # 26: frame 25 at sample 400, one past the end


def biquad_bank(kind="peaking", n_filters=3, dtype=torch.float64):
    gain = 6.0 if kind in ("peaking", "lowshelf", "highshelf") else 0.0
    return BiquadFilterBank(n_filters, SAMPLE_RATE, kind=kind, f_min=200.0, f_max=4000.0, q=2.0, gain_db=gain, dtype=dtype)


def band_butterworth(dtype=torch.float64):
    centre = torch.tensor([500.0, 2000.0, 5000.0], dtype=dtype)
    return ButterworthFilterBank(2, SAMPLE_RATE, centre, torch.tensor([200.0, 600.0, 1500.0], dtype=dtype), dtype=dtype)


def low_butterworth(dtype=torch.float64):
    return ButterworthFilterBank(3, SAMPLE_RATE, torch.tensor([500.0, 2000.0, 5000.0], dtype=dtype), kind="lowpass", dtype=dtype)


def sos_bank(dtype=torch.float64):
    bands = [(0.05 + 0.1 * c, 0.1 + 0.1 * c) for c in range(3)]
    sections = np.stack([scipy.signal.butter(2, band, btype="bandpass", output="sos") for band in bands])
    return SOSFilterBank(torch.from_numpy(sections).to(dtype))


def sweep(low, high, shape, dtype=torch.float64):
    """Values from ``low`` to ``high`` along the last (frame) axis, ``(..., C, F)``."""
    return torch.exp(torch.linspace(math.log(low), math.log(high), shape[-1], dtype=dtype)).expand(shape).contiguous()


def random_frames(low, high, shape, rng, dtype=torch.float64):
    return torch.from_numpy(rng.uniform(low, high, size=shape)).to(dtype)


# --- frame-rate values equal the functions on independently designed coefficients -----------


BIQUAD_CASES = [("bandpass", "center_freq"), ("bandpass", "q")] + [
    (kind, given) for kind in ("peaking", "lowshelf") for given in ("center_freq", "q", "gain_db", "all")
]


@pytest.mark.parametrize("kind, given", BIQUAD_CASES, ids=[f"{kind}-{given}" for kind, given in BIQUAD_CASES])
def test_biquad_frames_equal_lfilter_varying(kind, given, rng):
    bank = biquad_bank(kind)
    waveform = torch.from_numpy(rng.normal(size=(2, LENGTH)))
    values = {
        "center_freq": random_frames(100.0, 6000.0, (2, 3, FRAMES), rng),  # per example
        "q": random_frames(0.5, 8.0, (3, FRAMES), rng),
        "gain_db": random_frames(-12.0, 12.0, (1, FRAMES), rng),  # one curve for every filter
    }
    values = values if given == "all" else {given: values[given]}
    expected_values = {"center_freq": bank.center_freq[:, None], "q": bank.q[:, None], "gain_db": bank.gain_db[:, None]}
    expected_values.update(values)
    b, a = biquad_coeffs(kind, SAMPLE_RATE, **{k: v.detach() for k, v in expected_values.items()})
    expected = lfilter_varying(waveform[:, None], a_coeffs=a, b_coeffs=b, hop_length=HOP)
    actual = bank(waveform, **values, hop_length=HOP)
    assert actual.shape == (2, 3, LENGTH)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("given", ["center_freq", "bandwidth", "both"])
def test_butterworth_band_frames_equal_sosfilt_varying(given, rng):
    bank = band_butterworth()
    waveform = torch.from_numpy(rng.normal(size=(2, LENGTH)))
    centre = random_frames(800.0, 6000.0, (3, FRAMES), rng)
    width = random_frames(100.0, 1000.0, (3, FRAMES), rng)
    values = {"center_freq": centre, "bandwidth": width}
    if given == "center_freq":
        values = {"center_freq": centre}
        # The bank's own bandwidth is its share of the room the centre leaves.
        own_share = bank.bandwidth.detach() / (2 * torch.minimum(bank.center_freq, SAMPLE_RATE / 2 - bank.center_freq)).detach()
        width = own_share[:, None] * 2 * torch.minimum(centre, SAMPLE_RATE / 2 - centre)
    elif given == "bandwidth":
        values = {"bandwidth": width}
        centre = bank.center_freq.detach()[:, None].expand(3, FRAMES)
    edges = torch.stack([centre - width / 2, centre + width / 2], -1)
    expected = sosfilt_varying(waveform[:, None], butter_sos(2, edges, "bandpass", SAMPLE_RATE), hop_length=HOP)
    actual = bank(waveform, **values, hop_length=HOP)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-10)


def test_butterworth_lowpass_frames_equal_sosfilt_varying(rng):
    bank = low_butterworth()
    waveform = torch.from_numpy(rng.normal(size=(2, LENGTH)))
    cutoff = sweep(100.0, 7000.0, (3, FRAMES))
    expected = sosfilt_varying(waveform[:, None], butter_sos(3, cutoff, "lowpass", SAMPLE_RATE), hop_length=HOP)
    torch.testing.assert_close(bank(waveform, center_freq=cutoff, hop_length=HOP), expected, rtol=0, atol=1e-10)


def test_sos_frames_equal_sosfilt_varying(rng):
    bank = sos_bank()
    waveform = torch.from_numpy(rng.normal(size=(2, LENGTH)))
    raw = torch.from_numpy(rng.normal(scale=3.0, size=(2, 3, FRAMES, 2, 2)))
    sections = bank.sections_from_raw(torch.from_numpy(rng.normal(size=(2, 3, FRAMES, 2, 3))), raw)
    expected = sosfilt_varying(waveform[:, None], sections, hop_length=HOP)
    torch.testing.assert_close(bank(waveform, sections, HOP), expected, rtol=0, atol=0)


def test_sections_from_raw_are_the_banks_own_map():
    bank = sos_bank()
    torch.testing.assert_close(bank.sections_from_raw(bank.numerators, bank.raw_denominators), bank.sos())


# --- constant frame values are the time-invariant bank ---------------------------------------


def constant_frames(name, bank, frames=FRAMES):
    """``{argument: (C, F) values}`` repeating the bank's own parameters."""
    if name == "biquad":
        return {key: getattr(bank, key).detach()[:, None].expand(-1, frames) for key in ("center_freq", "q", "gain_db")}
    if name == "butterworth":
        return {key: getattr(bank, key).detach()[:, None].expand(-1, frames) for key in ("center_freq", "bandwidth")}
    return {"sos": bank.sos().detach()[:, None].expand(-1, frames, -1, -1)}


BANKS = {"biquad": biquad_bank, "butterworth": band_butterworth, "sos": sos_bank}


@pytest.mark.parametrize("name", list(BANKS))
def test_constant_frames_equal_the_time_invariant_bank(name, rng):
    bank = BANKS[name]()
    waveform = torch.from_numpy(rng.normal(size=(2, LENGTH)))
    zi = torch.from_numpy(rng.normal(size=tuple(bank.forward_with_state(waveform[:, :1])[1].shape)))
    expected_y, expected_zf = bank.forward_with_state(waveform, zi)
    actual_y, actual_zf = bank.forward_with_state(waveform, zi, **constant_frames(name, bank), hop_length=HOP)
    torch.testing.assert_close(actual_y, expected_y, rtol=0, atol=1e-10)
    torch.testing.assert_close(actual_zf, expected_zf, rtol=0, atol=1e-10)


# --- gradients --------------------------------------------------------------------------------


def test_biquad_gradcheck_frames_and_parameters(rng):
    """Through the frame-rate centre frequencies and gains and the bank's own ``Q``."""
    bank = BiquadFilterBank(2, SAMPLE_RATE, kind="peaking", f_min=500.0, f_max=3000.0, q=1.5, gain_db=3.0, dtype=torch.float64)
    waveform = torch.from_numpy(rng.normal(size=(1, 30)))
    centre = sweep(400.0, 4000.0, (2, 4)).requires_grad_()
    gain = torch.tensor([[3.0, -6.0, 9.0, 0.5]], dtype=torch.float64, requires_grad=True)
    raw_q = bank.raw_q.detach().clone().requires_grad_()

    def filtered(centre, gain, raw_q):
        return functional_call(bank, {"raw_q": raw_q}, (waveform, centre, None, gain, 8))

    assert gradcheck(filtered, (centre, gain, raw_q))


def test_sos_gradcheck_through_raw_frames(rng):
    bank = SOSFilterBank(torch.tensor([[[0.2, 0.4, 0.2, 1.0, -0.6, 0.3]]], dtype=torch.float64))
    waveform = torch.from_numpy(rng.normal(size=(1, 24)))
    numerators = torch.from_numpy(rng.normal(size=(1, 4, 1, 3))).requires_grad_()
    raw = torch.from_numpy(rng.normal(size=(1, 4, 1, 2))).requires_grad_()
    assert gradcheck(lambda n, r: bank(waveform, bank.sections_from_raw(n, r), 8), (numerators, raw))


def test_butterworth_gradcheck_frames_and_parameters(rng):
    bank = ButterworthFilterBank(1, SAMPLE_RATE, torch.tensor([1000.0]), torch.tensor([400.0]), dtype=torch.float64)
    waveform = torch.from_numpy(rng.normal(size=(1, 24)))
    centre = torch.tensor([[800.0, 1200.0, 2000.0, 1500.0]], dtype=torch.float64, requires_grad=True)
    raw_bandwidth = bank.raw_bandwidth.detach().clone().requires_grad_()

    def filtered(centre, raw_bandwidth):
        return functional_call(bank, {"raw_bandwidth": raw_bandwidth}, (waveform, centre, None, 8))

    assert gradcheck(filtered, (centre, raw_bandwidth))


def test_gradients_reach_the_parameters_not_given(rng):
    """A frame-rate centre frequency leaves ``Q`` and gain to the learnable parameters."""
    bank = biquad_bank("peaking", dtype=torch.float32)
    centre = sweep(300.0, 3000.0, (3, FRAMES), dtype=torch.float32).requires_grad_()
    bank(torch.from_numpy(rng.normal(size=(2, LENGTH))).float(), center_freq=centre, hop_length=HOP).square().sum().backward()
    assert centre.grad is not None and bool(centre.grad.abs().sum() > 0)
    assert bank.raw_q.grad is not None and bank.raw_gain_db.grad is not None
    assert bank.raw_center_freq.grad is None  # replaced by the frame-rate values


# --- streaming --------------------------------------------------------------------------------


def frame_values(name, bank, length, rng):
    """Moving values with ``ceil(length / HOP)`` frames (no frame past the end)."""
    frames = -(-length // HOP)
    if name == "biquad":
        return {"center_freq": sweep(150.0, 6000.0, (3, frames)), "q": random_frames(0.7, 6.0, (3, frames), rng)}
    if name == "butterworth":
        return {"center_freq": sweep(600.0, 6000.0, (3, frames)), "bandwidth": random_frames(100.0, 800.0, (1, frames), rng)}
    raw = torch.from_numpy(rng.normal(size=(3, frames, 2, 2)))
    return {"sos": bank.sections_from_raw(bank.numerators.detach()[:, None], raw)}


def frames_of_chunk(values, start, stop):
    """The frames ``start / HOP`` through ``ceil(stop / HOP)`` (where it exists)."""
    first, last = start // HOP, -(-stop // HOP)
    core = 2 if "sos" in values else 0
    return {key: value.narrow(value.dim() - 1 - core, first, min(last + 1, value.shape[-1 - core]) - first)
            for key, value in values.items()}


@pytest.mark.parametrize("length", [LENGTH, LENGTH - 7], ids=["whole-hops", "ragged-end"])
@pytest.mark.parametrize("name", list(BANKS))
def test_streaming_chunks_equal_one_call(name, length, rng):
    bank = BANKS[name]()
    waveform = torch.from_numpy(rng.normal(size=(2, length)))
    values = frame_values(name, bank, length, rng)
    whole, whole_state = bank.forward_with_state(waveform, None, **values, hop_length=HOP)
    pieces, state = [], None
    for start, stop in [(0, HOP), (HOP, 5 * HOP), (5 * HOP, 6 * HOP), (6 * HOP, length)]:
        piece, state = bank.forward_with_state(
            waveform[..., start:stop], state, **frames_of_chunk(values, start, stop), hop_length=HOP
        )
        pieces.append(piece)
    torch.testing.assert_close(torch.cat(pieces, -1), whole, rtol=0, atol=1e-10)
    torch.testing.assert_close(state, whole_state, rtol=0, atol=1e-10)


# --- TorchScript --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["biquad", "sos"])
def test_scripted_module_with_frames_equals_eager(name, rng):
    bank = BANKS[name](dtype=torch.float32)
    scripted = torch.jit.script(bank)
    waveform = torch.from_numpy(rng.normal(size=(2, 120))).float()
    values = frame_values(name, bank, 120, rng)
    values = {key: value.float() for key, value in values.items()}
    if name == "biquad":
        eager = bank(waveform, values["center_freq"], values["q"], None, HOP)
        actual = scripted(waveform, values["center_freq"], values["q"], None, HOP)
        state_eager = bank.forward_with_state(waveform, None, values["center_freq"], values["q"], None, HOP)
        state_scripted = scripted.forward_with_state(waveform, None, values["center_freq"], values["q"], None, HOP)
    else:
        eager = bank(waveform, values["sos"], HOP)
        actual = scripted(waveform, values["sos"], HOP)
        state_eager = bank.forward_with_state(waveform, None, values["sos"], HOP)
        state_scripted = scripted.forward_with_state(waveform, None, values["sos"], HOP)
    torch.testing.assert_close(actual, eager, rtol=1e-5, atol=1e-6)
    for actual_part, eager_part in zip(state_scripted, state_eager):
        torch.testing.assert_close(actual_part, eager_part, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scripted(waveform), bank(waveform), rtol=1e-5, atol=1e-6)


# --- stability and precision --------------------------------------------------------------------


def test_frames_jumping_between_the_range_ends_stay_stable():
    """Frames alternating between the lowest and highest frequency at the largest ``Q``:
    every frame's biquad and every interpolated step is stable."""
    bank = biquad_bank("bandpass", n_filters=1, dtype=torch.float32)
    nyquist = SAMPLE_RATE / 2
    ends = torch.tensor([bank.FREQUENCY_MARGIN * nyquist, (1 - bank.FREQUENCY_MARGIN) * nyquist])
    centre = ends.repeat(100)[None]  # (1, 200) frames
    q = torch.full((1, 1), bank.Q_MAX)
    y = bank(torch.randn(1, 200 * 32), center_freq=centre, q=q, hop_length=32)
    assert bool(y.isfinite().all()) and y.abs().max() < 1e4


def test_half_precision_values_are_widened():
    """Half values go with a float32 bank; a half bank designs in float32 (as without frames)."""
    bank = biquad_bank("bandpass", dtype=torch.float32)
    centre = sweep(300.0, 3000.0, (3, 8), dtype=torch.float32).half()
    waveform = torch.randn(1, 100)
    expected = bank(waveform, centre.float(), hop_length=16)
    torch.testing.assert_close(bank(waveform, center_freq=centre, hop_length=16), expected)
    half_bank = bank.half()
    actual = half_bank(waveform.half(), center_freq=centre, hop_length=16)
    assert actual.dtype == torch.float16
    torch.testing.assert_close(actual.float(), expected, rtol=1e-2, atol=1e-2)


# --- bad input ----------------------------------------------------------------------------------


def _biquad(kind="peaking"):
    return biquad_bank(kind, dtype=torch.float32)


def _sos():
    return sos_bank(torch.float32)


def _band():
    return band_butterworth(torch.float32)


X = torch.randn(2, 100)  # 100 samples: 7 frames of hop 16 cover it
CENTRE = torch.full((3, 7), 1000.0)
SECTIONS = torch.tensor([0.2, 0.4, 0.2, 1.0, -0.6, 0.3]).expand(3, 7, 2, 6)

BAD_INPUTS = [
    ("no hop_length", ValueError, "expected hop_length .* with frame-rate center_freq, got None",
     lambda: _biquad()(X, center_freq=CENTRE)),
    ("hop_length alone", ValueError, "expected hop_length=None without frame-rate values",
     lambda: _biquad()(X, hop_length=16)),
    ("hop_length 0", ValueError, "expected hop_length >= 1, got 0",
     lambda: _biquad()(X, center_freq=CENTRE, hop_length=0)),
    ("hop_length float", TypeError, "expected hop_length to be an int, got float",
     lambda: _biquad()(X, center_freq=CENTRE, hop_length=16.0)),
    ("wrong C", ValueError, r"expected q of shape \(..., C, F\) with C = 3 \(or 1\), got \[4, 7\]",
     lambda: _biquad()(X, q=torch.ones(4, 7), hop_length=16)),
    ("no frame axis", ValueError, r"expected center_freq of shape \(..., C, F\) with C = 3 \(or 1\), got \[3\]",
     lambda: _biquad()(X, center_freq=torch.full((3,), 1000.0), hop_length=16)),
    ("too few frames", ValueError, r"at least ceil\(T / hop_length\) = 7 frames for T = 100 and hop_length = 16, got 5",
     lambda: _biquad()(X, center_freq=CENTRE[:, :5], hop_length=16)),
    ("frames disagree", ValueError, "expected one number of frames .* got 7 in center_freq and 8 in q",
     lambda: _biquad()(X, center_freq=CENTRE, q=torch.ones(3, 8), hop_length=16)),
    ("leading dims disagree", ValueError, r"leading dims .* broadcast, got center_freq \[2, 3, 7\], q \[5, 3, 7\]",
     lambda: _biquad()(X, center_freq=CENTRE.expand(2, 3, 7), q=torch.ones(5, 3, 7), hop_length=16)),
    ("leading dims against the waveform", ValueError, r"broadcast with the waveform's, got waveform \[2, 100\]",
     lambda: _biquad()(X, center_freq=CENTRE.expand(5, 3, 7), hop_length=16)),
    ("dtype", TypeError, "expected center_freq of the bank's dtype torch.float32, got torch.float64",
     lambda: _biquad()(X, center_freq=CENTRE.double(), hop_length=16)),
    ("frequency above the range", ValueError, r"expected 4 <= center_freq <= 7996 Hz at every frame .* got \[9000.0\]",
     lambda: _biquad()(X, center_freq=CENTRE.index_put((torch.tensor([1]), torch.tensor([2])), torch.tensor(9000.0)), hop_length=16)),
    ("q outside the range", ValueError, r"expected 0.05 <= q <= 100 at every frame",
     lambda: _biquad()(X, q=torch.zeros(3, 7), hop_length=16)),
    ("gain outside the range", ValueError, r"expected -30 <= gain_db <= 30 dB",
     lambda: _biquad()(X, gain_db=torch.full((3, 7), 40.0), hop_length=16)),
    ("gain for a band-pass", ValueError, "expected gain_db=None for kind 'bandpass'",
     lambda: _biquad("bandpass")(X, gain_db=torch.zeros(3, 7), hop_length=16)),
    ("sos without hop_length", ValueError, "expected hop_length .* with frame-rate sos, got None",
     lambda: _sos()(X, SECTIONS)),
    ("sos sections", ValueError, r"expected sos of shape \(..., C, F, S, 6\) with S = 2 .* got \[3, 7, 1, 6\]",
     lambda: _sos()(X, SECTIONS[:, :, :1], 16)),
    ("sos filters", ValueError, r"expected sos of shape \(..., C, F, S, 6\) with C = 3 \(or 1\), got \[2, 7, 2, 6\]",
     lambda: _sos()(X, SECTIONS[:2], 16)),
    ("sos unstable", ValueError, r"expected every frame's sections with poles inside the unit circle",
     lambda: _sos()(X, SECTIONS.clone().index_fill_(1, torch.tensor([3]), 1.5), 16)),
    ("butterworth no hop_length", ValueError, "with frame-rate center_freq, bandwidth, got None",
     lambda: _band()(X, CENTRE, torch.full((3, 7), 100.0))),
    ("butterworth band outside", ValueError, r"expected 0.0005 <= bandwidth / \(2 min\(center_freq, Nyquist - center_freq\)\)",
     lambda: _band()(X, CENTRE, torch.full((3, 7), 2500.0), 16)),
    ("bandwidth of a low-pass", ValueError, "expected bandwidth=None for kind 'lowpass'",
     lambda: low_butterworth(torch.float32)(X, bandwidth=torch.full((3, 7), 100.0), hop_length=16)),
]


@pytest.mark.parametrize("error, message, call", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_a_clear_error(error, message, call):
    with pytest.raises(error, match=message):
        call()
