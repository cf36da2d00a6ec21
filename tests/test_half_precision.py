"""float16 and bfloat16: filtered in a wider type, returned in their own dtype."""
import pytest
import torch

from multi_lfilter import BiquadFilterBank, LFilterBank, SOSFilterBank, lfilter_bank, lfilter_bank_with_state, sosfilt_bank

from helpers import DEVICES, random_filter_bank

HALF = [torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("coefficient_dtype", ["same", torch.float32, torch.float64], ids=str)
def test_half_waveforms_are_the_wide_result_rounded_once(dtype, coefficient_dtype, rng, backend):
    a, b = random_filter_bank(2, n_filters=3, rng=rng, max_radius=0.95)
    wide = torch.float32 if coefficient_dtype != torch.float64 else torch.float64
    coefficients = dtype if coefficient_dtype == "same" else coefficient_dtype
    a, b = a.to(coefficients), b.to(coefficients)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 300))).to(dtype)
    zi = torch.from_numpy(rng.normal(size=(2, 3, 2))).to(dtype)
    y, zf = lfilter_bank_with_state(waveform, a_coeffs=a, b_coeffs=b, zi=zi, backend=backend)
    assert y.dtype == dtype and zf.dtype == dtype
    y_wide, zf_wide = lfilter_bank_with_state(waveform.to(wide), a_coeffs=a.to(wide), b_coeffs=b.to(wide), zi=zi.to(wide), backend=backend)
    torch.testing.assert_close(y, y_wide.to(dtype), rtol=0, atol=0)
    torch.testing.assert_close(zf, zf_wide.to(dtype), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_gradients_flow_back_in_the_inputs_dtypes(dtype, rng):
    a, b = random_filter_bank(2, n_filters=3, rng=rng, max_radius=0.9)
    a = a.float().requires_grad_(True)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 64))).to(dtype).requires_grad_(True)
    lfilter_bank(waveform, a_coeffs=a, b_coeffs=b.float()).float().square().sum().backward()
    assert waveform.grad.dtype == dtype and a.grad.dtype == torch.float32
    assert torch.isfinite(a.grad).all()


@pytest.mark.parametrize("convert", ["half", "bfloat16"])
def test_half_precision_modules_compute_their_coefficients_in_float32(convert, rng):
    """A ``.half()`` bank stores half parameters but maps them to coefficients (and
    their stability margins) in float32: the same filter as the float32 bank, up to the
    parameters' own rounding, and a half output."""
    sos = torch.tensor([[[0.2, 0.4, 0.2, 1.0, -1.6, 0.81]], [[0.1, 0.0, -0.1, 1.0, -1.2, 0.5]]])
    banks = [BiquadFilterBank(4, 16000, f_min=100.0, f_max=4000.0, q=2.0), LFilterBank(sos[:, 0, 3:], sos[:, 0, :3]), SOSFilterBank(sos)]
    waveform = torch.from_numpy(rng.normal(size=(2, 200))).float()
    for bank in banks:
        expected = bank(waveform)
        half_bank = getattr(bank, convert)()
        half_dtype = torch.float16 if convert == "half" else torch.bfloat16
        y = half_bank(waveform.to(half_dtype))
        assert y.dtype == half_dtype and torch.isfinite(y.float()).all()
        scale = expected.abs().max().item()
        assert (y.float() - expected).abs().max().item() < 0.05 * scale, type(bank).__name__


def test_sos_cascades_round_once_not_per_section(rng):
    sos = torch.tensor([[0.2, 0.4, 0.2, 1.0, -1.6, 0.81], [1.0, -1.0, 0.0, 1.0, -0.9, 0.0]])
    waveform = torch.from_numpy(rng.normal(size=(3, 100))).half()
    y = sosfilt_bank(waveform, sos)
    assert y.dtype == torch.float16
    torch.testing.assert_close(y, sosfilt_bank(waveform.float(), sos).half(), rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_a_float32_bank_trains_under_autocast(device, rng):
    """conv (bfloat16 on CPU, float16 on CUDA, under autocast) -> float32
    BiquadFilterBank -> loss: trains."""
    half = torch.bfloat16 if device == "cpu" else torch.float16
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(1, 1, 5, padding=2).to(device)
    bank = BiquadFilterBank(4, 16000, f_min=100.0, f_max=4000.0).to(device)
    target = BiquadFilterBank(4, 16000, f_min=150.0, f_max=3000.0, learnable=False).to(device)
    optimizer = torch.optim.Adam(list(conv.parameters()) + list(bank.parameters()), lr=0.05)
    waveform = torch.from_numpy(rng.normal(size=(4, 1, 400))).float().to(device)
    wanted = target(waveform[:, 0]).detach()
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        with torch.autocast(device, dtype=half):
            features = conv(waveform)
            assert features.dtype == half
            y = bank(features[:, 0])
            assert y.dtype == half
        loss = (y.float() - wanted).square().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
