"""The native time-varying kernels (``csrc/varying_kernels.c``), which run tiles of
eight rows in SIMD lanes: every row's bits are those of the reference loop whatever
tile, thread or thread count computes it; broadcast and strided coefficients read in
place; float32 results within 1e-6 of the peak of a float64 run."""
import math

import pytest
import torch

from multi_lfilter import lfilter_varying, lfilter_varying_with_state
from multi_lfilter.backends import native

from helpers import random_filter_bank

pytestmark = pytest.mark.skipif(not native.available(), reason="the op library is not loaded here")
ops = torch.ops.multi_lfilter

# Sizes around the tile width (8 rows) and the kernels' time blocks (multiples of 8 steps).
ROWS = [1, 7, 8, 9, 29]


def moving(rng, order, rows, steps, max_radius=0.9):
    """``(a, b)`` ``(rows, steps, order + 1)`` float64: each row moves from one random
    stable filter to another, with a moving, non-unit ``a0``."""
    if order == 0:  # a gain: a0 and b0 only
        start_a, end_a = torch.ones(rows, 1, dtype=torch.float64), torch.ones(rows, 1, dtype=torch.float64)
        start_b, end_b = torch.from_numpy(rng.normal(size=(rows, 1))), torch.from_numpy(rng.normal(size=(rows, 1)))
    else:
        start_a, start_b = random_filter_bank(order, rows, rng, max_radius)
        end_a, end_b = random_filter_bank(order, rows, rng, max_radius)
    weight = torch.linspace(0, 1, steps, dtype=torch.float64).reshape(1, steps, 1)
    a = (1 - weight) * (start_a / start_a[:, :1]).unsqueeze(1) + weight * (end_a / end_a[:, :1]).unsqueeze(1)
    b = (1 - weight) * start_b.unsqueeze(1) + weight * end_b.unsqueeze(1)
    gain = torch.from_numpy(rng.uniform(0.5, 2.0, size=(rows, steps, 1)))
    return a * gain, b * gain


def swept_bandpass(rows, length, generator):
    """The benchmark's per-sample workload, scaled: cookbook band-passes (Q = 4) whose
    centre sweeps from 200 Hz to 4 kHz at 16 kHz, each row starting elsewhere; float32."""
    phase = torch.linspace(0, 1, length, dtype=torch.float64).unsqueeze(0) + torch.rand(
        rows, 1, generator=generator, dtype=torch.float64
    )
    omega = 2 * math.pi * 200.0 * 20.0 ** (phase % 1.0) / 16000.0
    alpha = torch.sin(omega) / 8.0
    a = torch.stack([1 + alpha, -2 * torch.cos(omega), 1 - alpha], -1)
    b = torch.stack([alpha, torch.zeros_like(alpha), -alpha], -1)
    return a.float(), b.float()


def run_op(waveform, a, b, zi, hop, grad_y, grad_zf):
    """Forward and adjoint ops with threads forced on small problems (64 samples each)."""
    y, zf = ops.native_varying_filter(waveform, a, b, zi, hop, 64)
    gradients = ops.native_varying_filter_adjoint(grad_y, grad_zf, waveform, a, b, y, hop, True, True, 64)
    return [y, zf, *gradients]


def problem(rng, rows, length, order, hop, dtype, b_constant=False):
    """Inputs for ``run_op``: per-sample (hop 0) or frame coefficients, a state, and
    output gradients."""
    steps = length if hop == 0 else math.ceil(length / hop) + 1
    a, b = moving(rng, order, rows, steps)
    if b_constant:
        b = b[:, :1]
    waveform = torch.from_numpy(rng.normal(size=(rows, length)))
    zi = torch.from_numpy(rng.normal(size=(rows, order)))
    grad_y = torch.from_numpy(rng.normal(size=(rows, length)))
    grad_zf = torch.from_numpy(rng.normal(size=(rows, order)))
    return waveform.to(dtype), a.to(dtype), b.to(dtype), zi, hop, grad_y.to(dtype), grad_zf


CASES = [
    pytest.param(order, hop, dtype, b_constant, id=f"order{order}-hop{hop}-{str(dtype)[6:]}{'-const_b' if b_constant else ''}")
    for order, hop, dtype, b_constant in [
        (1, 0, torch.float32, False),
        (2, 0, torch.float32, False),
        (2, 0, torch.float64, False),
        (2, 5, torch.float32, False),
        (2, 16, torch.float64, True),
        (4, 0, torch.float64, False),
        (5, 3, torch.float32, False),
        (0, 0, torch.float64, False),
    ]
]


