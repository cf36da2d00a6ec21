"""Time-varying filters: every form and backend against a float64 numpy loop written
from the equations, constant coefficients against lfilter_bank, frames, streaming,
gradients, TorchScript and bad input."""
import math

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import multi_lfilter
from multi_lfilter import (
    lfilter_bank_with_state,
    lfilter_varying,
    lfilter_varying_with_state,
    sosfilt_bank_with_state,
    sosfilt_varying_with_state,
)
from multi_lfilter.backends.dispatch import registered
from multi_lfilter.varying import varying_backends

from helpers import random_filter_bank

FORMS = ["tdf2", "df1", "df2", "tdf1"]
# The backends that run CPU tensors here; Triton runs them only in its interpreter, too
# slowly for these sizes (tests/test_triton_varying.py runs it on small ones).
BACKENDS = [name for name in varying_backends() if name != "triton"]
# Every backend with every form it runs (the native kernels: tdf2).
CASES = [(backend, form) for backend in BACKENDS for form in FORMS if form in registered(backend).varying_forms]


# --- the reference: scalar loops in numpy, straight from the equations ---------------


def _step_coefficients(coefficients, n, hop):
    """Row ``n`` of ``(Tc, K)`` coefficients (interpolated between frames with a hop)."""
    if coefficients.shape[0] == 1:
        return coefficients[0]
    if not hop:
        return coefficients[n]
    frame, offset = divmod(n, hop)
    if offset == 0 or frame + 1 >= coefficients.shape[0]:
        return coefficients[frame]
    weight = offset / hop
    return (1 - weight) * coefficients[frame] + weight * coefficients[frame + 1]


def reference_row(x, a, b, zi, form, hop):
    """One chain: ``x (T,)``, ``a, b (Tc, K)`` with ``a0``, ``zi`` the form's state."""
    order = a.shape[1] - 1
    length = len(x)
    steps = [(_step_coefficients(a, n, hop), _step_coefficients(b, n, hop)) for n in range(length)]
    steps = [(an[1:] / an[0], bn / an[0]) for an, bn in steps]
    y = np.zeros(length)
    if form == "tdf2":
        s = np.zeros(order) if zi is None else zi.copy()
        for n in range(length):
            an, bn = steps[n]
            y[n] = bn[0] * x[n] + (s[0] if order else 0.0)
            s = np.append(s[1:], 0.0) + bn[1:] * x[n] - an * y[n]
        return y, s
    if form == "df1":
        state = np.zeros(2 * order) if zi is None else zi
        xs = np.concatenate([x[::-1], state[:order]])[::-1]  # x[-N..T-1]
        ys = np.concatenate([np.zeros(length), state[order:]])[::-1].copy()  # y[-N..T-1] (filled below)
        for n in range(length):
            an, bn = steps[n]
            past_x = xs[order + n - np.arange(order + 1)]
            past_y = ys[order + n - np.arange(1, order + 1)]
            ys[order + n] = bn @ past_x - an @ past_y
        y = ys[order:]
        final = np.concatenate([xs[::-1][:order], ys[::-1][:order]]) if length else state
        return y, final
    if form == "df2":
        w_past = np.zeros(order) if zi is None else zi.copy()  # w[n-1], w[n-2], ...
        for n in range(length):
            an, bn = steps[n]
            w = x[n] - an @ w_past
            y[n] = bn[0] * w + bn[1:] @ w_past
            w_past = np.concatenate([[w], w_past[:-1]]) if order else w_past
        return y, w_past
    # tdf1: u[n] = x[n] - sum a_k[n-k] u[n-k]; y[n] = sum b_k[n-k] u[n-k]
    state = np.zeros(2 * order) if zi is None else zi.copy()
    p, q = state[:order].copy(), state[order:].copy()
    for n in range(length):
        an, bn = steps[n]
        u = x[n] + (p[0] if order else 0.0)
        y[n] = bn[0] * u + (q[0] if order else 0.0)
        p = np.append(p[1:], 0.0) - an * u
        q = np.append(q[1:], 0.0) + bn[1:] * u
    return y, np.concatenate([p, q])


