"""lfilter_bank against scipy.signal.lfilter, channel by channel."""
import numpy as np
import pytest
import scipy.signal
import torch

from multi_lfilter import lfilter_bank, lfilter_bank_with_state
from multi_lfilter.backends import export_graph
from multi_lfilter.backends.block.filter import FILTER_BLOCK_LENGTH

from helpers import (
    MATRIX_BACKENDS,
    ORDERS,
    random_filter_bank,
    scipy_lfilter_rows,
    spreads_through_blocks,
    to_device,
)


def lengths_for(order):
    return {"empty": 0, "one": 1, "shorter_than_order": max(order - 1, 0), "long": 4096}


CASES = [
    pytest.param(order, length, with_state, id=f"order{order}-{name}-{'zi' if with_state else 'nozi'}")
    for order in ORDERS
    for name, length in lengths_for(order).items()
    for with_state in (False, True)
]


def float64_tolerance(backend, y_reference):
    """Absolute float64 tolerance.

    The loop and native kernels round exactly as scipy does (measured: bit-identical).
    The block algorithm's scan carries histories over many blocks with powers of the
    block transition, whose rounding moves clustered poles near the unit circle a
    little: up to 1.5e-8 of max|y| measured on this filter set (order 8, poles at
    radius 0.999 clustered near Nyquist, |y| in the thousands; 3e-11 to 3e-10 at the
    other orders), so it is held to 3e-8 of max|y|. In float32 that is far below the
    output's own rounding (``test_float32_block_error_is_the_loops``).
    """
    if backend in MATRIX_BACKENDS:
        scale = y_reference.abs().max().item() if y_reference.numel() else 0.0
        return max(3e-8 * scale, 1e-10)
    return 1e-10


def float32_tolerance(order):
    """Relative to max |y|.

    A float32 recurrence (scipy's own float32 path) misses these filters by up to 1.5e-5
    (order 1) to 3e-3 (order 8). The kernels run the recurrence in float64, so float32
    results are float64 ones rounded once: about 6e-8 is measured, 1e-6 is required at
    every order (stricter than the 1e-5 / 1e-4 / 1e-3 a float32 recurrence would need).
    """
    return 1e-6


@pytest.mark.parametrize("order, length, with_state", CASES)
def test_float64_matches_scipy(order, length, with_state, rng, backend, device):
    a, b = random_filter_bank(order, n_filters=3, rng=rng)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, length)))
    zi = torch.from_numpy(rng.normal(size=(2, 3, order))) if with_state else None

    x_dev, a_dev, b_dev, zi_dev = to_device(device, waveform, a, b, zi)
    y, zf = lfilter_bank_with_state(x_dev, a_coeffs=a_dev, b_coeffs=b_dev, zi=zi_dev, backend=backend)
    assert y.device.type == device and zf.device.type == device
    y, zf = y.cpu(), zf.cpu()
    y_ref, zf_ref = scipy_lfilter_rows(waveform, a, b, zi)

    assert y.shape == (2, 3, length) and zf.shape == (2, 3, order)
    assert y.dtype == torch.float64
    tolerance = float64_tolerance(backend, y_ref)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=tolerance)
    torch.testing.assert_close(zf, zf_ref, rtol=0, atol=tolerance)


@pytest.mark.parametrize("order, length, with_state", CASES)
def test_float32_matches_scipy_on_rounded_coefficients(order, length, with_state, rng, backend, device):
    a, b = random_filter_bank(order, n_filters=3, rng=rng)
    a, b = a.float(), b.float()
    waveform = torch.from_numpy(rng.normal(size=(2, 1, length))).float()
    zi = torch.from_numpy(rng.normal(size=(2, 3, order))).float() if with_state else None

    x_dev, a_dev, b_dev, zi_dev = to_device(device, waveform, a, b, zi)
    y, zf = lfilter_bank_with_state(x_dev, a_coeffs=a_dev, b_coeffs=b_dev, zi=zi_dev, backend=backend)
    y, zf = y.cpu(), zf.cpu()
    y_ref, zf_ref = scipy_lfilter_rows(waveform, a, b, zi)

    assert y.dtype == torch.float32 and zf.dtype == torch.float32
    scale = max(y_ref.abs().max().item() if length else 0.0, 1e-30)
    tolerance = float32_tolerance(order) * scale
    torch.testing.assert_close(y.double(), y_ref, rtol=0, atol=tolerance)
    state_scale = max(zf_ref.abs().max().item() if order else 0.0, scale)
    torch.testing.assert_close(zf.double(), zf_ref, rtol=0, atol=float32_tolerance(order) * state_scale)


