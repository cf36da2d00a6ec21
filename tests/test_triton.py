"""The Triton kernels, forward and adjoint, on small cases: on CUDA where there is a
GPU, else on CPU tensors in Triton's interpreter (``TRITON_INTERPRET=1``, set by
conftest), which runs the same kernel code step by step."""
import numpy as np
import pytest
import scipy.signal
import torch
from torch.autograd import gradcheck, gradgradcheck

from multi_lfilter import lfilter_bank, lfilter_bank_with_state
from multi_lfilter.backends import loop, triton_backend

from helpers import make_layout_problem, random_filter_bank, scipy_lfilter_rows

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = [
    pytest.mark.skipif(not triton_backend.available(), reason="Triton is not installed (it ships with CUDA builds of torch)"),
    pytest.mark.skipif(
        DEVICE == "cpu" and not triton_backend.interpreting(),
        reason="no GPU, and TRITON_INTERPRET=1 was not set before Triton's first use",
    ),
]

LAYOUTS = [
    ((2, 1, 37), (3, 3), (3, 3), None),  # bank
    ((2, 1, 37), (3, 3), (3, 3), (2, 3, 2)),  # bank with a state per chain
    ((1, 1, 37), (3, 3), (3, 3), (2, 3, 2)),  # chains that exist only through zi
    ((2, 3, 37), (3, 3), (3, 3), (3, 2)),  # one filter per channel
    ((2, 1, 37), (3,), (2, 3, 3), None),  # per-example numerators
    ((2, 1, 37), (3, 1), (3, 1), None),  # order 0: a gain
    ((2, 1, 37), (3, 6), (3, 6), (2, 3, 5)),  # order 5: a padded state tile
]
LAYOUT_IDS = ["bank", "bank-zi", "chains-from-zi", "per-channel", "per-example-b", "order0", "order5"]


def assert_adjoint_matches_the_loop(waveform, a_coeffs, b_coeffs, zi, length, with_grad_zf, rng):
    """The Triton adjoint against the reference (composite) adjoint over the loop."""
    y, zf = loop.forward(waveform, a_coeffs, b_coeffs, zi)
    grad_y = torch.from_numpy(rng.normal(size=y.shape))
    grad_zf = torch.from_numpy(rng.normal(size=zf.shape)) if with_grad_zf else None
    zi_shape_list = list(zi.shape) if zi is not None else None
    needs = (True, True, True, zi is not None)
    actual = triton_backend.adjoint(*on_device(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y), zi_shape_list, needs)
    if length == 0:  # the reference adjoint does not take empty signals: the state passes through
        assert not actual[0].any() and not actual[1].any() and not actual[2].any()
        if zi is not None:
            expected_zi = (grad_zf if grad_zf is not None else torch.zeros_like(zf)).sum_to_size(zi.shape)
            torch.testing.assert_close(actual[3].cpu(), expected_zi)
        return
    expected = loop.adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape_list, needs)
    for name, got, wanted in zip(("waveform", "a", "b", "zi"), actual, expected):
        if wanted is None:
            assert got is None, name
        else:
            torch.testing.assert_close(got.cpu(), wanted, rtol=1e-10, atol=1e-10, msg=name)


def on_device(*tensors):
    return [t.to(DEVICE) if t is not None else None for t in tensors]


@pytest.mark.parametrize("order", [1, 2, 3, 8])
@pytest.mark.parametrize("length", [0, 1, 5, 16, 37], ids=lambda n: f"T{n}")
@pytest.mark.parametrize("with_state", [False, True], ids=["nozi", "zi"])
def test_forward_matches_scipy(order, length, with_state, rng):
    """Lengths: empty, one sample, shorter than the order, one whole time tile, and
    several tiles ending in a partial one."""
    a, b = random_filter_bank(order, n_filters=3, rng=rng)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, length)))
    zi = torch.from_numpy(rng.normal(size=(2, 3, order))) if with_state else None
    y, zf = lfilter_bank_with_state(*on_device(waveform, a, b), zi=on_device(zi)[0], backend="triton")
    y_ref, zf_ref = scipy_lfilter_rows(waveform, a, b, zi)
    torch.testing.assert_close(y.cpu(), y_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(zf.cpu(), zf_ref, rtol=0, atol=1e-10)


@pytest.fixture
def time_chunked(monkeypatch):
    """Makes the forward split small problems into chunks of time (as it does for few
    chains and long signals on a GPU)."""
    monkeypatch.setattr(triton_backend, "PARALLEL_CHAINS", 64)
    monkeypatch.setattr(triton_backend, "MIN_CHUNK_LENGTH", 8)


@pytest.mark.parametrize("order", [1, 2, 5, 8])
@pytest.mark.parametrize("length", [16, 37, 100], ids=lambda n: f"T{n}")
@pytest.mark.parametrize("with_state", [False, True], ids=["nozi", "zi"])
def test_time_chunked_forward_matches_scipy(order, length, with_state, rng, time_chunked):
    """Chunks of time run from zero, the states entering them carried across, then
    run again: the same output and final state as one pass (partial last chunks too)."""
    a, b = random_filter_bank(order, n_filters=3, rng=rng, max_radius=0.95)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, length)))
    zi = torch.from_numpy(rng.normal(size=(2, 3, order))) if with_state else None
    assert triton_backend.time_chunks(6, length, order) > 1
    y, zf = lfilter_bank_with_state(*on_device(waveform, a, b), zi=on_device(zi)[0], backend="triton")
    y_ref, zf_ref = scipy_lfilter_rows(waveform, a, b, zi)
    # The carried states round differently from one pass (products with the one-chunk
    # transition): held to 1e-11 of the peak output.
    scale = max(y_ref.abs().max().item(), 1.0)
    torch.testing.assert_close(y.cpu(), y_ref, rtol=0, atol=1e-11 * scale)
    torch.testing.assert_close(zf.cpu(), zf_ref, rtol=0, atol=1e-11 * scale)


