"""The Triton kernels, forward and adjoint, filters and cascades, on small cases: on
CUDA where there is a GPU, else on CPU tensors in Triton's interpreter
(``TRITON_INTERPRET=1``, set by conftest), which runs the same kernel code step by
step. References: scipy in float64 and the TorchScript loop (its composite adjoint)."""
import itertools

import numpy as np
import pytest
import scipy.signal
import torch
from torch.autograd import gradcheck, gradgradcheck

from multi_lfilter import lfilter_bank, lfilter_bank_with_state, sosfilt_bank_with_state
from multi_lfilter.backends import cascade_dispatch as cascade, loop, triton as triton_backend

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
    ((2, 1, 37), (3, 6), (3, 6), (2, 3, 5)),  # order 5
    ((2, 2, 1, 2, 37), (2, 1, 3, 1, 3), (3, 1, 3), None),  # four batch dims, broadcast every way
]
LAYOUT_IDS = ["bank", "bank-zi", "chains-from-zi", "per-channel", "per-example-b", "order0", "order5", "four-dims"]
# Empty, one sample, fewer samples than the order (for orders above 5), one whole
# time tile, and several tiles ending in a partial one.
LENGTHS = [0, 1, 5, 16, 37]
# Every subset of the gradients a caller can ask for, as (waveform, a, b, zi).
NEEDS = [needs for needs in itertools.product([False, True], repeat=4) if any(needs)]


def on_device(*tensors):
    return [t.to(DEVICE) if t is not None else None for t in tensors]


@pytest.fixture
def time_chunked(monkeypatch):
    """Makes small problems split into chunks of time (as few chains over long signals
    do on a GPU): chunks of a multiple of 8 samples, so a chunk holds whole tiles and
    a partial one."""
    monkeypatch.setattr(triton_backend, "PARALLEL_CHAINS", 64)
    monkeypatch.setattr(triton_backend, "MIN_CHUNK_LENGTH", 8)
    monkeypatch.setattr(triton_backend, "CHUNK_ALIGNMENT", 8)


def assert_adjoint_matches_the_loop(waveform, a_coeffs, b_coeffs, zi, with_grad_zf, rng, needs=None, tolerance=1e-10):
    """The Triton adjoint against the reference (composite) adjoint over the loop."""
    y, zf = loop.forward(waveform, a_coeffs, b_coeffs, zi)
    grad_y = torch.from_numpy(rng.normal(size=y.shape))
    grad_zf = torch.from_numpy(rng.normal(size=zf.shape)) if with_grad_zf else None
    zi_shape = list(zi.shape) if zi is not None else None
    needs = needs or (True, True, True, zi is not None)
    actual = triton_backend.adjoint(*on_device(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y), zi_shape, needs)
    if y.shape[-1] == 0:  # the reference adjoint does not take empty signals: the state passes through
        expected = [torch.zeros_like(waveform), torch.zeros_like(a_coeffs), torch.zeros_like(b_coeffs), None]
        if zi is not None:
            expected[3] = (grad_zf if grad_zf is not None else torch.zeros_like(zf)).sum_to_size(zi.shape)
    else:
        expected = loop.adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs)
    for name, need, got, wanted in zip(("waveform", "a", "b", "zi"), needs, actual, expected):
        if not need or (name == "zi" and zi is None):
            assert got is None, name
        else:
            torch.testing.assert_close(got.cpu(), wanted, rtol=tolerance, atol=tolerance, msg=name)


# --- forward --------------------------------------------------------------------


@pytest.mark.parametrize("order", range(1, 9))
@pytest.mark.parametrize("length", LENGTHS, ids=lambda n: f"T{n}")
@pytest.mark.parametrize("with_state", [False, True], ids=["nozi", "zi"])
def test_forward_matches_scipy(order, length, with_state, rng):
    a, b = random_filter_bank(order, n_filters=3, rng=rng)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, length)))
    zi = torch.from_numpy(rng.normal(size=(2, 3, order))) if with_state else None
    y, zf = lfilter_bank_with_state(*on_device(waveform, a, b), zi=on_device(zi)[0], backend="triton")
    y_ref, zf_ref = scipy_lfilter_rows(waveform, a, b, zi)
    torch.testing.assert_close(y.cpu(), y_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(zf.cpu(), zf_ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("order", [1, 2, 5, 8])
@pytest.mark.parametrize("length", [37, 100], ids=lambda n: f"T{n}")
@pytest.mark.parametrize("with_state", [False, True], ids=["nozi", "zi"])
def test_time_chunked_forward_matches_scipy(order, length, with_state, rng, time_chunked):
    """Chunks of time run from their start, the states entering them carried across,
    then run again: the output and final state of one pass (a partial last chunk,
    chunks that are not a whole number of tiles)."""
    a, b = random_filter_bank(order, n_filters=3, rng=rng, max_radius=0.95)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, length)))
    zi = torch.from_numpy(rng.normal(size=(2, 3, order))) if with_state else None
    assert triton_backend.time_chunks(6, length, order) > 2
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
        monkeypatch.setattr(triton_backend, "CHUNK_ALIGNMENT", 8)
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
    # Within one float32 rounding of the loop: a GPU fuses multiply-adds, so its
    # float64 recurrence may differ from the loop's in the last bits before rounding.
    torch.testing.assert_close(y.cpu(), expected, rtol=2.0**-24, atol=0)


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