@pytest.mark.parametrize("order", ORDERS)
def test_float32_block_error_is_the_loops(order, rng):
    """The parallel block algorithm's float32 output is within 1.25x the reference
    loop's error (a float64 recurrence rounded once), against float64 scipy on the
    same rounded inputs, for the hardest filters of the set (poles at radius 0.999)."""
    a, b = random_filter_bank(order, n_filters=4, rng=rng)
    a, b = a.float(), b.float()
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 4096))).float()
    y_ref, _ = scipy_lfilter_rows(waveform, a, b)
    scale = y_ref.abs().amax(-1)
    errors = {}
    for backend in ("loop",) + MATRIX_BACKENDS:
        y = lfilter_bank(waveform, a_coeffs=a, b_coeffs=b, backend=backend)
        errors[backend] = ((y.double() - y_ref).abs().amax(-1) / scale).max().item()
    for backend in MATRIX_BACKENDS:
        assert errors[backend] <= 1.25 * errors["loop"], errors


@pytest.mark.parametrize("order", [0, 1, 2])
def test_unequal_coefficient_lengths_are_zero_padded(order, rng, backend, device):
    a = torch.tensor([2.0, -0.4, 0.1][: order + 1], dtype=torch.float64)
    b = torch.from_numpy(rng.normal(size=(4, 5)))  # longer numerator: order 4 overall
    waveform = torch.from_numpy(rng.normal(size=(4, 300)))
    y = lfilter_bank(*to_device(device, waveform, a, b), backend=backend).cpu()
    y_ref, _ = scipy_lfilter_rows(waveform, a, b)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=float64_tolerance(backend, y_ref))


def test_order_zero_is_a_gain(rng, backend, device):
    waveform = torch.from_numpy(rng.normal(size=(3, 50))).to(device)
    y, zf = lfilter_bank_with_state(
        waveform, a_coeffs=torch.tensor([2.0], dtype=torch.float64, device=device),
        b_coeffs=torch.tensor([3.0], dtype=torch.float64, device=device), backend=backend,
    )
    torch.testing.assert_close(y, 1.5 * waveform)
    assert zf.shape == (3, 0)


def test_non_contiguous_inputs(rng, backend, device):
    a, b = random_filter_bank(2, n_filters=4, rng=rng)
    waveform = torch.from_numpy(rng.normal(size=(600, 3))).to(device).t()[:, ::2]  # (3, 300), strided
    a_column_major = a.to(device).t().contiguous().t()
    assert not waveform.is_contiguous() and not a_column_major.is_contiguous()
    y = lfilter_bank(waveform.unsqueeze(-2), a_coeffs=a_column_major, b_coeffs=b.to(device), backend=backend).cpu()
    waveform = waveform.cpu()
    y_ref, _ = scipy_lfilter_rows(waveform.unsqueeze(-2), a, b)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=float64_tolerance(backend, y_ref))


NON_FINITE_CASES = {
    "nan-sample-iir": ([1.0, -1.6, 0.8], [0.2, 0.1, 0.05], 70, float("nan")),
    "inf-sample-iir": ([1.0, -1.6, 0.8], [0.2, 0.1, 0.05], 70, float("inf")),
    "nan-sample-fir": ([2.0], [0.2, 0.1, 0.05], 70, float("nan")),
    "inf-sample-fir": ([1.0], [0.2, 0.1, 0.05], 5, float("-inf")),
}


@pytest.mark.parametrize("case", list(NON_FINITE_CASES))
def test_non_finite_samples_spread_as_in_scipy(case, backend, device, rng):
    """A nan or inf reaches exactly the outputs scipy's lfilter gives it: every later
    one through a recurrence, the next K through a one-coefficient ``a`` (scipy then
    convolves), none before it (the block algorithm hands such inputs to the loop)."""
    a, b, where, value = NON_FINITE_CASES[case]
    x = rng.normal(size=(2, 200))
    x[:, where] = value
    expected = scipy.signal.lfilter(b, a, x, axis=-1)
    y = lfilter_bank(
        *to_device(device, torch.from_numpy(x), torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)),
        backend=backend,
    ).cpu().numpy()
    if spreads_through_blocks(backend, device) and len(a) > 1:
        # No loop to fall back on: from the start of the sample's block (32 samples)
        # on, every output is non-finite; before it, exact.
        block_length = export_graph.EXPORT_BLOCK_LENGTH if backend == "export" else FILTER_BLOCK_LENGTH
        block_start = where // block_length * block_length
        assert not np.isfinite(y[:, block_start:]).any()
        np.testing.assert_allclose(y[:, :block_start], expected[:, :block_start], rtol=0, atol=1e-10)
        return
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(y[finite], expected[finite], rtol=0, atol=1e-10)