@pytest.mark.parametrize("chunked", [False, True], ids=["one-pass", "time-chunked"])
def test_a_nan_sample_spreads_as_in_scipy(chunked, rng, monkeypatch):
    if chunked:
        monkeypatch.setattr(triton_backend, "PARALLEL_CHAINS", 64)
        monkeypatch.setattr(triton_backend, "MIN_CHUNK_LENGTH", 8)
    a, b = [1.0, -1.6, 0.8], [0.2, 0.1, 0.05]
    x = rng.normal(size=(2, 60))
    x[:, 27] = np.nan
    expected = scipy.signal.lfilter(b, a, x, axis=-1)
    y = lfilter_bank(
        *on_device(torch.from_numpy(x), torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)),
        backend="triton",
    ).cpu().numpy()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    np.testing.assert_allclose(y[:, :27], expected[:, :27], rtol=0, atol=1e-12)


def test_time_chunks_only_where_chains_are_few_and_signals_long():
    assert triton_backend.time_chunks(4096, 16000, 2) == 16  # the bank workload
    assert triton_backend.time_chunks(128, 512, 2) == 1  # streaming: one launch
    assert triton_backend.time_chunks(1 << 16, 16000, 2) == 1  # enough chains already
    assert triton_backend.time_chunks(4096, 16000, 0) == 1  # a gain has no state to carry


def test_float32_is_a_float64_recurrence_rounded_once(rng):
    a, b = random_filter_bank(4, n_filters=3, rng=rng)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 40))).float()
    y = lfilter_bank(*on_device(waveform, a.float(), b.float()), backend="triton")
    expected = lfilter_bank(waveform, a.float(), b.float(), backend="loop")
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.cpu(), expected, rtol=0, atol=0)


@pytest.mark.parametrize("waveform_shape, a_shape, b_shape, zi_shape", LAYOUTS, ids=LAYOUT_IDS)
def test_layouts_match_the_loop(waveform_shape, a_shape, b_shape, zi_shape, rng):
    waveform, a_coeffs, b_coeffs, zi = make_layout_problem(waveform_shape, a_shape, b_shape, zi_shape, 37, rng)
    expected = loop.forward(waveform, a_coeffs, b_coeffs, zi)
    actual = triton_backend.forward(*on_device(waveform, a_coeffs, b_coeffs, zi))
    for got, wanted in zip(actual, expected):
        torch.testing.assert_close(got.cpu(), wanted, rtol=0, atol=1e-12)