# --- adjoint --------------------------------------------------------------------


@pytest.mark.parametrize("order", range(1, 9))
@pytest.mark.parametrize("length", [0, 1, 5, 37], ids=lambda n: f"T{n}")
@pytest.mark.parametrize("with_grad_zf", [False, True], ids=["no-grad-zf", "grad-zf"])
def test_adjoint_of_every_order_matches_the_loop(order, length, with_grad_zf, rng):
    """Every gradient (waveform, a, b, zi) of a bank with a state per chain."""
    a, b = random_filter_bank(order, n_filters=3, rng=rng, max_radius=0.95)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, length)))
    zi = torch.from_numpy(rng.normal(size=(2, 3, order)))
    assert_adjoint_matches_the_loop(waveform, a / a[:, :1], b / a[:, :1], zi, with_grad_zf, rng)


@pytest.mark.parametrize("waveform_shape, a_shape, b_shape, zi_shape", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("length", [0, 1, 37], ids=lambda n: f"T{n}")
@pytest.mark.parametrize("with_grad_zf", [False, True], ids=["no-grad-zf", "grad-zf"])
def test_adjoint_matches_the_loop(waveform_shape, a_shape, b_shape, zi_shape, length, with_grad_zf, rng):
    """The fused adjoint kernel against the reference (composite) adjoint, in every layout."""
    problem = make_layout_problem(waveform_shape, a_shape, b_shape, zi_shape, length, rng)
    assert_adjoint_matches_the_loop(*problem, with_grad_zf, rng)


@pytest.mark.parametrize("needs", NEEDS, ids=lambda needs: "".join("xabz"[i] for i, n in enumerate(needs) if n))
def test_each_subset_of_gradients(needs, rng):
    problem = make_layout_problem((2, 1, 37), (3, 3), (3, 3), (2, 3, 2), 37, rng)
    assert_adjoint_matches_the_loop(*problem, True, rng, needs=needs)


@pytest.mark.parametrize("waveform_shape, a_shape, b_shape, zi_shape", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("length", [37, 100], ids=lambda n: f"T{n}")
@pytest.mark.parametrize("with_grad_zf", [False, True], ids=["no-grad-zf", "grad-zf"])
def test_time_chunked_adjoint_matches_the_loop(waveform_shape, a_shape, b_shape, zi_shape, length, with_grad_zf, rng, time_chunked):
    """The adjoint's history carried backwards over chunks of time (the partial chunk
    last in time, first in the backward pass, continued by grad_zf) gives the
    one-pass gradients."""
    problem = make_layout_problem(waveform_shape, a_shape, b_shape, zi_shape, length, rng)
    assert_adjoint_matches_the_loop(*problem, with_grad_zf, rng)


def test_backward_through_an_empty_signal():
    zi = torch.randn(2, 3, 2, dtype=torch.float64, device=DEVICE, requires_grad=True)
    a = torch.tensor([[1.0, -0.5, 0.2]] * 3, dtype=torch.float64, device=DEVICE, requires_grad=True)
    waveform = torch.zeros(2, 1, 0, dtype=torch.float64, device=DEVICE)
    _, zf = lfilter_bank_with_state(waveform, a_coeffs=a, b_coeffs=a.detach(), zi=zi, backend="triton")
    zi_grad, a_grad = torch.autograd.grad(zf.sum(), (zi, a))
    torch.testing.assert_close(zi_grad, torch.ones_like(zi))
    torch.testing.assert_close(a_grad, torch.zeros_like(a))


def test_gradcheck_and_gradgradcheck(rng):
    """Every input, to second order (small: the interpreter runs every perturbation)."""
    waveform, a_coeffs, b_coeffs, zi = make_layout_problem((1, 1, 4), (1, 3), (1, 3), (1, 1, 2), 4, rng)
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


def test_more_than_four_batch_dims_are_refused():
    waveform = torch.zeros(1, 1, 1, 1, 2, 10, dtype=torch.float64, device=DEVICE)
    a = torch.tensor([1.0, -0.5], dtype=torch.float64, device=DEVICE)
    with pytest.raises(ValueError, match="expected a problem the triton backend supports .* at most 4 batch dims.* 5 batch dims"):
        lfilter_bank(waveform, a, a, backend="triton")


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


# --- cascades -------------------------------------------------------------------


def random_cascade(sections, rng, n_filters=3):
    """``(a, b)``: ``(n_filters, S, 3)`` normalised float64 biquads, poles within 0.95."""
    pairs = [random_filter_bank(2, n_filters=n_filters, rng=rng, max_radius=0.95) for _ in range(sections)]
    a = torch.stack([a / a[:, :1] for a, _ in pairs], -2)
    b = torch.stack([b / a[:, :1] for a, b in pairs], -2)
    return a, b


def cascade_problem(sections, length, rng, with_state=True):
    a, b = random_cascade(sections, rng)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, length)))
    zi = torch.from_numpy(rng.normal(size=(2, 3, sections, 2))) if with_state else None
    return waveform, a, b, zi


