"""The portable time-varying filter (``backends/varying_scan.py``) against the reference
loop (``backends/varying_loop.py``) in float64: every form, orders 1 to 8, per-sample,
frame-rate and constant coefficients, the broadcast layouts, short and empty
signals, several levels of the scan, chunks, gradients, ``torch.func``,
``torch.compile``, ``torch.export`` (an op count that does not grow with ``T``) and
TorchScript."""
import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from multi_lfilter.backends.varying_loop import filter_varying_loop, padded_coefficients, state_size
from multi_lfilter.backends.varying_scan import BLOCK_LENGTH, GROUP_BLOCKS, max_length, varying_filter
from multi_lfilter.backends.varying_scan.layout import per_step

FORMS = ["tdf2", "df1", "df2", "tdf1"]
# Levels small enough to reach many groups with short signals, and to trace quickly.
SMALL = {"block_length": 2, "group_blocks": 2, "group_levels": 3}  # up to 24 samples
LAYOUTS = {
    # name: (waveform leading shape, coefficient leading shape)
    "bank": ((2, 1), (3,)),
    "per-example": ((2, 1), (2, 3)),
    "per-channel": ((2, 3), (3,)),
}


def swept_filters(shape, steps, order, seed, max_radius=0.9):
    """``(a, b)`` float64 ``(*shape, steps, order + 1)``: poles whose radii and angles
    move linearly from one random stable filter to another (stable at every step, at
    any order), a moving ``a0`` and moving zeros."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(low, high, *size):
        return low + (high - low) * torch.rand(*size, generator=generator, dtype=torch.float64)

    time = torch.linspace(0, 1, steps, dtype=torch.float64)
    a = torch.ones(*shape, steps, 1, dtype=torch.float64)
    for width in [2] * (order // 2) + [1] * (order % 2):
        radius = uniform(0.2, max_radius, *shape, 1) + (uniform(0.2, max_radius, *shape, 1) - 0.5) * 0.5 * time
        if width == 2:
            angle = uniform(0.1, 3.0, *shape, 1) + uniform(-0.5, 0.5, *shape, 1) * time
            section = torch.stack([torch.ones_like(radius), -2 * radius * torch.cos(angle), radius * radius], -1)
        else:
            section = torch.stack([torch.ones_like(radius), -radius * torch.sign(uniform(-1, 1, *shape, 1))], -1)
        product = torch.zeros(*shape, steps, a.shape[-1] + width, dtype=torch.float64)
        for i in range(a.shape[-1]):
            product[..., i : i + width + 1] += a[..., i : i + 1] * section
        a = product
    a = a * uniform(0.5, 2.0, *shape, steps, 1)
    b = torch.randn(*shape, 1, order + 1, generator=generator, dtype=torch.float64)
    b = b * uniform(0.5, 1.5, *shape, steps, 1)
    return a, b


def batch_of(*shapes):
    return list(torch.broadcast_shapes(*shapes))


def loop(waveform, a, b, zi, batch, form, hop):
    a_wide, b_wide = padded_coefficients(a, b)
    return filter_varying_loop(waveform, a_wide, b_wide, zi, batch, form, hop)


def assert_close_to_peak(actual, expected, tolerance=1e-12):
    """Equal to ``tolerance`` times the expected values' peak (at least 1)."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    torch.testing.assert_close(actual, expected, rtol=0, atol=tolerance * scale)


def problem(form, order, coefficients, layout, length, with_zi, seed, hop=7):
    """``(waveform, a, b, zi, batch, hop)`` for one case; ``b`` has fewer taps than ``a``
    where the order allows (the shorter is zero-padded)."""
    waveform_lead, coefficient_lead = LAYOUTS[layout]
    steps = {"per-sample": length, "frames": math.ceil(length / hop) + 1, "constant": 1}[coefficients]
    a, b = swept_filters(coefficient_lead, max(steps, 1), order, seed)
    a, b = a[..., :steps, :], b[..., :steps, : max(1, order)]
    generator = torch.Generator().manual_seed(seed + 1)
    waveform = torch.randn(*waveform_lead, length, generator=generator, dtype=torch.float64)
    batch = batch_of(waveform_lead, coefficient_lead)
    zi = None
    if with_zi:
        zi = torch.randn(*batch, state_size(form, order), generator=generator, dtype=torch.float64)
    return waveform, a, b, zi, batch, hop if coefficients == "frames" else 0


CASES = [
    ("per-sample", "bank", False),
    ("per-sample", "per-channel", True),
    ("frames", "per-example", True),
    ("frames", "bank", False),
    ("constant", "per-channel", False),
    ("constant", "per-example", True),
]


