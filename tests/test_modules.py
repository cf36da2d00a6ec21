"""The nn.Module front-ends: delegation, stability, gradients, state, scripting, state_dict."""
import numpy as np
import pytest
import scipy.signal
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.func import functional_call

from multi_lfilter import (
    BiquadFilterBank,
    ButterworthFilterBank,
    LFilterBank,
    SOSFilterBank,
    freqz_bank,
    lfilter_bank,
    sosfilt_bank,
)
from multi_lfilter.design import BIQUAD_KINDS, biquad_coeffs, center_frequencies

from helpers import random_filter_bank

GAIN_KINDS = ("peaking", "lowshelf", "highshelf")


def butterworth_bank(n_filters=3, order=4, dtype=torch.float64):
    """``(C, S, 6)``: band-passes over neighbouring bands (scipy's design)."""
    bands = [(0.05 + 0.1 * c, 0.1 + 0.1 * c) for c in range(n_filters)]
    sos = [scipy.signal.butter(order, band, btype="bandpass", output="sos") for band in bands]
    return torch.from_numpy(np.stack(sos)).to(dtype)


def make_module(name, dtype=torch.float64, learnable=True, rng=None):
    """One configured Module of each kind, in ``dtype``."""
    if name == "lfilter":
        a, b = random_filter_bank(3, n_filters=5, rng=rng or np.random.default_rng(1), max_radius=0.95)
        return LFilterBank(a.to(dtype), b.to(dtype), learnable=learnable)
    if name == "sos":
        return SOSFilterBank(butterworth_bank(dtype=dtype), learnable=learnable)
    kind = name.split(":")[1]
    gain = 6.0 if kind in GAIN_KINDS else 0.0
    return BiquadFilterBank(6, 16000, kind=kind, f_min=100.0, f_max=6000.0, q=2.0, gain_db=gain, learnable=learnable, dtype=dtype)


MODULES = ["lfilter", "sos"] + [f"biquad:{kind}" for kind in BIQUAD_KINDS]


def perturb_(module, rng, scale=0.3):
    """Move every parameter/buffer a little, as training would."""
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            tensor.add_(scale * torch.from_numpy(rng.normal(size=tuple(tensor.shape))).to(tensor.dtype) * 0.1)


# --- delegation to the functional API ----------------------------------------------------


def test_lfilter_bank_module_is_lfilter_bank(rng):
    module = make_module("lfilter")
    waveform = torch.from_numpy(rng.normal(size=(2, 3, 500)))
    expected = lfilter_bank(waveform.unsqueeze(-2), module.a_coeffs, module.b_coeffs)
    torch.testing.assert_close(module(waveform), expected, rtol=0, atol=0)
    assert module(waveform).shape == (2, 3, 5, 500)
    assert module(waveform[0, 0]).shape == (5, 500)