def test_strided_waveform_is_read_in_place(rng):
    a, b = random_filter_bank(2, n_filters=3, rng=rng)
    waveform = torch.from_numpy(rng.normal(size=(80, 2))).t()[:, ::2]  # (2, 40), time stride 4
    y = lfilter_bank(*on_device(waveform.unsqueeze(-2), a, b), backend="triton")
    expected = lfilter_bank(waveform.unsqueeze(-2), a, b, backend="loop")
    torch.testing.assert_close(y.cpu(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("waveform_shape, a_shape, b_shape, zi_shape", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("length", [0, 1, 37], ids=lambda n: f"T{n}")
@pytest.mark.parametrize("with_grad_zf", [False, True], ids=["no-grad-zf", "grad-zf"])
def test_adjoint_matches_the_loop(waveform_shape, a_shape, b_shape, zi_shape, length, with_grad_zf, rng):
    """The fused adjoint kernel against the reference (composite) adjoint."""
    problem = make_layout_problem(waveform_shape, a_shape, b_shape, zi_shape, length, rng)
    assert_adjoint_matches_the_loop(*problem, length, with_grad_zf, rng)


def test_backward_through_an_empty_signal():
    zi = torch.randn(2, 3, 2, dtype=torch.float64, device=DEVICE, requires_grad=True)
    a = torch.tensor([[1.0, -0.5, 0.2]] * 3, dtype=torch.float64, device=DEVICE, requires_grad=True)
    waveform = torch.zeros(2, 1, 0, dtype=torch.float64, device=DEVICE)
    _, zf = lfilter_bank_with_state(waveform, a_coeffs=a, b_coeffs=a.detach(), zi=zi, backend="triton")
    zi_grad, a_grad = torch.autograd.grad(zf.sum(), (zi, a))
    torch.testing.assert_close(zi_grad, torch.ones_like(zi))
    torch.testing.assert_close(a_grad, torch.zeros_like(a))


@pytest.mark.parametrize("waveform_shape, a_shape, b_shape, zi_shape", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("length", [16, 37], ids=lambda n: f"T{n}")
@pytest.mark.parametrize("with_grad_zf", [False, True], ids=["no-grad-zf", "grad-zf"])
def test_time_chunked_adjoint_matches_the_loop(waveform_shape, a_shape, b_shape, zi_shape, length, with_grad_zf, rng, time_chunked):
    """The adjoint's history carried backwards over chunks of time (the partial chunk
    first in time, last in the backward pass) gives the one-pass gradients."""
    problem = make_layout_problem(waveform_shape, a_shape, b_shape, zi_shape, length, rng)
    assert_adjoint_matches_the_loop(*problem, length, with_grad_zf, rng)


def test_gradcheck_and_gradgradcheck(rng):
    waveform, a_coeffs, b_coeffs, zi = make_layout_problem((2, 1, 6), (2, 3), (2, 3), (2, 2, 2), 6, rng)
    a_coeffs[..., 1:] *= 0.5
    leaves = [t.to(DEVICE).requires_grad_(True) for t in (waveform, a_coeffs, b_coeffs, zi)]

    def filter_all(waveform, a_coeffs, b_coeffs, zi):
        return lfilter_bank_with_state(waveform, a_coeffs=a_coeffs, b_coeffs=b_coeffs, zi=zi, backend="triton")

    assert gradcheck(filter_all, leaves)
    assert gradgradcheck(filter_all, leaves)


def test_orders_above_the_register_limit_are_refused(rng):
    order = triton_backend.MAX_ORDER + 1
    a = torch.zeros(order + 1, dtype=torch.float64)
    a[0] = 1.0
    with pytest.raises(ValueError, match=f"expected a problem the triton backend supports .* order {order}"):
        lfilter_bank(*on_device(torch.zeros(2, 10, dtype=torch.float64), a, a), backend="triton")


def test_torch_func_transforms_match_autograd(rng):
    """grad, jacfwd and vmap run the Triton kernels too (test_func_transforms.py covers
    the other backends on larger cases)."""
    a, b = random_filter_bank(2, n_filters=2, rng=rng, max_radius=0.9)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 20)))
    a, b, waveform = on_device(a, b, waveform)

    def loss(a_coeffs):
        return lfilter_bank(waveform, a_coeffs=a_coeffs, b_coeffs=b, backend="triton").sin().sum()

    leaf = a.clone().requires_grad_()
    (expected,) = torch.autograd.grad(loss(leaf), leaf)
    torch.testing.assert_close(torch.func.grad(loss)(a), expected, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(torch.func.jacfwd(loss)(a), expected, rtol=1e-9, atol=1e-10)
    stacked = torch.stack([waveform, 2 * waveform])
    mapped = torch.func.vmap(lambda x: lfilter_bank(x, a_coeffs=a, b_coeffs=b, backend="triton"))(stacked)
    torch.testing.assert_close(mapped[1], 2 * mapped[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mapped[0], lfilter_bank(waveform, a_coeffs=a, b_coeffs=b, backend="loop"), rtol=1e-10, atol=1e-12)


def test_cascades_run_section_by_section_and_differentiate(rng):
    """Cascades take the Triton kernels section by section, forward and backward."""
    from multi_lfilter import sosfilt_bank_with_state

    sections = []
    for _ in range(3):
        a, b = random_filter_bank(2, n_filters=2, rng=rng, max_radius=0.9)
        sections.append(torch.cat([b, a], -1))
    sos = torch.stack(sections, -2)  # (2, 3, 6)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 30)))
    zi = torch.from_numpy(rng.normal(size=(2, 2, 3, 2)))
    results = {}
    for backend, device in (("triton", DEVICE), ("loop", "cpu")):
        leaves = [t.to(device).requires_grad_(True) for t in (waveform, sos, zi)]
        y, zf = sosfilt_bank_with_state(*leaves, backend=backend)
        results[backend] = [y, zf] + list(torch.autograd.grad(y.sin().sum() + zf.sum(), leaves))
    for got, expected in zip(results["triton"], results["loop"]):
        torch.testing.assert_close(got.detach().cpu(), expected.detach(), rtol=1e-10, atol=1e-10)