def reference(waveform, a, b, zi, form, hop=None):
    """The reference over the broadcast batch: ``(y, zf)`` float64 tensors."""
    width = max(a.shape[-1], b.shape[-1])
    a = torch.nn.functional.pad(a, [0, width - a.shape[-1]])
    b = torch.nn.functional.pad(b, [0, width - b.shape[-1]])
    batch = torch.broadcast_shapes(waveform.shape[:-1], a.shape[:-2], b.shape[:-2], *([zi.shape[:-1]] if zi is not None else []))
    rows = int(np.prod(batch))
    x = waveform.double().expand(*batch, waveform.shape[-1]).reshape(rows, waveform.shape[-1]).numpy()
    a_rows = a.double().expand(*batch, *a.shape[-2:]).reshape(rows, *a.shape[-2:]).numpy()
    b_rows = b.double().expand(*batch, *b.shape[-2:]).reshape(rows, *b.shape[-2:]).numpy()
    z_rows = None if zi is None else zi.double().expand(*batch, zi.shape[-1]).reshape(rows, zi.shape[-1]).numpy()
    results = [reference_row(x[r], a_rows[r], b_rows[r], None if z_rows is None else z_rows[r], form, hop) for r in range(len(x))]
    y = torch.tensor(np.stack([r[0] for r in results])).reshape(*batch, waveform.shape[-1])
    zf = torch.tensor(np.stack([r[1] for r in results])).reshape(*batch, -1)
    return y, zf


# --- cases ---------------------------------------------------------------------------


def moving_filters(rng, order, shape, steps, max_radius=0.9):
    """``(a, b)`` of shape ``(*shape, steps, order + 1)``: each chain interpolates between
    two random stable filters of its own (stable throughout for order <= 2), with a
    non-unit, moving ``a0``."""
    count = int(np.prod(shape)) if shape else 1
    start_a, start_b = random_filter_bank(order, count, rng, max_radius)
    end_a, end_b = random_filter_bank(order, count, rng, max_radius)
    weight = torch.linspace(0, 1, steps, dtype=torch.float64).reshape(1, steps, 1)
    a = (1 - weight) * (start_a / start_a[:, :1]).unsqueeze(1) + weight * (end_a / end_a[:, :1]).unsqueeze(1)
    b = (1 - weight) * start_b.unsqueeze(1) + weight * end_b.unsqueeze(1)
    gain = torch.from_numpy(rng.uniform(0.5, 2.0, size=(count, steps, 1)))
    return (a * gain).reshape(*shape, steps, order + 1), (b * gain).reshape(*shape, steps, order + 1)


def random_state(rng, shape, form, order):
    size = 2 * order if form in ("df1", "tdf1") else order
    return torch.from_numpy(rng.normal(size=(*shape, size)))


LAYOUTS = {
    # name: (waveform leading shape, coefficient leading shape)
    "bank": ((2, 1), (3,)),
    "per-example": ((2, 1), (2, 3)),
    "per-channel": ((2, 3), (3,)),
}


def assert_matches(actual, expected, scale=None):
    if scale is None:
        scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    torch.testing.assert_close(actual.double(), expected, rtol=0, atol=1e-10 * scale)


# --- tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend, form", CASES)
@pytest.mark.parametrize("order", range(1, 9))
def test_constant_coefficients_equal_lfilter_bank(backend, form, order, rng):
    a, b = random_filter_bank(order, 3, rng, max_radius=0.95)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 90)))
    zi = torch.from_numpy(rng.normal(size=(3, order))) if form == "tdf2" else None
    expected, expected_zf = lfilter_bank_with_state(waveform, a, b, zi)
    for steps in (1, 90):  # a time axis of 1, and the same row at every step
        y, zf = lfilter_varying_with_state(
            waveform, a.unsqueeze(-2).expand(3, steps, -1), b.unsqueeze(-2).expand(3, steps, -1), zi, form, None, backend
        )
        assert_matches(y, expected, scale=expected.abs().max().item())
        if form == "tdf2":
            assert_matches(zf, expected_zf, scale=expected.abs().max().item())