@pytest.mark.parametrize("coefficients, layout, with_zi", CASES, ids=["-".join(map(str, case)) for case in CASES])
@pytest.mark.parametrize("order", [1, 2, 3, 8])
@pytest.mark.parametrize("form", FORMS)
def test_matches_the_loop(form, order, coefficients, layout, with_zi):
    """75 samples: not a multiple of the block length nor of the hop (7)."""
    waveform, a, b, zi, batch, hop = problem(form, order, coefficients, layout, 75, with_zi, seed=order)
    y, zf = varying_filter(waveform, a, b, zi, batch, form, hop)
    expected_y, expected_zf = loop(waveform, a, b, zi, batch, form, hop)
    assert_close_to_peak(y, expected_y)
    assert_close_to_peak(zf, expected_zf)


@pytest.mark.parametrize("length", [0, 1, 2, 5])
@pytest.mark.parametrize("order", [3, 8])
@pytest.mark.parametrize("form", FORMS)
def test_empty_and_short_signals(form, order, length):
    """Shorter than the order (zi's values still in flight at the end), one sample, none."""
    waveform, a, b, zi, batch, hop = problem(form, order, "per-sample", "per-channel", length, True, seed=3)
    for state in [zi, None]:
        y, zf = varying_filter(waveform, a, b, state, batch, form, hop)
        expected_y, expected_zf = loop(waveform, a, b, state, batch, form, hop)
        assert_close_to_peak(y, expected_y)
        assert_close_to_peak(zf, expected_zf)


@pytest.mark.parametrize("form", FORMS)
def test_several_levels_of_the_scan(form):
    """3000 samples: 25 groups with the default levels; with blocks of 2 in groups of 2,
    752 groups, 10 doubling steps (the shrunken levels reach every step that matters)."""
    waveform, a, b, zi, batch, hop = problem(form, 2, "per-sample", "bank", 3000, True, seed=5)
    waveform, a, b, zi = waveform[:1], a[:2], b[:2], zi[:1, :2]
    batch = [1, 2]
    expected_y, expected_zf = loop(waveform, a, b, zi, batch, form, hop)
    levels = {"block_length": 2, "group_blocks": 2, "group_levels": 10}
    for levels_used in [{}, levels]:
        y, zf = varying_filter(waveform, a, b, zi, batch, form, hop, **levels_used)
        assert_close_to_peak(y, expected_y)
        assert_close_to_peak(zf, expected_zf)


def test_longer_signals_than_the_levels_cover_raise():
    waveform, a, b, zi, batch, hop = problem("tdf2", 2, "constant", "bank", max_length(**SMALL) + 1, False, seed=0)
    message = f"expected at most {max_length(**SMALL)} samples for the varying_scan backend, got 25"
    with pytest.raises(ValueError, match=message):
        varying_filter(waveform, a, b, zi, batch, "tdf2", hop, **SMALL)
    y, zf = varying_filter(waveform[..., :-1], a, b, zi, batch, "tdf2", hop, **SMALL)
    assert_close_to_peak(y, loop(waveform[..., :-1], a, b, zi, batch, "tdf2", hop)[0])
    assert max_length() >= 2**25 - 256


@pytest.mark.parametrize("coefficients", ["per-sample", "frames"])
@pytest.mark.parametrize("form", FORMS)
def test_chained_chunks_equal_one_call(form, coefficients):
    """Cut at multiples of the hop; a chunk gets its frames and the next chunk's first."""
    hop, length = 7, 70
    waveform, a, b, zi, batch, hop = problem(form, 3, coefficients, "per-example", length, True, seed=2, hop=hop)
    whole_y, whole_zf = varying_filter(waveform, a, b, zi, batch, form, hop)
    pieces, state = [], zi
    for start, end in [(0, 21), (21, 28), (28, 70)]:
        if coefficients == "frames":
            first, last = start // hop, math.ceil(end / hop) + 1
            a_chunk, b_chunk = a[..., first:last, :], b[..., first:last, :]
        else:
            a_chunk, b_chunk = a[..., start:end, :], b[..., start:end, :]
        y, state = varying_filter(waveform[..., start:end], a_chunk, b_chunk, state, batch, form, hop)
        pieces.append(y)
    assert_close_to_peak(torch.cat(pieces, -1), whole_y)
    assert_close_to_peak(state, whole_zf)


