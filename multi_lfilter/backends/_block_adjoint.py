"""The block backend's adjoint: the reversed-time block filter, reduced chunk by chunk.

The math is ``_adjoint``'s (read its module doc first): ``g_v`` is the all-pole
recurrence run backwards in time over the output's gradient, continued beyond the end
by the final state's gradient (the *tail*), and every input gradient is a reduction
of ``g_v``. Here ``g_v`` comes out of ``BlockFilter`` one chunk of blocks at a time,
in float64, and each chunk is reduced at once into

- ``dL/db_j = sum_t g_v[t + j] x[t]`` and ``dL/da_j = -sum_t g_v[t + j] y[t]``: one
  batched product per chunk over every lag where the filters share the input (the
  bank case), one batched dot product per lag otherwise;
- ``dL/dx[m] = sum_k b_k g_v[m + k]``: one batched product over the filters (bank)
  or one fused multiply-add per tap, added into the waveform's gradient (chunks
  overlap by ``N`` samples);
- ``dL/dzi[n] = g_v[n]`` for ``n < N``, from the chunk that holds the start.

So nothing the size of the output is allocated besides what the caller holds, and
the reductions are float64 whatever the signal's dtype.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .._adjoint import reverse_state
from .._shapes import sum_to_shape
from ._block_layout import MatrixLayout
from ._block_filter import BLOCK_LENGTH, CHUNK_MIN_BYTES, BlockFilter, window


def _lagged_dots(gradient: Tensor, signal: Tensor, shared: bool, lags: List[int]) -> Tensor:
    """``D[f, j] = sum_{r, p} g[f, r, p] s[(f,) r, p + N - j]`` for ``j`` in ``lags``: ``(F, len(lags))``.

    ``gradient`` is ``(F, R, n)``; ``signal`` is ``(R, n + N)`` rows (shared by the
    filters) or an ``(F, R, n + N)`` matrix, starting ``N`` samples before the
    gradient.
    """
    n_filters, n_rows, count = gradient.shape
    order = signal.shape[-1] - count
    if shared:
        # Window s of the signal is lag N - s; one product per row for every lag.
        windows = signal.unfold(-1, count, 1)  # (R, N + 1, n)
        windows = windows[:, [order - lag for lag in lags]]
        products = torch.bmm(gradient.transpose(0, 1), windows.transpose(1, 2))  # (R, F, lags)
        return products.sum(0)
    flat_gradient = gradient.reshape(n_filters * n_rows, 1, count)
    dots: List[Tensor] = []
    for lag in lags:
        shifted = signal[:, :, order - lag : order - lag + count].reshape(n_filters * n_rows, count, 1)
        dots.append(torch.bmm(flat_gradient, shifted).reshape(n_filters, n_rows).sum(1))
    return torch.stack(dots, -1)


def _fir_transposed(gradient: Tensor, b_filters: Tensor, shared: bool, order: int) -> Tensor:
    """``c[(f,) r, i] = sum_{(f,) k} b[f, k] g[f, r, i + k - N]``: ``(R, n + N)`` summed
    over the filters where they share the input, else ``(F, R, n + N)``."""
    n_filters, n_rows, count = gradient.shape
    if shared:
        per_tap = torch.matmul(b_filters.transpose(0, 1), gradient.transpose(0, 1))  # (R, K, n)
        result = gradient.new_zeros([n_rows, count + order])
        for tap in range(order + 1):
            result[:, order - tap : order - tap + count] += per_tap[:, tap]
        return result
    result = gradient.new_zeros([n_filters, n_rows, count + order])
    for tap in range(order + 1):
        result[:, :, order - tap : order - tap + count].addcmul_(gradient, b_filters[:, tap, None, None])
    return result


def block_adjoint(
    grad_y: Optional[Tensor],
    grad_zf: Optional[Tensor],
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    y: Tensor,
    zi_shape: Optional[List[int]],
    needs_input_grad: Tuple[bool, bool, bool, bool],
    block_length: int = BLOCK_LENGTH,
    chunk_min_bytes: int = CHUNK_MIN_BYTES,
) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """Gradients of ``(waveform, a, b, zi)``, each summed to its input's shape (the
    backend contract's adjoint; arguments as in ``_adjoint.filter_adjoint``, and
    ``block_length`` and ``chunk_min_bytes`` as in ``block.filter_block``)."""
    need_waveform, need_a, need_b, need_zi = needs_input_grad
    need_zi = need_zi and zi_shape is not None
    batch = list(y.shape[:-1])
    order = a_coeffs.shape[-1] - 1
    length = y.shape[-1]
    layout = MatrixLayout(batch, a_coeffs, b_coeffs)
    float64 = dict(dtype=torch.float64, device=y.device)
    if grad_y is None:
        grad_y = y.new_zeros(batch + [length])
    impulse = torch.zeros(order + 1, **float64)
    impulse[0] = 1
    if grad_zf is None:
        state = None
        tail = torch.zeros([layout.n_filters, layout.n_rows, order], **float64)
    else:
        state = reverse_state(grad_zf.double(), a_coeffs)
        tail = layout.to_matrix(grad_zf.double())
    blocks = BlockFilter(grad_y, a_coeffs, impulse, state, layout, block_length, True, chunk_min_bytes)

    shared = layout.shared_by_filters(waveform)
    x_source = layout.to_rows(waveform) if shared else layout.to_matrix(waveform)
    y_source = layout.to_matrix(y)
    b_filters = layout.per_filter(b_coeffs.unsqueeze(-2))[:, 0]  # (F, K)
    grad_a_filters = torch.zeros([layout.n_filters, order + 1], **float64)
    grad_b_filters = torch.zeros([layout.n_filters, order + 1], **float64)
    grad_waveform = torch.zeros_like(waveform) if need_waveform else None
    grad_zi_matrix: Optional[Tensor] = None
    starts = blocks.starts
    for index in range(len(starts) - 1):
        # Chunks come backwards in time: samples lo .. hi - 1 of g_v, with the tail
        # (samples T .. T + N - 1) joined to the chunk that ends the signal.
        gradient = blocks.outputs(starts[index], starts[index + 1]).flip(-1)
        high = length - starts[index] * blocks.block_length
        low = high - gradient.shape[-1]
        if index == 0:
            gradient = torch.cat([gradient, tail], -1)
            high += order
        if need_b:
            x_window = window(x_source, low - order, high, False)
            grad_b_filters += _lagged_dots(gradient, x_window, shared, list(range(order + 1)))
        if need_a and order > 0:
            y_window = window(y_source, low - order, high, False)
            grad_a_filters[:, 1:] -= _lagged_dots(gradient, y_window, False, list(range(1, order + 1)))
        if grad_waveform is not None:
            contribution = _fir_transposed(gradient, b_filters, shared, order)
            in_batch_layout = layout.from_shared_rows(contribution) if shared else layout.from_matrix(contribution)
            first, last = max(low - order, 0), min(high, length)
            in_range = in_batch_layout[..., first - (low - order) : last - (low - order)]
            grad_waveform[..., first:last] += sum_to_shape(in_range, list(waveform.shape[:-1]) + [last - first])
        if need_zi and low == 0:
            grad_zi_matrix = gradient[:, :, :order]

    grad_a = sum_to_shape(layout.from_filters(grad_a_filters), list(a_coeffs.shape)) if need_a else None
    grad_b = sum_to_shape(layout.from_filters(grad_b_filters), list(b_coeffs.shape)) if need_b else None
    grad_zi = None
    if need_zi and zi_shape is not None:
        if grad_zi_matrix is None:  # T == 0: no chunk; the state passes straight through
            grad_zi_matrix = tail
        grad_zi = sum_to_shape(layout.from_matrix(grad_zi_matrix), zi_shape).to(waveform.dtype)
    return grad_waveform, grad_a, grad_b, grad_zi
