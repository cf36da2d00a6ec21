"""The block backend: the recurrence as matrix products, parallel in time.

Made of standard tensor ops only, so it runs on any device, scripts with TorchScript
and exports; it is the portable fallback on CUDA and the scripted path for long
signals. Time is cut into blocks of ``L`` samples; in row-vector form, per filter
(the matrices are described in ``block.matrices``):

1. every block's output from rest, ``x_ext @ W``, for all blocks at once (one
   batched product; ``x_ext`` is the block's input preceded by the ``N`` samples
   before it);
2. the history entering every block (its last ``N`` outputs before it),
   ``H[k + 1] = H[k] P + u[k]``, by a log-depth scan over the blocks;
3. ``y = x_ext @ W + H @ O`` (``+ zi @ S`` in the first block), one more batched
   product.

The number of tensor ops grows with ``log2(T / L)``, not with ``T``. Where the
float64 temporaries of all blocks at once would exceed ``CHUNK_MIN_BYTES``, steps 1
and 3 run over chunks of blocks of at most an eighth of the output's bytes, at most
``MAX_CHUNKS`` of them. When the input is shared by the filters (a ``(B, 1, T)`` signal
through ``(C, K)`` filters, the bank case) step 1 is one product with every filter's
``W`` side by side, and the input is never copied per filter.

The adjoint runs the same algorithm in reversed time on the output's gradient and
reduces every gradient chunk by chunk, in float64, as batched products: the gradient
of ``v`` (``g_v`` in ``_adjoint``) is never stored whole.

Arithmetic is float64 whatever the input dtype (complex128 for complex calls, whose
coefficients arrive in it): powers of ``P`` for poles near the unit circle lose
accuracy in float32 (a float32 prototype of this scan missed band-passes down to
50 Hz by 2e-4 to 1e-3 of the output).
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..._call_mode import needs_graph
from ..._shapes import filter_batch_shape
from ..._state import final_state, last_samples_reversed
from .adjoint import block_adjoint
from .cascade import cascade_forward_blocks
from .filter import FILTER_BLOCK_LENGTH, CHUNK_MIN_BYTES, BlockFilter
from .layout import MatrixLayout

def filter_block(
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor],
    block_length: int = FILTER_BLOCK_LENGTH,
    reverse: bool = False,
    chunk_min_bytes: int = CHUNK_MIN_BYTES,
) -> Tuple[Tensor, Tensor]:
    """Filter with normalised float64 coefficients by blocks; see the module doc.

    Args:
        waveform: ``(..., T)``.
        a_coeffs: ``(..., K)`` float64 (complex128 for a complex call, with every
            input complex), ``a_coeffs[..., 0] == 1``.
        b_coeffs: ``(..., K)`` float64 (complex128).
        zi: ``(..., N)`` or ``None``.
        block_length: ``L``; raised to ``N`` where smaller.
        reverse: filter backwards in time, that is ``flip(filter(flip(waveform)))``,
            without either flip of the whole signal (the adjoint's backward pass).
        chunk_min_bytes: the float64 temporaries of all blocks at once up to which
            they are not chunked (tests force several chunks on small problems with 0).

    Returns:
        ``(y, zf)``: ``(*batch, T)`` and ``(*batch, N)`` in the waveform's dtype
        (with ``reverse``, ``zf`` is the state after the first sample).
    """
    batch = filter_batch_shape(waveform, a_coeffs, b_coeffs, zi)
    order = a_coeffs.shape[-1] - 1
    length = waveform.shape[-1]
    layout = MatrixLayout(batch, a_coeffs, b_coeffs)
    graph = needs_graph([waveform, a_coeffs, b_coeffs, zi])
    blocks = BlockFilter(
        waveform, a_coeffs, b_coeffs, zi, layout, block_length, reverse, not graph, chunk_min_bytes
    )
    block_length = blocks.block_length
    # Under autograd (the TorchScript path) chunks are joined once at the end: writing
    # each into a slice of one output would copy the output's gradient per chunk (so
    # there ``y`` is only the result where there are no samples).
    y = torch.empty(batch + [0 if graph else length], dtype=waveform.dtype, device=waveform.device)
    pieces: List[Tensor] = []
    recent = blocks.final_outputs()
    starts = blocks.starts
    for index in range(len(starts) - 1):
        start, stop = starts[index], starts[index + 1]
        first, end = blocks.samples(start, stop)
        if graph:
            pieces.append(layout.from_matrix(blocks.flat_outputs(start, stop)).to(waveform.dtype))
        elif blocks.padding == 0:
            # Whole blocks straight into (*batch, blocks, L) views of the output.
            outputs = layout.from_matrix(blocks.outputs(start, stop))  # (*batch, blocks, L)
            whole = (end - first) // block_length
            middle = first + whole * block_length
            y[..., first:middle].view(batch + [whole, block_length]).copy_(outputs[..., :whole, :])
            if middle < end:
                y[..., middle:end].copy_(outputs[..., whole, : end - middle])
        else:
            y[..., first:end].copy_(layout.from_matrix(blocks.flat_outputs(start, stop)))
    if graph and len(pieces) > 0:
        y = torch.cat(pieces, -1)

    # The last input samples, most recent first, of the signal as filtered (backwards
    # in time with ``reverse``: the first samples of the waveform, in order).
    if reverse:
        x_recent = last_samples_reversed(waveform.narrow(-1, 0, min(order, length)).flip(-1), order)
    else:
        x_recent = last_samples_reversed(waveform, order)
    zf = final_state(x_recent.to(a_coeffs.dtype), layout.from_matrix(recent), a_coeffs, b_coeffs, zi, length)
    return y, zf.expand(batch + [order]).to(waveform.dtype).contiguous()


def forward(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]
) -> Tuple[Tensor, Tensor]:
    """The backend contract's forward kernel: see ``filter_block``."""
    return filter_block(waveform, a_coeffs, b_coeffs, zi)


def adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs_input_grad):
    """The backend contract's adjoint kernel: see ``block.adjoint``."""
    return block_adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs_input_grad)