@pytest.mark.parametrize("sections", [2, 3, 8])
@pytest.mark.parametrize("length", [0, 1, 37, 100], ids=lambda n: f"T{n}")
@pytest.mark.parametrize("with_state", [False, True], ids=["nozi", "zi"])
def test_cascade_forward_matches_scipy_sosfilt(sections, length, with_state, rng):
    waveform, a, b, zi = cascade_problem(sections, length, rng, with_state)
    y, zf = triton_backend.cascade_forward(*on_device(waveform, a, b, zi))
    expected_y = torch.zeros(2, 3, length, dtype=torch.float64)
    expected_zf = torch.zeros(2, 3, sections, 2, dtype=torch.float64)
    for example, channel in itertools.product(range(2), range(3)):
        sos = torch.cat([b[channel], a[channel]], -1).numpy()
        state = zi[example, channel].numpy() if zi is not None else np.zeros((sections, 2))
        if length == 0:
            expected_zf[example, channel] = torch.from_numpy(state)
            continue
        out, final = scipy.signal.sosfilt(sos, waveform[example, 0].numpy(), zi=state)
        expected_y[example, channel] = torch.from_numpy(out)
        expected_zf[example, channel] = torch.from_numpy(final)
    torch.testing.assert_close(y.cpu(), expected_y, rtol=0, atol=1e-10)
    torch.testing.assert_close(zf.cpu(), expected_zf, rtol=0, atol=1e-10)


def assert_cascade_adjoint_matches_sections_one_by_one(sections, length, with_grad_zf, needs, rng):
    waveform, a, b, zi = cascade_problem(sections, length, rng)
    y, zf = cascade.forward("loop", waveform, a, b, zi)
    grad_y = torch.from_numpy(rng.normal(size=y.shape))
    grad_zf = torch.from_numpy(rng.normal(size=zf.shape)) if with_grad_zf else None
    actual = triton_backend.cascade_adjoint(*on_device(grad_y, grad_zf, waveform, a, b, zi), needs)
    expected = cascade.adjoint("loop", grad_y, grad_zf, waveform, a, b, zi, needs)
    for name, need, got, wanted in zip(("waveform", "a", "b", "zi"), needs, actual, expected):
        if not need:
            assert got is None, name
        else:
            torch.testing.assert_close(got.cpu(), wanted, rtol=1e-10, atol=1e-10, msg=name)


@pytest.mark.parametrize("sections", [2, 3, 8])
@pytest.mark.parametrize("length", [1, 37, 70], ids=lambda n: f"T{n}")
@pytest.mark.parametrize("with_grad_zf", [False, True], ids=["no-grad-zf", "grad-zf"])
def test_cascade_adjoint_matches_sections_one_by_one(sections, length, with_grad_zf, rng):
    """The one-pass cascade adjoint (segments recomputed from checkpoints, lengths that
    are not a whole number of segments) against the loop's section-by-section one."""
    assert_cascade_adjoint_matches_sections_one_by_one(sections, length, with_grad_zf, (True, True, True, True), rng)


@pytest.mark.parametrize("needs", NEEDS, ids=lambda needs: "".join("xabz"[i] for i, n in enumerate(needs) if n))
def test_cascade_adjoint_for_each_subset_of_gradients(needs, rng):
    """With coefficient gradients the recomputing kernel runs; without, the plain adjoint."""
    assert_cascade_adjoint_matches_sections_one_by_one(3, 45, True, needs, rng)


