"""The block backend's parallel-in-time algorithm: layouts, block and chunk edges, the
reversed pass, the fused adjoint, and an op count that does not grow with ``T``."""
import numpy as np
import pytest
import torch

from multi_lfilter import lfilter_bank
from multi_lfilter.backends.block.adjoint import block_adjoint
from multi_lfilter.backends.block.filter import MAX_CHUNKS, chunk_starts
from multi_lfilter.backends.block import filter_block
from multi_lfilter.backends.loop import adjoint as loop_adjoint
from multi_lfilter.backends.loop import filter_loop

from helpers import make_layout_problem

LAYOUTS = [
    ((3, 1, 50), (4, 3), (4, 3), None),  # a bank: the input shared by the filters
    ((3, 1, 50), (4, 3), (4, 3), (3, 4, 2)),  # ... with a state per row and filter
    ((1, 1, 50), (4, 3), (4, 3), (3, 4, 2)),  # rows that exist only through zi
    ((3, 4, 50), (4, 3), (4, 3), (4, 2)),  # one filter per channel: not shared
    ((3, 1, 50), (3,), (4, 3), None),  # the numerator alone varies
    ((2, 1, 1, 50), (5, 1, 3), (1, 4, 3), (2, 5, 4, 2)),  # filter dims from a and from b
]
LAYOUT_IDS = ["bank", "bank-zi", "rows-from-zi", "per-channel", "b-only", "mixed"]
# The default budget (one chunk for these sizes) and none at all (the most chunks).
CHUNKINGS = {"one-chunk": 32 << 20, "chunks": 0}