# Cascades longer than this run section by section (the state-space matrices grow as
# 2 S x 2 S per filter, and the scan's products with them).
MAX_SECTIONS = 32


def max_sections() -> int:
    """The most sections ``cascade_forward`` runs as one state space."""
    return MAX_SECTIONS


def cascade_forward(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """The cascade contract's forward: one state space per block (``block.cascade``)."""
    return cascade_forward_blocks(waveform, a_coeffs, b_coeffs, zi)


def cascade_adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, zi, needs_input_grad):
    """The cascade contract's adjoint: ``torch.func.vjp`` of ``cascade_forward``
    recomputed, whose graph holds a few output-sized tensors whatever the number of
    sections. (``torch.func`` works inside the adjoint op, where autograd is off.)"""
    inputs = [waveform, a_coeffs, b_coeffs, zi]
    wanted = [i for i, (tensor, need) in enumerate(zip(inputs, needs_input_grad)) if need and tensor is not None]
    if not wanted:
        return None, None, None, None

    def run(*values):
        arguments = list(inputs)
        for index, value in zip(wanted, values):
            arguments[index] = value
        return cascade_forward_blocks(*arguments)

    (y, zf), pullback = torch.func.vjp(run, *[inputs[i] for i in wanted])
    cotangents = (
        grad_y if grad_y is not None else torch.zeros_like(y),
        grad_zf if grad_zf is not None else torch.zeros_like(zf),
    )
    # A gradient may be a cotangent passed through (zi's is grad_zf's for T = 0): the
    # adjoint op's outputs must not alias its inputs.
    passed = {c.untyped_storage().data_ptr() for c in (grad_y, grad_zf) if c is not None}
    gradients: list = [None, None, None, None]
    for index, gradient in zip(wanted, pullback(cotangents)):
        gradients[index] = gradient.clone() if gradient.untyped_storage().data_ptr() in passed else gradient
    return tuple(gradients)