@pytest.mark.parametrize("sections, with_grad_zf", [(2, False), (2, True), (8, True)], ids=["2-no-grad-zf", "2-grad-zf", "8-grad-zf"])
def test_time_chunked_cascades_match(sections, with_grad_zf, rng, time_chunked):
    length = 70
    assert triton_backend.time_chunks(6, length, 2 * sections) > 2
    waveform, a, b, zi = cascade_problem(sections, length, rng)
    y, zf = triton_backend.cascade_forward(*on_device(waveform, a, b, zi))
    expected_y, expected_zf = cascade.forward("loop", waveform, a, b, zi)
    scale = max(expected_y.abs().max().item(), 1.0)
    torch.testing.assert_close(y.cpu(), expected_y, rtol=0, atol=1e-11 * scale)
    torch.testing.assert_close(zf.cpu(), expected_zf, rtol=0, atol=1e-11 * scale)
    assert_cascade_adjoint_matches_sections_one_by_one(sections, length, with_grad_zf, (True, True, True, True), rng)


def test_cascades_run_in_one_pass(rng, monkeypatch):
    """Forward and backward through sosfilt never call the single-filter kernels."""
    def refuse(*args, **kwargs):
        raise AssertionError("a cascade ran section by section")

    monkeypatch.setattr(triton_backend, "forward", refuse)
    monkeypatch.setattr(triton_backend, "adjoint", refuse)
    waveform, a, b, zi = cascade_problem(3, 30, rng)
    sos = torch.cat([b, a], -1)
    leaves = [t.to(DEVICE).requires_grad_(True) for t in (waveform, sos, zi)]
    y, zf = sosfilt_bank_with_state(*leaves, backend="triton")
    gradients = torch.autograd.grad(y.sin().sum() + zf.sum(), leaves)
    assert all(gradient is not None for gradient in gradients)


def test_cascade_gradcheck(rng):
    """First order through the one-pass kernels. (Second order recomputes the cascade
    section by section through ``lfilter_bank_with_state``, whose gradgradcheck on
    this backend is above and whose composition test_cascades.py checks on every
    backend.)"""
    waveform, a, b, zi = cascade_problem(2, 4, rng)
    waveform, a, b, zi = waveform[:1], a[:1], b[:1], zi[:1, :1]
    leaves = [t.to(DEVICE).requires_grad_(True) for t in (waveform, torch.cat([b, a], -1), zi)]

    def filter_all(waveform, sos, zi):
        return sosfilt_bank_with_state(waveform, sos, zi, backend="triton")

    assert gradcheck(filter_all, leaves)


# --- on a GPU -------------------------------------------------------------------

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@requires_cuda
def test_cuda_graph_captures_forward_and_backward(rng):
    """No host-device sync on the CUDA path: a forward and backward replay from a graph."""
    a, b = on_device(*random_filter_bank(2, n_filters=8, rng=rng, max_radius=0.95))
    a = a.float().requires_grad_(True)
    waveform = torch.randn(4, 1, 3000, device="cuda")
    weights = torch.randn(4, 8, 3000, device="cuda")

    def step():
        y = lfilter_bank(waveform, a_coeffs=a, b_coeffs=b.float(), backend="triton")
        (gradient,) = torch.autograd.grad((y * weights).sum(), a)
        return y, gradient

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()  # compiles the kernels and warms the allocator outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured_y, captured_gradient = step()
    waveform.copy_(torch.randn_like(waveform))
    graph.replay()
    expected_y, expected_gradient = step()
    torch.testing.assert_close(captured_y, expected_y, rtol=0, atol=0)
    torch.testing.assert_close(captured_gradient, expected_gradient, rtol=0, atol=0)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_tensors_on_a_second_device_run_there(rng):
    a, b = random_filter_bank(2, n_filters=3, rng=rng)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 500)))
    expected = lfilter_bank(waveform, a, b, backend="loop")
    with torch.cuda.device(0):
        y = lfilter_bank(waveform.to("cuda:1"), a.to("cuda:1"), b.to("cuda:1"), backend="triton")
    assert y.device == torch.device("cuda:1")
    torch.testing.assert_close(y.cpu(), expected, rtol=0, atol=1e-10)


def test_the_triton_ops_differentiate_like_the_generic_op(rng):
    """The ops a GPU graph records (``multi_lfilter::triton_filter``,
    ``triton_sosfilt``) carry the library's autograd formula (their second order is
    the generic op's, tested above)."""
    waveform, a_coeffs, b_coeffs, zi = make_layout_problem((1, 1, 5), (2, 3), (2, 3), (1, 2, 2), 5, rng)
    a_coeffs[..., 1:] *= 0.5
    leaves = [t.to(DEVICE).requires_grad_(True) for t in (waveform, a_coeffs, b_coeffs, zi)]
    assert gradcheck(triton_backend.filter_op, leaves)
    waveform, a, b, zi = cascade_problem(2, 4, rng)
    leaves = [t[:1].to(DEVICE).requires_grad_(True) for t in (waveform, a, b, zi[:, :1])]
    assert gradcheck(triton_backend.sosfilt_op, leaves)