@pytest.mark.parametrize("backend, form", CASES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("order", [1, 2, 5, 8])
def test_per_sample_coefficients_match_the_reference(backend, form, layout, order, rng):
    wave_shape, coefficient_shape = LAYOUTS[layout]
    length = 37
    a, b = moving_filters(rng, order, coefficient_shape, length, max_radius=0.8)
    waveform = torch.from_numpy(rng.normal(size=(*wave_shape, length)))
    zi = random_state(rng, coefficient_shape, form, order)
    y, zf = lfilter_varying_with_state(waveform, a, b, zi, form, None, backend)
    expected_y, expected_zf = reference(waveform, a, b, zi, form)
    assert_matches(y, expected_y)
    assert_matches(zf, expected_zf, scale=max(1.0, expected_y.abs().max().item()))


@pytest.mark.parametrize("backend, form", CASES)
@pytest.mark.parametrize("length", [0, 1, 2, 7])
def test_short_signals_and_empty_ones(backend, form, length, rng):
    """Lengths 0, 1 and below the order (4): the state carries what a full signal would."""
    a, b = moving_filters(rng, 4, (3,), max(length, 1), max_radius=0.7)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, length)))
    zi = random_state(rng, (3,), form, 4)
    y, zf = lfilter_varying_with_state(waveform, a, b, zi, form, None, backend)
    expected_y, expected_zf = reference(waveform, a, b, zi, form)
    assert y.shape == (2, 3, length)
    assert_matches(y, expected_y)
    assert_matches(zf, expected_zf)


@pytest.mark.parametrize("backend, form", CASES)
@pytest.mark.parametrize("length, hop, extra", [(100, 16, 0), (100, 16, 1), (96, 16, 0), (5, 8, 0), (33, 1, 0)])
def test_frames_are_interpolated_between_and_held_after(backend, form, length, hop, extra, rng):
    """Frame ``f`` at sample ``f * hop``, linear in between, held after the last; a
    length that is not a multiple of the hop; one frame more than needed."""
    frames = math.ceil(length / hop) + extra
    a, b = moving_filters(rng, 2, (3,), frames, max_radius=0.9)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, length)))
    zi = random_state(rng, (3,), form, 2)
    y, zf = lfilter_varying_with_state(waveform, a, b, zi, form, hop, backend)
    expected_y, expected_zf = reference(waveform, a, b, zi, form, hop)
    assert_matches(y, expected_y)
    assert_matches(zf, expected_zf)


@pytest.mark.parametrize("backend, form", CASES)
def test_chunks_with_the_returned_state_equal_one_call(backend, form, rng):
    length, cut = 80, 33
    a, b = moving_filters(rng, 3, (3,), length, max_radius=0.8)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, length)))
    whole, whole_zf = lfilter_varying_with_state(waveform, a, b, None, form, None, backend)
    first, state = lfilter_varying_with_state(waveform[..., :cut], a[..., :cut, :], b[..., :cut, :], None, form, None, backend)
    rest, zf = lfilter_varying_with_state(waveform[..., cut:], a[..., cut:, :], b[..., cut:, :], state, form, None, backend)
    assert_matches(torch.cat([first, rest], -1), whole)
    assert_matches(zf, whole_zf)


