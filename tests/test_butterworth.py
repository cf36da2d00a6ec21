"""Butterworth design (butter_sos), steady states of cascades (sosfilt_zi_bank),
zero-phase cascades (sosfiltfilt_bank) and the learnable ButterworthFilterBank, against
scipy."""
import numpy as np
import pytest
import scipy.signal
import torch
from torch.autograd import gradcheck, gradgradcheck

from multi_lfilter import ButterworthFilterBank, CascadeFilterBank, SOSFilterBank, sosfilt_bank, sosfilt_zi_bank, sosfiltfilt_bank
from multi_lfilter.design import butter_sos

DESIGNS = [
    ("lowpass", 0.1),
    ("highpass", 0.3),
    ("bandpass", [0.1, 0.25]),
    ("bandstop", [0.2, 0.5]),
    ("lowpass", 0.95),
    ("bandpass", [0.002, 0.004]),  # narrow and low: poles within 1e-3 of the unit circle
]


def response(sos, n_freqs=4096):
    _, values = scipy.signal.sosfreqz(np.asarray(sos), worN=n_freqs)
    return values


@pytest.mark.parametrize("order", range(1, 11))
@pytest.mark.parametrize("btype, cutoff", DESIGNS, ids=[f"{kind}-{cut}" for kind, cut in DESIGNS])
def test_butter_sos_has_scipys_frequency_response(order, btype, cutoff):
    expected = scipy.signal.butter(order, cutoff, btype=btype, output="sos")
    sos = butter_sos(order, torch.tensor(cutoff, dtype=torch.float64), btype)
    assert sos.shape == expected.shape and sos.dtype == torch.float64
    reference = response(expected)
    np.testing.assert_allclose(response(sos.numpy()), reference, rtol=0, atol=1e-8 * np.abs(reference).max())
    # Each section is stable and normalised, as scipy's are.
    assert (sos[..., 3] == 1).all()
    for section in sos.numpy():
        assert np.abs(np.roots(section[3:])).max() < 1


def test_butter_sos_orders_sections_with_the_poles_nearest_the_unit_circle_last():
    sos = butter_sos(6, torch.tensor(0.2, dtype=torch.float64))
    radii = [np.abs(np.roots(section[3:])).max() for section in sos.numpy()]
    assert radii == sorted(radii)
    odd = butter_sos(5, torch.tensor(0.2, dtype=torch.float64))
    assert odd[0, 2] == 0 and odd[0, 5] == 0 and (odd[1:, 5] != 0).all()  # the first-order section first


def test_butter_sos_takes_sample_rates_scipy_names_and_banks():
    expected = scipy.signal.butter(4, [300.0, 600.0], btype="band", fs=16000, output="sos")
    sos = butter_sos(4, torch.tensor([300.0, 600.0], dtype=torch.float64), "band", sample_rate=16000)
    np.testing.assert_allclose(response(sos.numpy()), response(expected), rtol=0, atol=1e-10)
    edges = torch.tensor([[[300.0, 600.0], [1000.0, 2000.0], [2000.0, 4000.0]]], dtype=torch.float64)
    bank = butter_sos(3, edges, "bandpass", sample_rate=16000)
    assert bank.shape == (1, 3, 3, 6)
    for i in range(3):
        expected = scipy.signal.butter(3, edges[0, i].numpy(), btype="bandpass", fs=16000, output="sos")
        np.testing.assert_allclose(response(bank[0, i].numpy()), response(expected), rtol=0, atol=1e-10)
    assert butter_sos(2, 0.3).dtype == torch.get_default_dtype()
    assert butter_sos(2, torch.tensor([0.3, 0.4])).dtype == torch.float32


def test_butter_sos_is_differentiable_in_its_cutoffs():
    edges = torch.tensor([[0.1, 0.3], [0.2, 0.25]], dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda e: butter_sos(3, e, "bandpass"), (edges,))
    assert gradgradcheck(lambda e: butter_sos(2, e, "bandstop"), (edges,))
    cutoff = torch.tensor([0.1, 0.7], dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda c: butter_sos(5, c, "lowpass"), (cutoff,))
    assert gradcheck(lambda c: butter_sos(4, c, "highpass"), (cutoff,))