def test_a_nan_coefficient_spoils_only_its_filter_from_where_it_acts(backend, device):
    a = torch.tensor([[1.0, -0.5, 0.2], [1.0, -0.5, float("nan")]], dtype=torch.float64, device=device)
    b = torch.tensor([[0.5, 0.1, 0.0], [0.5, 0.1, 0.0]], dtype=torch.float64, device=device)
    x = torch.ones(1, 1, 50, dtype=torch.float64, device=device)
    y = lfilter_bank(x, a_coeffs=a, b_coeffs=b, backend=backend).cpu()
    assert torch.isfinite(y[0, 0]).all()
    if spreads_through_blocks(backend, device):  # no loop to fall back on: the whole filter is nan
        assert torch.isnan(y[0, 1]).all()
        return
    # a2 first acts on y[2] (through y[0]): y[0] and y[1] stay finite, as in scipy.
    expected = scipy.signal.lfilter(b[1].cpu().numpy(), a[1].cpu().numpy(), np.ones(50))
    np.testing.assert_array_equal(np.isnan(y[0, 1].numpy()), np.isnan(expected))


def test_fir_filters_match_scipy_with_state(rng, backend):
    """A one-coefficient ``a`` goes through the convolution path: values, zi and zf."""
    b = torch.from_numpy(rng.normal(size=(3, 4)))
    a = torch.tensor([2.0], dtype=torch.float64)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 50)))
    zi = torch.from_numpy(rng.normal(size=(2, 3, 3)))
    y, zf = lfilter_bank_with_state(waveform, a_coeffs=a, b_coeffs=b, zi=zi, backend=backend)
    y_ref, zf_ref = scipy_lfilter_rows(waveform, a, b, zi)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(zf, zf_ref, rtol=0, atol=1e-12)


def test_unstable_filters_grow_as_in_scipy(backend, device):
    """A pole outside the unit circle: outputs grow without bound, and stay finite
    (and exact) as long as scipy's do. The export graph's scan raises powers of the
    transition to 2**16 and more blocks; those overflow, but only where no output
    needs them (they are masked, not multiplied into zeros: inf * 0 would be nan)."""
    a = torch.tensor([[1.0, -1.02, 0.0], [1.0, -1.9, 1.05]], dtype=torch.float64)  # radii 1.02, 1.025
    b = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.2, 0.0]], dtype=torch.float64)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 1, 700)))
    y = lfilter_bank(*to_device(device, x, a, b), backend=backend).cpu()
    expected, _ = scipy_lfilter_rows(x, a, b)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, expected, rtol=1e-9, atol=1e-9 * expected.abs().max().item())


def test_the_block_algorithm_without_the_finiteness_check_spoils_whole_blocks(rng):
    """What the block backend does on a GPU, where the check that would send non-finite
    inputs to the loop is skipped: run here by calling the backend module directly."""
    from multi_lfilter.backends import block

    a, b = [1.0, -1.6, 0.8], [0.2, 0.1, 0.05]
    x = rng.normal(size=(2, 200))
    x[:, 70] = np.nan
    y, _ = block.forward(torch.from_numpy(x), torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64), None)
    expected = scipy.signal.lfilter(b, a, x, axis=-1)
    block_start = 70 // FILTER_BLOCK_LENGTH * FILTER_BLOCK_LENGTH
    assert not np.isfinite(y[:, block_start:].numpy()).any()
    np.testing.assert_allclose(y[:, :block_start].numpy(), expected[:, :block_start], rtol=0, atol=1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("backend", ["block", "triton"])
def test_a_zero_a0_on_a_gpu_gives_non_finite_outputs(backend):
    """GPUs skip the value checks (a host-device sync each): no error, and the filter
    with a zero a0 is non-finite; the others are untouched."""
    a = torch.tensor([[1.0, -0.5, 0.2], [0.0, -0.5, 0.2]], dtype=torch.float64, device="cuda")
    y = lfilter_bank(torch.ones(1, 1, 40, dtype=torch.float64, device="cuda"), a, a, backend=backend).cpu()
    assert torch.isfinite(y[0, 0]).all() and not torch.isfinite(y[0, 1]).any()