@pytest.mark.parametrize("kind", BIQUAD_KINDS)
def test_biquad_bank_designs_cookbook_filters(kind):
    gain = torch.linspace(-12.0, 12.0, 6, dtype=torch.float64) if kind in GAIN_KINDS else 0.0
    q = torch.linspace(0.5, 8.0, 6, dtype=torch.float64)
    module = BiquadFilterBank(6, 22050, kind=kind, f_min=50.0, f_max=9000.0, scale="erb", q=q, gain_db=gain, dtype=torch.float64)
    expected_freqs = center_frequencies(6, 50.0, 9000.0, "erb", dtype=torch.float64)
    torch.testing.assert_close(module.center_freq.detach(), expected_freqs, rtol=1e-12, atol=0)
    torch.testing.assert_close(module.q.detach(), q, rtol=1e-12, atol=0)
    torch.testing.assert_close(module.gain_db.detach(), torch.as_tensor(gain, dtype=torch.float64).expand(6), rtol=0, atol=1e-12)
    b, a = module.coefficients()
    b_expected, a_expected = biquad_coeffs(kind, 22050, expected_freqs, q, gain)
    torch.testing.assert_close(b.detach(), b_expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(a.detach(), a_expected, rtol=0, atol=1e-12)

    freqs, response = module.frequency_response(256)
    expected_response = freqz_bank(a_coeffs=a_expected, b_coeffs=b_expected, n_freqs=256)[1]
    torch.testing.assert_close(freqs, torch.arange(256, dtype=torch.float64) * 22050 / 512)
    torch.testing.assert_close(response.detach(), expected_response, rtol=0, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_sos_bank_matches_scipy_sosfilt(dtype, rng):
    sos = butterworth_bank()
    module = SOSFilterBank(sos.to(dtype))
    waveform = rng.normal(size=(2, 3000))
    y = module(torch.from_numpy(waveform).to(dtype)).detach().double().numpy()
    for c in range(3):
        expected = scipy.signal.sosfilt(sos[c].numpy(), waveform)
        # float32: the sections are rounded once and re-derived through tanh/atanh.
        tolerance = 1e-10 if dtype == torch.float64 else 2e-4
        np.testing.assert_allclose(y[:, c], expected, rtol=0, atol=tolerance * np.abs(expected).max())
    torch.testing.assert_close(module.sos().detach(), sos.to(dtype), rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-7)

    freqs, response = module.frequency_response(128, sample_rate=2.0)
    for c in range(3):
        expected_freqs, expected_response = scipy.signal.sosfreqz(sos[c].numpy(), worN=128, fs=2.0)
        np.testing.assert_allclose(freqs.numpy(), expected_freqs, rtol=1e-6)
        np.testing.assert_allclose(response[c].detach().numpy(), expected_response, rtol=0, atol=1e-4 if dtype == torch.float32 else 1e-10)


def test_sos_bank_normalises_a0():
    sos = butterworth_bank(n_filters=1)
    scaled = sos.clone()
    scaled[..., :] *= 2.5  # same filter, a0 = 2.5
    waveform = torch.randn(2, 400, dtype=torch.float64)
    torch.testing.assert_close(SOSFilterBank(scaled)(waveform), sosfilt_bank(waveform.unsqueeze(-2), sos), rtol=0, atol=1e-10)


# --- stability whatever the parameters -----------------------------------------------------


def pole_radii(a_coeffs):
    """Largest root modulus of each ``(..., 3)`` denominator, in float64."""
    a = a_coeffs.detach().double().reshape(-1, 3).numpy()
    return np.array([np.abs(np.roots(row)).max() for row in a])


EXTREMES = [1e30, -1e30, float("inf"), -float("inf"), 40.0, -40.0, 0.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kind", BIQUAD_KINDS)
def test_biquad_bank_is_stable_for_any_parameter_values(kind, dtype, rng):
    module = BiquadFilterBank(len(EXTREMES) ** 3 + 500, 48000, kind=kind, dtype=dtype)
    extremes = torch.tensor(EXTREMES, dtype=dtype)
    with torch.no_grad():
        grid = torch.cartesian_prod(extremes, extremes, extremes)  # every combination of extremes
        scales = torch.tensor([1.0, 10.0, 1e3, 1e6], dtype=dtype)
        for index, parameter in enumerate([module.raw_center_freq, module.raw_q, module.raw_gain_db]):
            if parameter is None:
                continue
            random = torch.from_numpy(rng.normal(size=500)).to(dtype) * scales[torch.from_numpy(rng.integers(0, 4, 500))]
            parameter.copy_(torch.cat([grid[:, index], random]))
    _, a = module.coefficients()
    assert torch.isfinite(a).all()
    assert pole_radii(a).max() < 1
    frequencies = module.center_freq.detach()
    assert (frequencies > 0).all() and (frequencies < 24000).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_sos_bank_is_stable_for_any_parameter_values(dtype, rng):
    module = SOSFilterBank(butterworth_bank(n_filters=1, order=2).expand(2000, 2, 6).to(dtype))
    extremes = torch.tensor(EXTREMES, dtype=dtype)
    with torch.no_grad():
        grid = torch.cartesian_prod(extremes, extremes)
        raw = torch.from_numpy(rng.normal(size=(2000 * 2 - len(grid), 2))).to(dtype) * 10.0 ** torch.from_numpy(rng.integers(0, 7, (2000 * 2 - len(grid), 1))).to(dtype)
        module.raw_denominators.copy_(torch.cat([grid, raw]).reshape(2000, 2, 2))
    sections = module.sos()
    assert torch.isfinite(sections).all()
    assert pole_radii(sections[..., 3:]).max() < 1


def test_sos_bank_rejects_unstable_sections():
    sos = butterworth_bank(n_filters=2, order=2)
    sos[1, 0, 3:] = torch.tensor([1.0, -1.5, 1.2], dtype=torch.float64)  # poles at radius 1.1
    with pytest.raises(ValueError, match=r"poles inside the unit circle .* got filter 1 section 0 with a = \[1.0, -1.5, 1.2\]"):
        SOSFilterBank(sos)


# --- gradients -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODULES)
def test_gradients_reach_every_parameter(name, rng):
    module = make_module(name, dtype=torch.float32)
    waveform = torch.randn(2, 800)
    module(waveform).square().mean().backward()
    for parameter_name, parameter in module.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name
        assert (parameter.grad != 0).any(), parameter_name


@pytest.mark.parametrize("name", MODULES)
def test_gradcheck_through_design_and_filter(name, rng):
    module = make_module(name, dtype=torch.float64)
    names = [parameter_name for parameter_name, _ in module.named_parameters()]
    values = tuple(parameter.detach().clone().requires_grad_(True) for _, parameter in module.named_parameters())
    waveform = torch.from_numpy(rng.normal(size=(2, 40))).requires_grad_(True)

    def filtered(waveform, *values):
        return functional_call(module, dict(zip(names, values)), (waveform,))

    assert gradcheck(filtered, (waveform,) + values)
    assert gradgradcheck(filtered, (waveform,) + values)


# --- state, streaming, scripting, state_dict -------------------------------------------------


@pytest.mark.parametrize("name", MODULES)
def test_streaming_equals_whole(name, rng):
    module = make_module(name)
    waveform = torch.from_numpy(rng.normal(size=(2, 1000)))
    whole, whole_state = module.forward_with_state(waveform)
    pieces, state = [], None
    for start, stop in [(0, 1), (1, 300), (300, 301), (301, 812), (812, 1000)]:
        piece, state = module.forward_with_state(waveform[..., start:stop], state)
        pieces.append(piece)
    torch.testing.assert_close(torch.cat(pieces, -1), whole, rtol=0, atol=1e-10)
    torch.testing.assert_close(state, whole_state, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", MODULES)
def test_scripted_module_matches_eager(name, rng):
    module = make_module(name, dtype=torch.float32)
    scripted = torch.jit.script(module)
    waveform = torch.randn(3, 1500)
    zi = torch.randn(module.forward_with_state(waveform[:, :1])[1].shape)
    torch.testing.assert_close(scripted(waveform), module(waveform), rtol=1e-6, atol=1e-6)
    # Eager runs a cascade in one pass in float64; TorchScript section by section, each
    # rounded to float32: with random states (outputs in the thousands) they differ by
    # float32 rounding of the peak.
    for actual, expected in zip(scripted.forward_with_state(waveform, zi), module.forward_with_state(waveform, zi)):
        torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-7 * expected.abs().max().item())
    if isinstance(module, BiquadFilterBank):
        for actual, expected in zip(scripted.coefficients(), module.coefficients()):
            torch.testing.assert_close(actual, expected)
        torch.testing.assert_close(scripted.frequency_response(64)[1], module.frequency_response(64)[1])


@pytest.mark.parametrize("learnable", [True, False], ids=["learnable", "fixed"])
@pytest.mark.parametrize("name", MODULES)
def test_state_dict_round_trip(name, learnable, rng):
    trained = make_module(name, learnable=learnable)
    perturb_(trained, rng)
    fresh = make_module(name, learnable=learnable)
    waveform = torch.from_numpy(rng.normal(size=(2, 300)))
    assert not torch.allclose(fresh(waveform), trained(waveform))
    fresh.load_state_dict(trained.state_dict())
    torch.testing.assert_close(fresh(waveform), trained(waveform), rtol=0, atol=0)
    assert (len(list(trained.parameters())) > 0) == learnable


@pytest.mark.parametrize(
    "module, text",
    [
        (make_module("lfilter"), "LFilterBank(n_filters=5, order=3, learnable=True)"),
        (SOSFilterBank(butterworth_bank(), learnable=False, backend="loop"), "SOSFilterBank(n_filters=3, n_sections=4, learnable=False, backend='loop')"),
        (BiquadFilterBank(4, 8000, kind="lowshelf", f_min=100.0), "BiquadFilterBank(n_filters=4, sample_rate=8000.0, kind='lowshelf', learnable=True)"),
    ],
    ids=["lfilter", "sos", "biquad"],
)
def test_repr_shows_the_configuration(module, text):
    assert repr(module) == text


@pytest.mark.parametrize("backend", ["block", "loop"])
def test_modules_follow_dtype_and_backend(backend, rng, monkeypatch):
    """Every bank runs on the backend it was built with (counted where the kernels are
    called), forward and backward, and in its own dtype."""
    from multi_lfilter.backends.dispatch import REGISTRY

    calls = {}
    for entry in REGISTRY:
        for kernel in ("forward", "adjoint", "cascade_forward", "cascade_adjoint"):
            if hasattr(entry.module, kernel):
                original = getattr(entry.module, kernel)

                def counted(*args, _name=entry.name, _original=original, **kwargs):
                    calls[_name] = calls.get(_name, 0) + 1
                    return _original(*args, **kwargs)

                monkeypatch.setattr(entry.module, kernel, counted)
    sos = torch.tensor([[[0.2, 0.4, 0.2, 1.0, -0.6, 0.3], [1.0, -1.0, 0.0, 1.0, -0.9, 0.0]]], dtype=torch.float64)
    banks = [
        BiquadFilterBank(4, 16000, backend=backend, dtype=torch.float64),
        LFilterBank(torch.tensor([[1.0, -0.9]], dtype=torch.float64), torch.tensor([[0.1]], dtype=torch.float64), backend=backend),
        SOSFilterBank(sos.repeat(3, 1, 1), backend=backend),
        ButterworthFilterBank(2, 16000, torch.tensor([500.0, 2000.0]), torch.tensor([200.0, 800.0]), backend=backend, dtype=torch.float64),
    ]
    waveform = torch.from_numpy(rng.normal(size=(2, 300)))
    for bank in banks:
        calls.clear()
        y = bank(waveform)
        assert y.dtype == torch.float64
        y.square().sum().backward()
        assert set(calls) == {backend} and calls[backend] >= 2, (type(bank).__name__, calls)
    module = banks[0]
    expected = lfilter_bank(waveform.unsqueeze(-2), module.coefficients()[1], module.coefficients()[0], backend="loop")
    torch.testing.assert_close(module(waveform), expected, rtol=0, atol=1e-10)


def test_biquad_bank_from_explicit_center_frequencies():
    freqs = torch.tensor([300.0, 125.0, 4000.0], dtype=torch.float64)
    bank = BiquadFilterBank(3, 16000, kind="lowpass", center_freq=freqs, dtype=torch.float64)
    torch.testing.assert_close(bank.center_freq.detach(), freqs, rtol=1e-12, atol=0)


def test_single_filter_bank_uses_f_min():
    assert BiquadFilterBank(1, 16000, f_min=440.0, f_max=880.0).center_freq.item() == pytest.approx(440.0, rel=1e-6)


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: BiquadFilterBank(4, 16000, kind="bandstop"), ValueError, r"expected kind to be one of \['lowpass'"),
        (lambda: BiquadFilterBank(0, 16000), ValueError, "expected n_filters >= 1, got 0"),
        (lambda: BiquadFilterBank(4, 0), ValueError, "expected sample_rate > 0, got 0"),
        (lambda: BiquadFilterBank(4, 16000, f_min=0.0), ValueError, r"expected 4 < f_min < f_max < 7996 Hz at sample_rate 16000, got f_min=0.0"),
        (lambda: BiquadFilterBank(4, 16000, f_max=8000.0), ValueError, r"got f_min=40.0, f_max=8000.0"),
        (lambda: BiquadFilterBank(4, 16000, f_min=500.0, f_max=400.0), ValueError, "f_min < f_max"),
        (lambda: BiquadFilterBank(4, 16000, scale="bark"), ValueError, "expected scale to be one of"),
        (lambda: BiquadFilterBank(4, 16000, q=500.0), ValueError, r"expected 0.05 < q < 100, got \[500.0\]"),
        (lambda: BiquadFilterBank(4, 16000, q=torch.tensor([1.0, 200.0, 2.0, 0.0])), ValueError, r"expected 0.05 < q < 100, got \[200.0, 0.0\]"),
        (lambda: BiquadFilterBank(2, 16000, center_freq=torch.tensor([100.0, 8000.0])), ValueError, r"expected 4 < center_freq < 7996, got \[8000.0\]"),
        (lambda: BiquadFilterBank(3, 16000, center_freq=torch.tensor([100.0, 200.0])), ValueError, r"expected center_freq to be a number or of shape \(3,\), got \[2\]"),
        (lambda: BiquadFilterBank(4, 16000, q=torch.ones(3)), ValueError, r"expected q to be a number or of shape \(4,\), got \[3\]"),
        (lambda: BiquadFilterBank(4, 16000, kind="peaking", gain_db=45.0), ValueError, r"expected -30 < gain_db < 30, got \[45.0\]"),
        (lambda: BiquadFilterBank(4, 16000, gain_db=6.0), ValueError, r"expected gain_db = 0 for kind 'bandpass': only \['peaking', 'lowshelf', 'highshelf'\] have a gain"),
        (lambda: BiquadFilterBank(4, 16000, backend="cuda"), ValueError, r"expected backend to be one of \['auto', 'native', 'triton', 'block', 'loop', 'export'\], got 'cuda'"),
        (lambda: LFilterBank(torch.ones(3), torch.ones(1, 3)), ValueError, r"expected a_coeffs of shape \(C, Ka\), got \[3\]"),
        (lambda: LFilterBank([[1.0]], torch.ones(1, 3)), TypeError, "expected a_coeffs to be a torch.Tensor, got list"),
        (lambda: LFilterBank(torch.ones(2, 3, dtype=torch.int64), torch.ones(2, 3)), TypeError, "expected a_coeffs to be float32 or float64, got torch.int64"),
        (lambda: LFilterBank(torch.ones(2, 3), torch.ones(2, 3, dtype=torch.float64)), TypeError, "expected one dtype, got a_coeffs torch.float32, b_coeffs torch.float64"),
        (lambda: LFilterBank(torch.ones(2, 3), torch.ones(3, 3)), ValueError, r"same number of filters, got \[2, 3\] and \[3, 3\]"),
        (lambda: SOSFilterBank(torch.ones(2, 6)), ValueError, r"expected sos of shape \(C, S, 6\), got \[2, 6\]"),
        (lambda: SOSFilterBank(torch.ones(2, 1, 5)), ValueError, r"expected sos of shape \(C, S, 6\) with C, S >= 1, got \[2, 1, 5\]"),
        (lambda: SOSFilterBank(torch.tensor([[[1.0, 0, 0, 0, 0.1, 0]]])), ValueError, "expected a0 != 0 in every section"),
    ],
)
def test_bad_configuration_is_a_clear_error(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("name", ["lfilter", "sos", "biquad:bandpass"])
def test_scalar_input_is_a_clear_error(name):
    with pytest.raises(ValueError, match=r"expected waveform of shape \(\.\.\., T\), got a 0-dim tensor"):
        make_module(name)(torch.tensor(1.0, dtype=torch.float64))


def test_wrong_state_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="zi"):
        make_module("biquad:lowpass").forward_with_state(torch.randn(2, 100, dtype=torch.float64), torch.zeros(2, 6, 3, dtype=torch.float64))