def test_gradients_flow_from_a_filtered_signal_to_the_band_edges(rng):
    edges = torch.tensor([0.1, 0.2], dtype=torch.float64, requires_grad=True)
    waveform = torch.from_numpy(rng.normal(size=(2, 40)))
    assert gradcheck(lambda e: sosfilt_bank(waveform, butter_sos(2, e, "bandpass")), (edges,))


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        ((0, 0.2), ValueError, "expected order >= 1"),
        ((2.0, 0.2), TypeError, "expected order to be an int"),
        ((2, 0.2, "allpass"), ValueError, "expected btype to be one of"),
        ((2, 1.2), ValueError, "strictly between 0 and Nyquist"),
        ((2, 0.0), ValueError, "strictly between 0 and Nyquist"),
        ((2, 0.2, "bandpass"), ValueError, r"expected cutoff of shape \(..., 2\)"),
        ((2, [0.3, 0.2], "bandpass"), ValueError, "low < high"),
        ((2, 0.2, "lowpass", -1.0), ValueError, "expected sample_rate > 0"),
        ((2, torch.tensor(0.2 + 0.1j)), TypeError, "expected cutoff to be real"),
    ],
)
def test_butter_sos_errors(arguments, error, message):
    with pytest.raises(error, match=message):
        butter_sos(*arguments)


SCIPY_CASCADES = [
    scipy.signal.butter(3, 0.2, output="sos"),
    scipy.signal.butter(4, [0.1, 0.3], btype="bandpass", output="sos"),
    scipy.signal.cheby1(5, 1.0, 0.4, btype="highpass", output="sos"),
    scipy.signal.ellip(4, 0.5, 40, [0.2, 0.3], btype="bandstop", output="sos"),
]


@pytest.mark.parametrize("sos", SCIPY_CASCADES, ids=["butter3", "butter-band4", "cheby5", "ellip-stop4"])
def test_sosfilt_zi_matches_scipy(sos):
    np.testing.assert_allclose(sosfilt_zi_bank(torch.from_numpy(sos)).numpy(), scipy.signal.sosfilt_zi(sos), rtol=1e-12, atol=1e-13)


def test_sosfilt_zi_broadcasts_and_is_differentiable():
    sos = torch.from_numpy(np.stack(SCIPY_CASCADES[:2][0:1] * 3))  # (3, 2, 6)
    assert sosfilt_zi_bank(sos).shape == (3, 2, 2)
    leaf = torch.from_numpy(SCIPY_CASCADES[1]).requires_grad_(True)
    assert gradcheck(sosfilt_zi_bank, (leaf,))


@pytest.mark.parametrize("sos", SCIPY_CASCADES, ids=["butter3", "butter-band4", "cheby5", "ellip-stop4"])
@pytest.mark.parametrize("padlen", [None, 0, 7])
def test_sosfiltfilt_matches_scipy(sos, padlen, rng, backend):
    waveform = rng.normal(size=(2, 300))
    expected = scipy.signal.sosfiltfilt(sos, waveform, padlen=padlen)
    result = sosfiltfilt_bank(torch.from_numpy(waveform), torch.from_numpy(sos), padlen, backend=backend)
    np.testing.assert_allclose(result.numpy(), expected, rtol=0, atol=1e-9 * np.abs(expected).max())


def test_sosfiltfilt_runs_a_bank_and_differentiates(rng):
    sos = butter_sos(2, torch.tensor([[0.1, 0.2], [0.3, 0.45]], dtype=torch.float64), "bandpass")
    waveform = torch.from_numpy(rng.normal(size=(3, 1, 100)))
    result = sosfiltfilt_bank(waveform, sos)
    assert result.shape == (3, 2, 100)
    for i in range(2):
        expected = scipy.signal.sosfiltfilt(sos[i].numpy(), waveform[:, 0].numpy())
        np.testing.assert_allclose(result[:, i].numpy(), expected, rtol=0, atol=1e-12)
    leaf = sos[:1].clone().requires_grad_(True)
    short = waveform[:1, :, :40].clone().requires_grad_(True)
    assert gradcheck(lambda x, s: sosfiltfilt_bank(x, s), (short, leaf))


def test_sosfiltfilt_and_sosfilt_zi_script_and_match_eager(rng):
    sos = torch.from_numpy(SCIPY_CASCADES[1])
    waveform = torch.from_numpy(rng.normal(size=(2, 200)))
    torch.testing.assert_close(torch.jit.script(sosfiltfilt_bank)(waveform, sos), sosfiltfilt_bank(waveform, sos))
    torch.testing.assert_close(torch.jit.script(sosfilt_zi_bank)(sos), sosfilt_zi_bank(sos))


