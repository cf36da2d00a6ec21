"""The Triton time-varying kernels (``backends/triton/varying.py``) against the reference
loop (``backends/varying_loop.py``), forward and adjoint, on small cases: on CUDA where
there is a GPU, else on CPU tensors in Triton's interpreter (``TRITON_INTERPRET=1``,
set by conftest). Coefficients are per sample (``steps = T``), per frame (``hop``),
or constant (``steps = 1``); float64 is held to 1e-12, float32 (a float64 recurrence
rounded once, like the loop's) to 1e-6."""
import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from multi_lfilter.backends import triton as triton_backend
from multi_lfilter.backends.varying_loop import filter_varying_loop, padded_coefficients

from helpers import random_stable_filter

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = [
    pytest.mark.skipif(
        not triton_backend.available(), reason="Triton is not installed (it ships with CUDA builds of torch)"
    ),
    pytest.mark.skipif(
        DEVICE == "cpu" and not triton_backend.interpreting(),
        reason="no GPU, and TRITON_INTERPRET=1 was not set before Triton's first use",
    ),
]

if triton_backend.available():
    from multi_lfilter.backends.triton import varying
else:  # the tests skip; the module imports without Triton
    varying = None

KERNELS_MODULE = "multi_lfilter.backends.triton.varying_kernels"
# Every coefficient kind: (steps for T samples, hop). A hop of 8, a multiple of the
# kernels' tile, runs every full tile unrolled (frames start at tiles' starts); other
# hops run the tiles in which a frame starts a sample at a time (test_hops).
KINDS = {
    "samples": (lambda length: length, 0),
    "frames": (lambda length: -(-length // 8) + 2, 8),  # more frames than needed
    "constant": (lambda length: 1, 0),
}
# Two full tiles of 8 samples and a partial one.
LENGTH = 19


@pytest.fixture(scope="module", autouse=True)
def interpret_helpers_quickly():
    """conftest's interpreter speed-up (helpers called straight away, not re-patched
    on every call) for this module's kernels too, undone afterwards."""
    if not triton_backend.interpreting():
        yield
        return
    from triton.runtime.interpreter import InterpretedFunction

    call = InterpretedFunction.__call__

    def helper_call(self, *args, **kwargs):
        if self.fn.__module__ != KERNELS_MODULE:
            return call(self, *args, **kwargs)
        return self.rewrite()(*args, **kwargs)

    InterpretedFunction.__call__ = helper_call
    yield
    InterpretedFunction.__call__ = call


def varying_coefficients(order, steps, leading, rng, b_order=None):
    """Raw ``(a, b)`` float64 of shapes ``(*leading, steps, order + 1)`` and
    ``(*leading, steps, b_order + 1)``: a stable filter per leading row whose taps move a
    little from step to step, with ``a0`` neither 1 nor constant."""
    b_order = order if b_order is None else b_order
    rows = int(np.prod(leading, dtype=int))
    if order:
        base = np.stack([random_stable_filter(order, rng, max_radius=0.9)[0] for _ in range(rows)])
    else:
        base = rng.uniform(0.5, 2.0, size=(rows, 1))
    moves = rng.uniform(0.97, 1.03, size=tuple(leading) + (steps, order + 1))
    a = base.reshape(tuple(leading) + (1, order + 1)) * moves
    b = rng.normal(size=tuple(leading) + (steps, b_order + 1))
    return torch.from_numpy(a), torch.from_numpy(b)


def batch_of(*tensors_and_dims):
    """The broadcast of the tensors' leading dims (each without its ``dims`` last)."""
    leading = [tuple(t.shape[: t.dim() - dims]) for t, dims in tensors_and_dims if t is not None]
    return list(torch.broadcast_shapes(*leading))


def problem(kind, order, length, rng, leading=(3,), waveform_shape=(2, 1), with_zi=True, b_order=None, hop=None):
    """Random ``(waveform, a, b, zi, hop)`` float64 of one coefficient kind (``hop``
    replaces the kind's, with one frame more than needed)."""
    steps_of, kind_hop = KINDS[kind]
    steps = steps_of(length) if hop is None else -(-length // hop) + 1
    a, b = varying_coefficients(order, steps, leading, rng, b_order)
    waveform = torch.from_numpy(rng.normal(size=tuple(waveform_shape) + (length,)))
    batch = batch_of((waveform, 1), (a, 2))
    width = max(a.shape[-1], b.shape[-1])
    zi = torch.from_numpy(rng.normal(size=tuple(batch) + (width - 1,))) if with_zi else None
    return waveform, a, b, zi, kind_hop if hop is None else hop


def assert_matches_the_loop(waveform, a, b, zi, hop, rng, needs=(True, True, True, True), tolerance=1e-12):
    """The output, final state and (where ``needs``) the gradients of every input
    (summed over what it broadcast over) against the loop's autograd, for random
    ``dL/dy`` and ``dL/dzf``."""
    batch = batch_of((waveform, 1), (a, 2), (b, 2), (zi, 1))
    inputs = [waveform, a, b, zi]
    needs = [need and t is not None for t, need in zip(inputs, needs)]
    leaves = [t.detach().to(DEVICE).requires_grad_(need) if t is not None else None for t, need in zip(inputs, needs)]
    references = [t.detach().clone().requires_grad_(need) if t is not None else None for t, need in zip(inputs, needs)]
    y, zf = varying.varying_filter(*leaves, batch, "tdf2", hop)
    y_ref, zf_ref = filter_varying_loop(
        references[0], *padded_coefficients(references[1], references[2]), references[3], batch, "tdf2", hop
    )
    assert y.dtype == waveform.dtype and zf.dtype == torch.float64
    scale = max(y_ref.abs().max().item() if y_ref.numel() else 0.0, 1.0)
    torch.testing.assert_close(y.detach().cpu(), y_ref.detach(), rtol=tolerance, atol=tolerance * scale)
    torch.testing.assert_close(zf.detach().cpu(), zf_ref.detach(), rtol=tolerance, atol=tolerance * scale)
    if not any(needs):
        return
    wanted = [i for i, need in enumerate(needs) if need]
    grad_y = torch.from_numpy(rng.normal(size=y_ref.shape))
    grad_zf = torch.from_numpy(rng.normal(size=zf_ref.shape))
    got = torch.autograd.grad([y, zf], [leaves[i] for i in wanted], [grad_y.to(DEVICE), grad_zf.to(DEVICE)])
    # The loop's outputs that are constants (an empty signal's, and its final state
    # without zi) do not depend on anything.
    outputs = [(output, gradient) for output, gradient in ((y_ref, grad_y), (zf_ref, grad_zf)) if output.requires_grad]
    expected = [None] * len(wanted)
    if outputs:
        expected = torch.autograd.grad([o for o, _ in outputs], [references[i] for i in wanted],
                                       [g for _, g in outputs], allow_unused=True)
    for i, gradient, reference in zip(wanted, got, expected):
        reference = torch.zeros_like(inputs[i]) if reference is None else reference
        assert gradient.shape == inputs[i].shape and gradient.dtype == inputs[i].dtype, i
        torch.testing.assert_close(gradient.cpu(), reference, rtol=tolerance, atol=tolerance * scale,
                                   msg=f"gradient of input {i}")


# --- forward and adjoint against the loop ----------------------------------------


@pytest.mark.parametrize("order", [1, 2, 3, 8])
@pytest.mark.parametrize("kind", list(KINDS))
def test_matches_the_loop(kind, order, rng):
    assert_matches_the_loop(*problem(kind, order, LENGTH if order < 8 else 11, rng), rng)


@pytest.mark.parametrize("hop", [1, 3, 5, 10], ids=lambda hop: f"hop{hop}")
def test_hops(hop, rng):
    """Hops that are not the tile: frames starting inside tiles (those run a sample
    at a time; with hop 10 some tiles are whole and some not), a frame every sample."""
    assert_matches_the_loop(*problem("frames", 2, 27 if hop == 10 else 12, rng, hop=hop), rng)


@pytest.mark.parametrize("length", [0, 1, 2], ids=lambda n: f"T{n}")
@pytest.mark.parametrize("with_zi", [False, True], ids=["nozi", "zi"])
@pytest.mark.parametrize("kind", ["samples", "frames"])
def test_short_signals(kind, length, with_zi, rng):
    """Empty, one sample, fewer samples than the order (3): the state passes through
    or is partly consumed, and so does its gradient."""
    assert_matches_the_loop(*problem(kind, 3, length, rng, with_zi=with_zi), rng)


@pytest.mark.parametrize(
    "a_kind, b_kind", [("frames", "constant"), ("constant", "samples"), ("samples", "constant")],
    ids=lambda kind: kind,
)
def test_each_tensor_has_its_own_time_axis(a_kind, b_kind, rng):
    length = 11
    a, _ = varying_coefficients(2, KINDS[a_kind][0](length), (3,), rng)
    _, b = varying_coefficients(2, KINDS[b_kind][0](length), (3,), rng)
    hop = max(KINDS[a_kind][1], KINDS[b_kind][1])
    waveform = torch.from_numpy(rng.normal(size=(2, 1, length)))
    assert_matches_the_loop(waveform, a, b, None, hop, rng)


@pytest.mark.parametrize(
    "a_order, b_order", [(2, 0), (0, 3), (1, 4)], ids=["fewer-b-taps", "fir", "more-b-taps"],
)
def test_a_and_b_of_different_lengths(a_order, b_order, rng):
    assert_matches_the_loop(*problem("frames", a_order, 11, rng, b_order=b_order), rng)


LAYOUTS = [
    # (waveform leading, coefficients leading, zi leading)
    ((2, 1), (3,), None),  # bank: one signal through every filter
    ((2, 3), (2, 3), (2, 3)),  # per-example filters
    ((2, 3), (3,), (3,)),  # per-channel filters, one state per channel
    ((2, 1, 2, 1), (2, 1, 2), (1, 2, 1, 1)),  # four batch dims, broadcast every way
]


@pytest.mark.parametrize("waveform_leading, leading, zi_leading", LAYOUTS,
                         ids=["bank", "per-example", "per-channel", "four-dims"])
def test_broadcast_layouts(waveform_leading, leading, zi_leading, rng):
    waveform, a, b, _, hop = problem("frames", 2, 10, rng, leading=leading, waveform_shape=waveform_leading)
    zi = torch.from_numpy(rng.normal(size=zi_leading + (2,))) if zi_leading else None
    assert_matches_the_loop(waveform, a, b, zi, hop, rng)


@pytest.mark.parametrize("needs", [(True, False, False, False), (False, True, False, False),
                                   (False, False, True, False), (False, False, False, True)],
                         ids=["waveform", "a", "b", "zi"])
def test_each_gradient_alone(needs, rng):
    assert_matches_the_loop(*problem("frames", 2, 10, rng), rng, needs=needs)


def test_strided_inputs_are_read_in_place(rng):
    """A strided waveform, coefficients with their taps and time swapped in memory,
    and per-sample coefficients expanded from one row (time stride 0)."""
    waveform = torch.from_numpy(rng.normal(size=(2, 1, 2 * LENGTH)))[..., ::2]
    a, _ = varying_coefficients(2, LENGTH, (3,), rng)
    a = a.transpose(-1, -2).contiguous().transpose(-1, -2)
    _, b = varying_coefficients(2, 1, (3,), rng)
    assert_matches_the_loop(waveform, a, b.expand(3, LENGTH, 3), None, 0, rng)


def test_float32_is_a_float64_recurrence_rounded_once(rng):
    waveform, a, b, zi, hop = [t.float() if isinstance(t, torch.Tensor) else t for t in problem("frames", 2, 12, rng)]
    y, zf = varying.varying_filter(*[t.to(DEVICE) for t in (waveform, a, b, zi)], [2, 3], "tdf2", hop)
    y_ref, zf_ref = filter_varying_loop(waveform, *padded_coefficients(a, b), zi, [2, 3], "tdf2", hop)
    assert y.dtype == torch.float32 and zf.dtype == torch.float64
    torch.testing.assert_close(y.cpu(), y_ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(zf.cpu(), zf_ref, rtol=1e-12, atol=1e-12)


def test_chained_chunks_equal_one_call(rng):
    """Cut at multiples of the hop, each chunk given its frames (through the next
    chunk's first) and the state the last one returned."""
    waveform, a, b, zi, hop = problem("frames", 2, 21, rng)
    batch = [2, 3]
    y_whole, zf_whole = varying.varying_filter(*[t.to(DEVICE) for t in (waveform, a, b, zi)], batch, "tdf2", hop)
    pieces, state = [], zi.to(DEVICE)
    for start, end in [(0, 8), (8, 16), (16, 21)]:
        frames = slice(start // hop, -(-end // hop) + 1)
        y, state = varying.varying_filter(
            waveform[..., start:end].to(DEVICE), a[:, frames].to(DEVICE), b[:, frames].to(DEVICE), state, batch,
            "tdf2", hop,
        )
        pieces.append(y)
    torch.testing.assert_close(torch.cat(pieces, -1), y_whole, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(state, zf_whole, rtol=1e-13, atol=1e-13)


def test_no_chains(rng):
    assert_matches_the_loop(*problem("samples", 2, 5, rng, waveform_shape=(0, 1)), rng)


def test_gradcheck(rng):
    """The analytic adjoint against finite differences."""
    waveform, a, b, zi, hop = problem("frames", 2, 4, rng, leading=(1,), waveform_shape=(1,), hop=2)
    leaves = [t.to(DEVICE).requires_grad_(True) for t in (waveform, a, b, zi)]
    assert gradcheck(lambda *inputs: varying.varying_filter(*inputs, [1], "tdf2", hop), leaves, fast_mode=True)


def test_double_backward_differentiates_the_loop(rng):
    """A recorded backward (``create_graph=True``) gives the loop's second derivatives."""
    waveform, a, b, zi, hop = problem("frames", 2, 6, rng, leading=(1,), waveform_shape=(1,), hop=2)
    weights = torch.from_numpy(rng.normal(size=(1, 6)))
    second = []
    for run in (lambda *inputs: varying.varying_filter(*[t.to(DEVICE) for t in inputs], [1], "tdf2", hop),
                lambda *inputs: filter_varying_loop(inputs[0], *padded_coefficients(inputs[1], inputs[2]), inputs[3],
                                                    [1], "tdf2", hop)):
        leaves = [t.detach().clone().requires_grad_(True) for t in (waveform, a, b, zi)]
        y, zf = run(*leaves)
        first = torch.autograd.grad((y.cpu() * weights).sum() + zf.cpu().sum(), leaves, create_graph=True)
        second.append(torch.autograd.grad(sum((g * g).sum() for g in first), leaves))
    for got, expected in zip(*second):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


# --- what is refused ------------------------------------------------------------


def test_the_coefficient_modes_are_the_kernels():
    kernels = varying._kernels()
    assert (varying.CONSTANT, varying.SAMPLES, varying.FRAMES) == (
        kernels.CONSTANT.value, kernels.SAMPLES.value, kernels.FRAMES.value)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(form="df1"), "expected form 'tdf2'"),
        (dict(order=9), "expected order <= 8"),
        (dict(batch_dims=5), "expected at most 4 batch dims"),
        (dict(dtype=torch.float16), "expected waveform in float32 or float64"),
        (dict(steps=5), "time rows"),
        (dict(zi_size=3), "expected zi of shape"),
    ],
    ids=["form", "order", "batch-dims", "dtype", "time-axis", "zi"],
)
def test_unsupported_problems_are_refused(change, message):
    order = change.get("order", 2)
    leading = [1] * (change.get("batch_dims", 2) - 1)
    waveform = torch.zeros([1] + leading + [8], dtype=change.get("dtype", torch.float64), device=DEVICE)
    a = torch.ones([3, change.get("steps", 8), order + 1], dtype=torch.float64, device=DEVICE)
    zi = torch.zeros(change["zi_size"], dtype=torch.float64, device=DEVICE) if "zi_size" in change else None
    batch = list(waveform.shape[:-1])
    batch[-1] = 3
    with pytest.raises(ValueError, match=message):
        varying.varying_filter(waveform, a, a, zi, batch, change.get("form", "tdf2"), 0)


@pytest.mark.parametrize("output", ["y", "zf"])
def test_a_loss_of_one_output(output, rng):
    """The other output's gradient is absent (read as zero, with no tensor made)."""
    waveform, a, b, zi, hop = problem("frames", 2, 10, rng)
    leaves = [t.to(DEVICE).requires_grad_(True) for t in (waveform, a, b, zi)]
    references = [t.detach().clone().requires_grad_(True) for t in (waveform, a, b, zi)]
    y, zf = varying.varying_filter(*leaves, [2, 3], "tdf2", hop)
    y_ref, zf_ref = filter_varying_loop(references[0], *padded_coefficients(references[1], references[2]),
                                        references[3], [2, 3], "tdf2", hop)
    got = torch.autograd.grad((y if output == "y" else zf).sum(), leaves)
    expected = torch.autograd.grad((y_ref if output == "y" else zf_ref).sum(), references)
    for gradient, reference in zip(got, expected):
        torch.testing.assert_close(gradient.cpu(), reference, rtol=1e-12, atol=1e-12)