@pytest.mark.parametrize("waveform_shape, a_shape, b_shape, zi_shape", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("block_length", [2, 7, 32])
@pytest.mark.parametrize("length", [0, 1, 7, 50], ids=lambda n: f"T{n}")
@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_layouts_blocks_and_chunks_match_the_loop(waveform_shape, a_shape, b_shape, zi_shape, block_length, length, chunking, rng):
    """Every layout (shared input or not), block edge and chunk edge, both directions."""
    waveform, a_coeffs, b_coeffs, zi = make_layout_problem(waveform_shape, a_shape, b_shape, zi_shape, length, rng)
    budget = CHUNKINGS[chunking]
    expected_y, expected_zf = filter_loop(waveform, a_coeffs, b_coeffs, zi)
    y, zf = filter_block(waveform, a_coeffs, b_coeffs, zi, block_length, chunk_min_bytes=budget)
    torch.testing.assert_close(y, expected_y, rtol=0, atol=1e-12)
    torch.testing.assert_close(zf, expected_zf, rtol=0, atol=1e-12)
    # Backwards in time (the adjoint's pass): the flipped signal's filtering, flipped.
    expected_y, expected_zf = filter_loop(waveform.flip(-1), a_coeffs, b_coeffs, zi)
    y, zf = filter_block(waveform, a_coeffs, b_coeffs, zi, block_length, reverse=True, chunk_min_bytes=budget)
    torch.testing.assert_close(y, expected_y.flip(-1), rtol=0, atol=1e-12)
    torch.testing.assert_close(zf, expected_zf, rtol=0, atol=1e-12)


@pytest.mark.parametrize("waveform_shape, a_shape, b_shape, zi_shape", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("length", [0, 1, 7, 50], ids=lambda n: f"T{n}")
@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_graph_path_matches_the_loop(waveform_shape, a_shape, b_shape, zi_shape, length, chunking, rng):
    """With inputs requiring grad (the TorchScript path) chunks are joined, not written
    into buffers, and autograd through them gives the loop's gradients."""
    inputs = make_layout_problem(waveform_shape, a_shape, b_shape, zi_shape, length, rng)
    leaves = [t.clone().requires_grad_(True) if t is not None else None for t in inputs]
    y, zf = filter_block(*leaves, 7, chunk_min_bytes=CHUNKINGS[chunking])
    expected_y, expected_zf = filter_loop(*inputs)
    torch.testing.assert_close(y.detach(), expected_y, rtol=0, atol=1e-12)
    torch.testing.assert_close(zf.detach(), expected_zf, rtol=0, atol=1e-12)
    if length == 0:  # the loop's outputs then have no graph to compare with
        return
    loss = (y * torch.linspace(-1, 1, length, dtype=torch.float64)).sum() + zf.square().sum()
    present = [leaf for leaf in leaves if leaf is not None]
    gradients = torch.autograd.grad(loss, present, allow_unused=True)
    loop_leaves = [t.clone().requires_grad_(True) if t is not None else None for t in inputs]
    y_loop, zf_loop = filter_loop(*loop_leaves)
    loss_loop = (y_loop * torch.linspace(-1, 1, length, dtype=torch.float64)).sum() + zf_loop.square().sum()
    expected = torch.autograd.grad(loss_loop, [leaf for leaf in loop_leaves if leaf is not None], allow_unused=True)
    for actual, wanted in zip(gradients, expected):
        if wanted is None:
            assert actual is None or not actual.abs().max() > 0
        else:
            torch.testing.assert_close(actual, wanted, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("waveform_shape, a_shape, b_shape, zi_shape", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("length", [0, 1, 7, 50, 333], ids=lambda n: f"T{n}")
@pytest.mark.parametrize("chunking", list(CHUNKINGS))
@pytest.mark.parametrize("with_grad_zf", [False, True], ids=["no-grad-zf", "grad-zf"])
def test_fused_adjoint_matches_the_composite_one(waveform_shape, a_shape, b_shape, zi_shape, length, chunking, with_grad_zf, rng):
    """The chunked adjoint (float64 reductions per chunk, the tail as one more piece)
    equals the reference adjoint over the loop for every input."""
    waveform, a_coeffs, b_coeffs, zi = make_layout_problem(waveform_shape, a_shape, b_shape, zi_shape, length, rng)
    y, zf = filter_loop(waveform, a_coeffs, b_coeffs, zi)
    grad_y = torch.from_numpy(rng.normal(size=y.shape))
    grad_zf = torch.from_numpy(rng.normal(size=zf.shape)) if with_grad_zf else None
    zi_shape_list = list(zi.shape) if zi is not None else None
    needs = (True, True, True, zi is not None)
    actual = block_adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape_list, needs,
                           block_length=7, chunk_min_bytes=CHUNKINGS[chunking])
    if length == 0:  # the reference adjoint does not take empty signals: the state passes through
        assert actual[0].shape == waveform.shape and not actual[0].any()
        assert not actual[1].any() and not actual[2].any()
        if zi is not None:
            expected_zi = (grad_zf if grad_zf is not None else torch.zeros_like(zf)).sum_to_size(zi.shape)
            torch.testing.assert_close(actual[3], expected_zi)
        return
    expected = loop_adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape_list, needs)
    for name, got, wanted in zip(("waveform", "a", "b", "zi"), actual, expected):
        if wanted is None:
            assert got is None, name
        else:
            torch.testing.assert_close(got, wanted, rtol=1e-10, atol=1e-10, msg=name)


def test_the_adjoint_computes_only_what_is_asked(rng):
    waveform, a_coeffs, b_coeffs, zi = make_layout_problem((3, 1, 40), (4, 3), (4, 3), (3, 4, 2), 40, rng)
    y, _ = filter_loop(waveform, a_coeffs, b_coeffs, zi)
    gradients = block_adjoint(torch.ones_like(y), None, waveform, a_coeffs, b_coeffs, y, [3, 4, 2], (False, True, False, False))
    assert gradients[0] is None and gradients[2] is None and gradients[3] is None
    assert gradients[1].shape == a_coeffs.shape


@pytest.mark.parametrize("n_blocks", [0, 1, 2, 3, 5, 17, 500, 4001])
@pytest.mark.parametrize("budget", [1 << 40, 0], ids=["fits", "tight"])
def test_chunks_cover_every_block_in_few_chunks_of_two_or_more(n_blocks, budget):
    starts = chunk_starts(n_blocks, bytes_per_block=1 << 20, output_bytes=0, min_bytes=budget)
    assert starts[0] == 0 and starts[-1] == n_blocks
    sizes = [stop - start for start, stop in zip(starts, starts[1:])]
    assert len(sizes) <= MAX_CHUNKS
    if n_blocks >= 2:
        assert min(sizes) >= 2
    if budget and n_blocks:  # everything fits: one chunk
        assert sizes == [n_blocks]


def _aten_op_count(length):
    """aten ops (every profiler event, nested ones included) of one forward+backward
    of the bank layout: 2 signals through 16 biquads."""
    from torch.profiler import profile

    rng = np.random.default_rng(0)
    waveform = torch.from_numpy(rng.normal(size=(2, 1, length))).float()
    a = torch.tensor([[1.0, -1.6, 0.8]]).repeat(16, 1).requires_grad_(True)
    b = torch.rand(16, 3, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    upstream = torch.ones(2, 16, length)
    with profile() as profiler:
        lfilter_bank(waveform, a_coeffs=a, b_coeffs=b, backend="block").backward(upstream)
    return sum(1 for event in profiler.events() if event.name.startswith("aten::"))


def test_op_count_does_not_grow_with_the_signal():
    """Blocks are processed all at once, the histories by a log-depth scan: 8x the
    samples adds three scan steps, not 8x the ops (the per-block loop ran 41,073 ops
    at T = 16000 and 317,573 at T = 128,000)."""
    short, long = _aten_op_count(16_000), _aten_op_count(128_000)
    assert long <= 1.25 * short, (short, long)
    assert short <= 2_000, short