def test_sosfiltfilt_errors():
    sos = torch.from_numpy(SCIPY_CASCADES[0])  # default padding 12
    with pytest.raises(ValueError, match="longer than the padding of 12 samples"):
        sosfiltfilt_bank(torch.zeros(12), sos)
    with pytest.raises(ValueError, match="expected padlen >= 0"):
        sosfiltfilt_bank(torch.zeros(50, dtype=torch.float64), sos, padlen=-1)
    mixed = torch.stack([sos, torch.from_numpy(scipy.signal.butter(4, 0.2, output="sos"))])
    with pytest.raises(ValueError, match="same number of first-order sections"):
        sosfiltfilt_bank(torch.zeros(100, dtype=torch.float64), mixed)
    assert sosfiltfilt_bank(torch.zeros(100, dtype=torch.float64), mixed, padlen=12).shape == (2, 100)


def test_the_butterworth_bank_designs_scipys_filters_and_learns():
    centre = torch.tensor([400.0, 1000.0, 3000.0])
    width = torch.tensor([200.0, 400.0, 1500.0])
    bank = SOSFilterBank.butterworth(2, 16000, centre, width, dtype=torch.float64)
    assert isinstance(bank, ButterworthFilterBank) and isinstance(bank, CascadeFilterBank)
    assert not isinstance(bank, SOSFilterBank)  # siblings: its sections are designed, not stored
    torch.testing.assert_close(bank.center_freq, centre.double())
    torch.testing.assert_close(bank.bandwidth, width.double())
    for i in range(3):
        edges = [centre[i].item() - width[i].item() / 2, centre[i].item() + width[i].item() / 2]
        expected = scipy.signal.butter(2, edges, btype="bandpass", fs=16000, output="sos")
        freqs, values = bank.frequency_response(1024, sample_rate=16000.0)
        assert freqs.shape == (1024,) and values.shape == (3, 1024)
        np.testing.assert_allclose(values[i].detach().numpy(), response(expected, 1024), rtol=0, atol=1e-10)
    # Learning moves the frequencies; the filters stay stable whatever the parameters.
    waveform = torch.randn(2, 2000, dtype=torch.float64)
    bank(waveform).square().mean().backward()
    assert bank.raw_center_freq.grad.abs().sum() > 0 and bank.raw_bandwidth.grad.abs().sum() > 0
    with torch.no_grad():
        bank.raw_center_freq.copy_(torch.tensor([-1e4, 0.0, 1e4]))
        bank.raw_bandwidth.copy_(torch.tensor([1e4, -1e4, 30.0]))
    poles = [np.abs(np.roots(section[3:])).max() for section in bank.sos().detach().double().numpy().reshape(-1, 6)]
    assert max(poles) < 1


def test_butterworth_low_and_high_pass_banks_and_errors():
    bank = ButterworthFilterBank(3, 16000, torch.tensor([500.0, 4000.0]), kind="lowpass", learnable=False)
    assert bank.sos().shape == (2, 2, 6) and bank.bandwidth is None and not list(bank.parameters())
    expected = scipy.signal.butter(3, 4000.0, fs=16000, output="sos")
    np.testing.assert_allclose(response(bank.sos()[1].double().numpy()), response(expected), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="expected a bandwidth"):
        ButterworthFilterBank(2, 16000, torch.tensor([500.0]))
    with pytest.raises(ValueError, match="expected bandwidth=None"):
        ButterworthFilterBank(2, 16000, torch.tensor([500.0]), torch.tensor([100.0]), kind="lowpass")
    with pytest.raises(ValueError, match="every band inside"):
        ButterworthFilterBank(2, 16000, torch.tensor([500.0]), torch.tensor([1200.0]))
    with pytest.raises(ValueError, match="center_freq <"):
        ButterworthFilterBank(2, 16000, torch.tensor([9000.0]), torch.tensor([100.0]))
    with pytest.raises(ValueError, match="expected kind"):
        ButterworthFilterBank(2, 16000, torch.tensor([500.0]), torch.tensor([100.0]), kind="peaking")


@pytest.mark.slow
def test_the_butterworth_bank_compiles_and_exports():
    """Its design (complex arithmetic in torch ops) traces with the filter: torch.compile
    in one graph, torch.export to standard ops at any length."""
    bank = ButterworthFilterBank(2, 16000, torch.tensor([300.0, 1000.0]), torch.tensor([100.0, 300.0]))
    waveform = torch.randn(2, 4000)
    expected = bank(waveform)
    torch.testing.assert_close(torch.compile(bank, fullgraph=True)(waveform), expected)
    dims = {"waveform": {0: torch.export.Dim("batch"), 1: torch.export.Dim("time", min=2, max=2**24)}}
    program = torch.export.export(bank, (waveform,), dynamic_shapes=dims)
    assert not [node for node in program.graph.nodes if "multi_lfilter" in str(node.target)]
    longer = torch.randn(3, 7000)
    torch.testing.assert_close(program.module()(longer), bank(longer), rtol=1e-5, atol=1e-6)