@pytest.mark.parametrize("backend, form", CASES)
def test_frame_rate_chunks_on_hop_boundaries_equal_one_call(backend, form, rng):
    """A chunk over samples [s, e) takes frames s / H through ceil(e / H)."""
    hop, length = 8, 60
    frames = math.ceil(length / hop)
    a, b = moving_filters(rng, 2, (3,), frames, max_radius=0.9)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, length)))
    whole, whole_zf = lfilter_varying_with_state(waveform, a, b, None, form, hop, backend)
    pieces, state = [], None
    for start, end in [(0, 24), (24, 40), (40, 60)]:
        first, last = start // hop, min(frames, math.ceil(end / hop) + 1)
        y, state = lfilter_varying_with_state(
            waveform[..., start:end], a[..., first:last, :], b[..., first:last, :], state, form, hop, backend
        )
        pieces.append(y)
    assert_matches(torch.cat(pieces, -1), whole)
    assert_matches(state, whole_zf)


@pytest.mark.parametrize("backend, form", CASES)
@pytest.mark.parametrize("hop", [None, 4])
def test_gradients(backend, form, hop, rng):
    _check_gradients(backend, form, hop, rng, second=False)


# Second derivatives through the reference loop take seconds per case: the default
# form runs with the suite, the others in CI's slow step.
@pytest.mark.parametrize(
    "backend, form",
    [case if case[1] == "tdf2" else pytest.param(*case, marks=pytest.mark.slow) for case in CASES],
)
@pytest.mark.parametrize("hop", [None, 4])
def test_second_derivatives(backend, form, hop, rng):
    _check_gradients(backend, form, hop, rng, second=True)


def _check_gradients(backend, form, hop, rng, second):
    length = 6
    steps = length if hop is None else math.ceil(length / 4) + 1
    a, b = moving_filters(rng, 2, (1,), steps, max_radius=0.8)
    leaves = [
        torch.from_numpy(rng.normal(size=(2, 1, length))).requires_grad_(),  # broadcast over the chains
        a.clone().requires_grad_(),
        b[..., :2].clone().requires_grad_(),  # a shorter numerator, zero-padded
        random_state(rng, (1,), form, 2).requires_grad_(),
    ]

    def run(waveform, a_coeffs, b_coeffs, zi):
        return lfilter_varying_with_state(waveform, a_coeffs, b_coeffs, zi, form, hop, backend)

    if second:
        assert gradgradcheck(run, leaves)
    else:
        assert gradcheck(run, leaves)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_is_the_float64_computation_rounded(backend, rng):
    length = 400
    a, b = moving_filters(rng, 2, (4,), length, max_radius=0.99)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, length))).float()
    a32, b32 = a.float(), b.float()
    y32 = lfilter_varying(waveform, a32, b32, backend=backend)
    y64 = lfilter_varying(waveform.double(), a32.double(), b32.double(), backend=backend)
    assert y32.dtype == torch.float32
    assert (y32.double() - y64).abs().max() <= 1e-6 * y64.abs().max()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_widened(dtype, rng):
    a, b = moving_filters(rng, 2, (3,), 50, max_radius=0.9)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 50)))
    y = lfilter_varying(waveform.to(dtype), a.float(), b.float())
    expected = lfilter_varying(waveform.to(dtype).float(), a.float(), b.float())
    assert y.dtype == dtype
    torch.testing.assert_close(y, expected.to(dtype))


def test_scripted_equals_eager(rng):
    a, b = moving_filters(rng, 2, (3,), 40, max_radius=0.9)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 40)))
    scripted = torch.jit.script(lfilter_varying_with_state)
    for form in FORMS:
        actual = scripted(waveform, a, b, None, form, None, "auto")
        expected = lfilter_varying_with_state(waveform, a, b, None, form, None, "loop")  # what scripts run
        assert torch.equal(actual[0], expected[0]) and torch.equal(actual[1], expected[1])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hop", [None, 8])