@pytest.mark.parametrize("order, hop, dtype, b_constant", CASES)
def test_results_do_not_depend_on_the_thread_count(order, hop, dtype, b_constant, rng):
    inputs = problem(rng, 29, 203, order, hop, dtype, b_constant)
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            results.append(run_op(*inputs))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for expected, actual in zip(results[0], other):
            assert torch.equal(expected, actual)


@pytest.mark.parametrize("order, hop, dtype, b_constant", CASES)
def test_a_row_has_the_same_bits_in_any_tile(order, hop, dtype, b_constant, rng):
    """Row 13 computed in a batch of 29 (a full tile's lane 5) and alone (a tile of
    one lane): every output of that row is the same."""
    waveform, a, b, zi, hop, grad_y, grad_zf = problem(rng, 29, 203, order, hop, dtype, b_constant)
    batch = run_op(waveform, a, b, zi, hop, grad_y, grad_zf)
    alone = run_op(waveform[13:14], a[13:14], b[13:14], zi[13:14], hop, grad_y[13:14], grad_zf[13:14])
    for whole, single in zip(batch, alone):
        assert torch.equal(whole[13:14], single)


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("hop", [None, 6])
def test_many_rows_equal_the_reference_loop_bit_for_bit(rows, hop, rng):
    """float64, per-sample and frame coefficients, rows that fill no whole tile."""
    length = 45
    steps = length if hop is None else math.ceil(length / hop) + 1
    a, b = moving(rng, 2, rows, steps)
    waveform = torch.from_numpy(rng.normal(size=(rows, length)))
    zi = torch.from_numpy(rng.normal(size=(rows, 2)))
    native_y, native_zf = lfilter_varying_with_state(waveform, a, b, zi, hop_length=hop, backend="native")
    loop_y, loop_zf = lfilter_varying_with_state(waveform, a, b, zi, hop_length=hop, backend="loop")
    assert torch.equal(native_y, loop_y)
    assert torch.equal(native_zf, loop_zf)


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("hop", [None, 6])
def test_gradients_of_many_rows_match_the_loop(rows, hop, rng):
    length = 30
    steps = length if hop is None else math.ceil(length / hop) + 1
    a, b = moving(rng, 2, rows, steps)
    inputs = [
        torch.from_numpy(rng.normal(size=(rows, length))),
        a,
        b[..., :2].contiguous(),  # shorter: zero-padded, its gradient written column by column
        torch.from_numpy(rng.normal(size=(rows, 2))),
    ]
    upstream = torch.from_numpy(rng.normal(size=(rows, length)))
    gradients = {}
    for backend in ("native", "loop"):
        leaves = [tensor.clone().requires_grad_() for tensor in inputs]
        y, zf = lfilter_varying_with_state(*leaves, hop_length=hop, backend=backend)
        gradients[backend] = torch.autograd.grad((y * upstream).sum() + zf.sum(), leaves)
    for native_gradient, loop_gradient in zip(gradients["native"], gradients["loop"]):
        torch.testing.assert_close(native_gradient, loop_gradient, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("hop", [None, 4])
def test_broadcast_and_strided_coefficients_are_read_in_place(hop, rng):
    """Coefficients shared by every row (stride 0), repeated along time (stride 0),
    and stored K-major: the same bits as contiguous copies, gradients summed back."""
    rows, length = 11, 40
    steps = length if hop is None else math.ceil(length / hop)
    a, b = moving(rng, 2, 1, steps)
    waveform = torch.from_numpy(rng.normal(size=(rows, length)))
    upstream = torch.from_numpy(rng.normal(size=(rows, length)))
    shapes = {
        "broadcast rows": (a.expand(rows, -1, -1), b[0]),  # (rows, T, K) stride 0, and (T, K)
        "copied rows": (a.expand(rows, -1, -1).contiguous(), b[0].expand(rows, -1, -1).contiguous()),
        "K-major": (a.transpose(-1, -2).contiguous().transpose(-1, -2).expand(rows, -1, -1), b[0]),
    }
    if hop is None:
        first = a[:, :1].expand(rows, steps, -1)  # one step, repeated along time
        shapes["repeated steps"] = (first, b[0])
        shapes["copied steps"] = (first.contiguous(), b[0])
    results = {}
    for name, (a_coeffs, b_coeffs) in shapes.items():
        leaves = [waveform.clone().requires_grad_(), a_coeffs.detach().requires_grad_(), b_coeffs.detach().requires_grad_()]
        y = lfilter_varying(*leaves, hop_length=hop, backend="native")
        gradients = torch.autograd.grad((y * upstream).sum(), leaves)
        results[name] = (y, gradients[0], gradients[1].sum_to_size(rows, steps, 3), gradients[2].sum_to_size(steps, 3))
    for first_name, second_name in [("broadcast rows", "copied rows"), ("K-major", "copied rows"),
                                    ("repeated steps", "copied steps")]:
        if first_name not in results:
            continue
        assert torch.equal(results[first_name][0], results[second_name][0])
        assert torch.equal(results[first_name][1], results[second_name][1])
        for first, second in zip(results[first_name][2:], results[second_name][2:]):
            torch.testing.assert_close(first, second, rtol=1e-12, atol=1e-12)


def test_float32_is_within_a_millionth_of_the_peak_of_float64(rng):
    """The per-sample benchmark's swept band-passes, fewer rows: float32 I/O against a
    float64 run on the same float32 inputs (the kernels compute in float64 either way)."""
    generator = torch.Generator().manual_seed(0)
    a, b = swept_bandpass(24, 16000, generator)
    waveform = torch.randn(24, 16000, generator=generator)
    y32 = lfilter_varying(waveform, a, b, backend="native")
    y64 = lfilter_varying(waveform.double(), a.double(), b.double(), backend="native")
    assert y32.dtype == torch.float32
    assert (y32.double() - y64).abs().max() <= 1e-6 * y64.abs().max()


def test_empty_and_short_problems(rng):
    """No rows, no samples, and fewer samples than one block or one transpose."""
    for rows, length in [(0, 10), (3, 0), (9, 1), (9, 7)]:
        a, b = moving(rng, 2, max(rows, 1), max(length, 1))
        a, b = a[:rows, :length], b[:rows, :length]
        if length == 0:
            a, b = a[:, :1], b[:, :1]  # constant: a time axis of 1
        waveform = torch.from_numpy(rng.normal(size=(rows, length)))
        y, zf = lfilter_varying_with_state(waveform, a, b, backend="native")
        expected_y, expected_zf = lfilter_varying_with_state(waveform, a, b, backend="loop")
        assert y.shape == (rows, length) and zf.shape == (rows, 2)
        assert torch.equal(y, expected_y) and torch.equal(zf, expected_zf)


def test_frames_held_after_the_last_and_the_frame_totals(rng):
    """A hop that does not divide the length, one frame more than needed and exactly as
    many: the frame gradients (accumulated per lane) match the loop's."""
    for length, hop, extra in [(50, 7, 0), (50, 7, 1), (56, 7, 0)]:
        steps = math.ceil(length / hop) + extra
        a, b = moving(rng, 2, 10, steps)
        waveform = torch.from_numpy(rng.normal(size=(10, length)))
        gradients = {}
        for backend in ("native", "loop"):
            leaves = [a.clone().requires_grad_(), b.clone().requires_grad_()]
            y = lfilter_varying(waveform, *leaves, hop_length=hop, backend=backend)
            gradients[backend] = torch.autograd.grad(y.square().sum(), leaves)
        for native_gradient, loop_gradient in zip(gradients["native"], gradients["loop"]):
            torch.testing.assert_close(native_gradient, loop_gradient, rtol=1e-10, atol=1e-10)


def test_strided_signals_are_read_in_place(rng):
    """A waveform and an output gradient with a time step of 2 (read value by value):
    the same bits as contiguous copies."""
    rows, length = 11, 40
    a, b = moving(rng, 2, rows, length)
    waveform = torch.from_numpy(rng.normal(size=(rows, 2 * length)))[:, ::2]
    grad_y = torch.from_numpy(rng.normal(size=(rows, 2 * length)))[:, ::2]
    strided = run_op(waveform, a, b, None, 0, grad_y, None)
    copied = run_op(waveform.contiguous(), a, b, None, 0, grad_y.contiguous(), None)
    for first, second in zip(strided, copied):
        assert torch.equal(first, second)


@pytest.mark.parametrize("hop", [0, 128])
def test_long_blocks_of_large_problems_give_the_same_bits(hop, rng):
    """A large problem (blocks of a thousand steps) against each row alone (a small
    problem: blocks of 64), over many blocks, forward and adjoint."""
    inputs = problem(rng, 9, 30000, 2, hop, torch.float32)
    batch = run_op(*inputs)
    waveform, a, b, zi, hop, grad_y, grad_zf = inputs
    for row in (0, 8):
        alone = run_op(waveform[row:row + 1], a[row:row + 1], b[row:row + 1], zi[row:row + 1], hop,
                       grad_y[row:row + 1], grad_zf[row:row + 1])
        for whole, single in zip(batch, alone):
            assert torch.equal(whole[row:row + 1], single)