@pytest.mark.parametrize("coefficients", ["per-sample", "frames"])
@pytest.mark.parametrize("form", FORMS)
def test_gradients_match_the_loop(form, coefficients):
    """Gradients of a random loss of y and zf for every input, frames' at frame rate."""
    waveform, a, b, zi, batch, hop = problem(form, 2, coefficients, "bank", 40, True, seed=4)
    generator = torch.Generator().manual_seed(9)
    upstream_y = torch.randn(*batch, 40, generator=generator, dtype=torch.float64)
    upstream_zf = torch.randn(*batch, state_size(form, 2), generator=generator, dtype=torch.float64)
    gradients = []
    for run in [varying_filter, loop]:
        leaves = [tensor.clone().requires_grad_(True) for tensor in (waveform, a, b, zi)]
        y, zf = run(*leaves, batch, form, hop)
        gradients.append(torch.autograd.grad((y * upstream_y).sum() + (zf * upstream_zf).sum(), leaves))
    for actual, expected in zip(*gradients):
        assert_close_to_peak(actual, expected)
    assert gradients[0][1].shape == a.shape  # frame rate for frames


@pytest.mark.parametrize("form", FORMS)
def test_gradcheck_and_gradgradcheck(form):
    """Tiny float64 cases (frames, hop 2) on the shrunken levels: the same code, fewer
    ops to differentiate twice. First order for the forms with two states per order."""
    order = 1 if state_size(form, 1) == 2 else 2
    generator = torch.Generator().manual_seed(0)
    waveform = torch.randn(1, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    a, b = swept_filters((1,), 3, order, seed=1)
    a.requires_grad_(True)
    b.requires_grad_(True)
    zi = torch.randn(1, state_size(form, order), generator=generator, dtype=torch.float64, requires_grad=True)

    def run(waveform, a, b, zi):
        return varying_filter(waveform, a, b, zi, [1], form, 2, **SMALL)

    assert gradcheck(run, (waveform, a, b, zi))
    assert gradgradcheck(run, (waveform, a, b, zi))


def test_torch_func_vmap_and_grad():
    waveform, a, b, zi, batch, hop = problem("df2", 2, "per-sample", "per-channel", 30, False, seed=6)
    expected_y, _ = loop(waveform, a, b, None, batch, "df2", hop)
    mapped = torch.func.vmap(lambda x: varying_filter(x, a, b, None, batch[1:], "df2", hop)[0])(waveform)
    assert_close_to_peak(mapped, expected_y)

    def loss(a_coeffs):
        return varying_filter(waveform, a_coeffs, b, None, batch, "tdf1", hop)[0].square().sum()

    leaf = a.clone().requires_grad_(True)
    loop(waveform, leaf, b, None, batch, "tdf1", hop)[0].square().sum().backward()
    assert_close_to_peak(torch.func.grad(loss)(a), leaf.grad)


def _compiled_matches_the_loop(backend):
    """One graph (``fullgraph``) forward and backward; values and gradients as the loop's."""
    waveform, a, b, zi, batch, hop = problem("tdf1", 2, "frames", "bank", 20, True, seed=7, hop=3)
    compiled = torch.compile(
        lambda x, a, b, zi: varying_filter(x, a, b, zi, batch, "tdf1", hop, **SMALL),
        fullgraph=True, dynamic=False, backend=backend,
    )
    results = []
    for run in [compiled, lambda *inputs: loop(*inputs, batch, "tdf1", hop)]:
        leaves = [tensor.clone().requires_grad_(True) for tensor in (waveform, a, b, zi)]
        y, zf = run(*leaves)
        results.append([y, zf, *torch.autograd.grad(y.square().sum() + zf.sum(), leaves)])
    for actual, expected in zip(*results):
        assert_close_to_peak(actual.detach(), expected.detach())


def test_compiles_to_one_graph():
    """Dynamo captures the whole filter and AOTAutograd its backward (``aot_eager``:
    Inductor's C++ compile takes minutes on a loaded machine; the slow test runs it)."""
    _compiled_matches_the_loop("aot_eager")


@pytest.mark.slow
def test_compiles_with_inductor():
    _compiled_matches_the_loop("inductor")


class Bank(torch.nn.Module):
    def __init__(self, form, hop=0, levels=None):
        super().__init__()
        self.form = form
        self.hop = hop
        self.levels = levels or {}

    def forward(self, waveform, a_coeffs, b_coeffs, zi):
        return varying_filter(waveform, a_coeffs, b_coeffs, zi, [2, 3], self.form, self.hop, **self.levels)


def _exported(form, length, coefficients="per-sample", dynamic_shapes=None, levels=None):
    waveform, a, b, zi, batch, hop = problem(form, 2, coefficients, "bank", length, True, seed=8, hop=5)
    program = torch.export.export(Bank(form, hop, levels), (waveform, a, b, zi), dynamic_shapes=dynamic_shapes)
    return program, (waveform, a, b, zi)


def test_export_graph_has_the_same_ops_at_every_length():
    """The default levels: a loop over blocks or samples would add nodes at 4000."""
    counts = []
    for length in [500, 4000]:
        program, inputs = _exported("df1", length)
        counts.append(sum(1 for node in program.graph.nodes if node.op == "call_function"))
        y, zf = program.module()(*inputs)
        expected_y, expected_zf = loop(*inputs, [2, 3], "df1", 0)
        assert_close_to_peak(y, expected_y)
        assert_close_to_peak(zf, expected_zf)
    assert counts[0] == counts[1], f"{counts[0]} nodes at T = 500, {counts[1]} at T = 4000"


@pytest.mark.parametrize("coefficients", ["per-sample", "frames"])
def test_export_with_a_dynamic_length_runs_at_other_lengths(coefficients):
    """Dynamic ``T`` (and number of frames); the signal may reach ``max_length``."""
    levels = {"block_length": 4, "group_blocks": 2, "group_levels": 5}  # up to 240 samples
    time, frames = torch.export.Dim("time", min=2, max=max_length(**levels)), torch.export.Dim("frames", min=2)
    steps = time if coefficients == "per-sample" else frames
    program, _ = _exported("tdf2", 50, coefficients, ({2: time}, {1: steps}, {1: steps}, None), levels)
    for length in [3, 97, 240]:
        waveform, a, b, zi, batch, hop = problem("tdf2", 2, coefficients, "bank", length, True, seed=length, hop=5)
        y, zf = program.module()(waveform, a, b, zi)
        expected_y, expected_zf = loop(waveform, a, b, zi, batch, "tdf2", hop)
        assert_close_to_peak(y, expected_y)
        assert_close_to_peak(zf, expected_zf)


@pytest.mark.slow
def test_onnx_export_runs_in_onnxruntime_at_other_lengths():
    """``torch.onnx.export(dynamo=True)`` with a dynamic length (about a minute)."""
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    levels = {"block_length": 4, "group_blocks": 2, "group_levels": 5}
    time = torch.export.Dim("time", min=2, max=max_length(**levels))
    waveform, a, b, zi, batch, hop = problem("df1", 2, "per-sample", "bank", 50, True, seed=12)
    program = torch.onnx.export(
        Bank("df1", 0, levels), (waveform, a, b, zi), dynamic_shapes=({2: time}, {1: time}, {1: time}, None),
        dynamo=True, verbose=False,
    )
    session = onnxruntime.InferenceSession(program.model_proto.SerializeToString())
    for length in [9, 200]:
        waveform, a, b, zi, batch, hop = problem("df1", 2, "per-sample", "bank", length, True, seed=length)
        feeds = {value.name: tensor.numpy() for value, tensor in zip(session.get_inputs(), (waveform, a, b, zi))}
        y, zf = session.run(None, feeds)
        expected_y, expected_zf = loop(waveform, a, b, zi, batch, "df1", hop)
        assert_close_to_peak(torch.from_numpy(y), expected_y)
        assert_close_to_peak(torch.from_numpy(zf), expected_zf)


def test_scripted_equals_eager():
    scripted = torch.jit.script(varying_filter)
    for form in FORMS:
        waveform, a, b, zi, batch, hop = problem(form, 3, "frames", "per-example", 40, True, seed=10)
        expected = varying_filter(waveform, a, b, zi, batch, form, hop)
        for actual, expected in zip(scripted(waveform, a, b, zi, batch, form, hop), expected):
            assert torch.equal(actual, expected)


def test_float32_returns_float32_y_and_float64_zf():
    waveform, a, b, zi, batch, hop = problem("tdf2", 2, "per-sample", "bank", 50, True, seed=11)
    y, zf = varying_filter(waveform.float(), a.float(), b.float(), zi.float(), batch, "tdf2", hop)
    expected_y, expected_zf = loop(waveform.float(), a.float(), b.float(), zi.float(), batch, "tdf2", hop)
    assert y.dtype == torch.float32 and zf.dtype == torch.float64
    torch.testing.assert_close(y, expected_y, rtol=0, atol=1e-6 * expected_y.abs().max().item())
    torch.testing.assert_close(zf, expected_zf, rtol=0, atol=1e-12 * expected_zf.abs().max().item())


def test_constant_coefficients_are_not_expanded_in_time():
    a = torch.tensor([[[1.0, -0.5, 0.25]]], dtype=torch.float64)  # (1, 1, K): one chain, constant
    positions = torch.zeros(BLOCK_LENGTH, 3, GROUP_BLOCKS, dtype=torch.long)
    assert per_step(a, positions, 0, 1).shape == (1, 1, 1, 3, 1)