def test_cascades_match_section_after_section(backend, hop, rng):
    length, sections = 50, 3
    steps = length if hop is None else math.ceil(length / hop)
    parts = [moving_filters(rng, 2, (2,), steps, max_radius=0.9) for _ in range(sections)]
    sos = torch.stack([torch.cat([b, a], -1) for a, b in parts], -2)  # (2, steps, S, 6)
    waveform = torch.from_numpy(rng.normal(size=(3, 1, length)))
    zi = torch.from_numpy(rng.normal(size=(2, sections, 2)))
    y, zf = sosfilt_varying_with_state(waveform, sos, zi, hop, backend)
    signal = waveform
    for index, (a, b) in enumerate(parts):
        signal, state = reference(signal, a, b, zi[:, index], "tdf2", hop)
        assert_matches(zf[..., index, :], state, scale=max(1.0, signal.abs().max().item()))
    assert_matches(y, signal)


def test_constant_cascades_equal_sosfilt_bank(rng):
    sos = torch.tensor([[0.2, 0.4, 0.2, 1.0, -0.6, 0.3], [1.0, -1.0, 0.0, 2.0, -0.9, 0.1]], dtype=torch.float64)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 60)))
    expected = sosfilt_bank_with_state(waveform, sos.expand(3, 2, 6))
    actual = sosfilt_varying_with_state(waveform, sos.expand(3, 1, 2, 6))
    assert_matches(actual[0], expected[0])
    assert_matches(actual[1], expected[1])


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda x, a, b: lfilter_varying(x, a[:, :5], b), ValueError, r"expected a_coeffs of shape \(\.\.\., T, K\) with T = 20 .* or 1"),
        (lambda x, a, b: lfilter_varying(x, a[:, :2], b[:, :2], hop_length=8), ValueError, r"at least ceil\(T / hop_length\) = 3 frames"),
        (lambda x, a, b: lfilter_varying(x, a, b, hop_length=0), ValueError, "expected hop_length >= 1, got 0"),
        (lambda x, a, b: lfilter_varying(x, a, b, hop_length=2.0), TypeError, "expected hop_length to be an int or None"),
        (lambda x, a, b: lfilter_varying(x, a, b, form="df3"), ValueError, "expected form to be one of"),
        (lambda x, a, b: lfilter_varying(x, a, b, backend="export"), ValueError, "expected backend"),
        (lambda x, a, b: lfilter_varying(x, a.float(), b), TypeError, "expected one dtype"),
        (lambda x, a, b: lfilter_varying(x, a.long(), b), TypeError, "expected a_coeffs to be float32 or float64"),
        (lambda x, a, b: lfilter_varying(x, a[..., 0, :], b), ValueError, r"expected a_coeffs of shape \(\.\.\., T, K\)"),
        (lambda x, a, b: lfilter_varying(x, a * torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64), b), ValueError, r"a_coeffs\[\.\.\., 0\] != 0"),
        (lambda x, a, b: lfilter_varying(x, a, b, zi=torch.zeros(3, 3, dtype=torch.float64)), ValueError, r"expected zi of shape \(\.\.\., 2\)"),
        (lambda x, a, b: lfilter_varying(x, a, b, zi=torch.zeros(3, 2, dtype=torch.float64), form="df1"), ValueError, r"expected zi of shape \(\.\.\., 4\) for form 'df1'"),
        (lambda x, a, b: lfilter_varying(x[:, :, :1].expand(2, 4, 20), a, b), ValueError, "expected the leading dims to broadcast"),
        (lambda x, a, b: lfilter_varying(x, "a", b), TypeError, "expected a_coeffs to be a torch.Tensor"),
        (lambda x, a, b: sosfilt_varying_with_state(x, torch.zeros(3, 2, 6, dtype=torch.float64)[..., :5]), ValueError, r"expected sos of shape \(\.\.\., T, S, 6\)"),
    ],
)
def test_bad_input_names_the_argument(call, error, message, rng):
    a, b = moving_filters(rng, 2, (3,), 20, max_radius=0.9)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 20)))
    with pytest.raises(error, match=message):
        call(waveform, a, b)


def test_interpolated_a0_may_not_cross_zero(rng):
    a, b = moving_filters(rng, 2, (1,), 3, max_radius=0.9)
    a[0, 1] = -a[0, 1]  # frame 1's a0 has the other sign
    with pytest.raises(ValueError, match="would cross zero"):
        lfilter_varying(torch.zeros(1, 20, dtype=torch.float64), a, b, hop_length=8)


def test_non_finite_values_spread_as_in_lfilter_bank(rng):
    a, b = moving_filters(rng, 2, (2,), 30, max_radius=0.9)
    waveform = torch.from_numpy(rng.normal(size=(1, 1, 30)))
    waveform[..., 10] = float("nan")
    y = lfilter_varying(waveform, a, b)
    assert torch.isfinite(y[..., :10]).all() and torch.isnan(y[..., 10:]).all()


@pytest.mark.skipif("native" not in BACKENDS, reason="the op library is not built here")
def test_auto_runs_the_native_kernels_for_tdf2_on_cpu_and_the_scan_elsewhere(rng, monkeypatch):
    import multi_lfilter.varying as varying

    names = []
    original = varying.varying_filter
    monkeypatch.setattr(varying, "varying_filter", lambda name, *args: names.append(name) or original(name, *args))
    a, b = moving_filters(rng, 2, (3,), 30, max_radius=0.9)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 30)))
    native_y = lfilter_varying(waveform, a, b)
    assert names == ["native"]
    assert torch.equal(native_y, lfilter_varying(waveform, a, b, backend="loop"))  # the same bits
    lfilter_varying(waveform, a, b, form="df1")
    torch.func.vmap(lambda x: lfilter_varying(x, a, b))(waveform)  # a transform: built-in ops
    torch.func.vmap(lambda x: lfilter_varying(x, a, b, backend="native"))(waveform)  # even when named
    assert names[0:3] == ["native", "loop", "block"] and "native" not in names[2:]
    assert all(registered(name).varying_in_graphs for name in names[3:])
    with pytest.raises(ValueError, match="expected a time-varying problem the native backend supports"):
        lfilter_varying(waveform, a, b, form="df2", backend="native")


@pytest.mark.skipif("native" not in BACKENDS, reason="the op library is not built here")
def test_native_results_do_not_depend_on_the_thread_count(rng):
    a, b = moving_filters(rng, 2, (8,), 500, max_radius=0.99)
    b = b.float()
    leaves = [torch.from_numpy(rng.normal(size=(4, 1, 500))).float().requires_grad_(), a.float().requires_grad_()]
    results = []
    threads = torch.get_num_threads()
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            y = multi_lfilter.varying._filter(leaves[0], leaves[1], b, None, "tdf2", None, "native")[0]
            results.append([y] + list(torch.autograd.grad(y.square().sum(), leaves)))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        assert all(torch.equal(x, z) for x, z in zip(results[0], other))


def test_compiles_to_one_graph_and_runs_under_torch_func(rng):
    """torch.compile(fullgraph=True) traces the call (the native op where it runs) and
    its backward; torch.func transforms run it too; both equal eager."""
    a, b = moving_filters(rng, 2, (3,), 9, max_radius=0.9)
    leaves = [torch.from_numpy(rng.normal(size=(2, 1, 64))).requires_grad_(), a.requires_grad_(), b.requires_grad_()]

    def loss(waveform, a_coeffs, b_coeffs):
        return lfilter_varying(waveform, a_coeffs, b_coeffs, hop_length=8).square().sum()

    torch._dynamo.reset()
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    expected = torch.autograd.grad(loss(*leaves), leaves)
    torch.testing.assert_close(torch.autograd.grad(compiled(*leaves), leaves), expected)
    transformed = torch.func.grad(loss, argnums=(0, 1, 2))(*[leaf.detach() for leaf in leaves])
    torch.testing.assert_close(transformed, expected)
