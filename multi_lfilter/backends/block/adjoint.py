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
the reductions are float64 whatever the signal's dtype (complex128 for complex calls,
whose gradients follow PyTorch's convention: ``_adjoint``'s module doc).
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..._adjoint import conjugated_for_adjoint, reverse_state
from ..._shapes import sum_to_shape
from .layout import MatrixLayout
from .filter import FILTER_BLOCK_LENGTH, CHUNK_MIN_BYTES, BlockFilter, grown, window


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


def _fir_transposed(gradient: Tensor, b_filters: Tensor, shared: bool, order: int, out: Tensor) -> Tensor:
    """``c[(f,) r, i] = sum_{(f,) k} b[f, k] g[f, r, i + k - N]``: ``(R, n + N)`` summed
    over the filters where they share the input, else ``(F, R, n + N)``; written into
    the flat buffer ``out``."""
    n_filters, n_rows, count = gradient.shape
    if shared:
        per_tap = torch.matmul(b_filters.transpose(0, 1), gradient.transpose(0, 1))  # (R, K, n)
        result = out[: n_rows * (count + order)].view(n_rows, count + order).zero_()
        for tap in range(order + 1):
            result[:, order - tap : order - tap + count] += per_tap[:, tap]
        return result
    result = out[: n_filters * n_rows * (count + order)].view(n_filters, n_rows, count + order).zero_()
    for tap in range(order + 1):
        result[:, :, order - tap : order - tap + count].addcmul_(gradient, b_filters[:, tap, None, None])
    return result


class _Reductions:
    """The input gradients, accumulated from ``g_v`` one piece at a time (see the
    module doc); buffers the size of a piece are reused from piece to piece."""

    def __init__(self, waveform: Tensor, y: Tensor, b_coeffs: Tensor, layout: MatrixLayout, needs_input_grad):
        self.need_waveform, self.need_a, self.need_b, _ = needs_input_grad
        self.layout = layout
        self.order = b_coeffs.shape[-1] - 1
        self.length = y.shape[-1]
        self.waveform_shape = list(waveform.shape[:-1])
        self.shared = layout.shared_by_filters(waveform)
        self.x_source = layout.to_rows(waveform) if self.shared else layout.to_matrix(waveform)
        self.y_source = layout.to_matrix(y)
        self.b_filters = layout.per_filter(b_coeffs.unsqueeze(-2))[:, 0]  # (F, K)
        compute = dict(dtype=b_coeffs.dtype, device=y.device)  # float64, or complex128
        self.grad_a = torch.zeros([layout.n_filters, self.order + 1], **compute)
        self.grad_b = torch.zeros([layout.n_filters, self.order + 1], **compute)
        self.grad_waveform = (
            torch.zeros(waveform.shape, dtype=waveform.dtype, device=waveform.device) if self.need_waveform else None
        )
        self.y_buffer = torch.empty(0, **compute)
        self.fir_buffer = torch.empty(0, **compute)

    def add(self, gradient: Tensor, low: int) -> None:
        """Adds the contributions of ``g_v[low .. low + n - 1]``, ``gradient`` ``(F, R, n)`` float64."""
        order, layout = self.order, self.layout
        n_filters, n_rows, count = gradient.shape
        high = low + count
        if self.need_b:
            x_window = window(self.x_source, low - order, high)
            self.grad_b += _lagged_dots(gradient, x_window, self.shared, list(range(order + 1)))
        if self.need_a and order > 0:
            self.y_buffer = grown(self.y_buffer, n_filters * n_rows * (count + order))
            y_window = window(self.y_source, low - order, high, self.y_buffer)
            self.grad_a[:, 1:] -= _lagged_dots(gradient, y_window, False, list(range(1, order + 1)))
        if self.grad_waveform is not None:
            rows = n_rows if self.shared else n_filters * n_rows
            self.fir_buffer = grown(self.fir_buffer, rows * (count + order))
            contribution = _fir_transposed(gradient, self.b_filters, self.shared, order, self.fir_buffer)
            in_batch_layout = layout.from_shared_rows(contribution) if self.shared else layout.from_matrix(contribution)
            first, last = max(low - order, 0), min(high, self.length)
            in_range = in_batch_layout[..., first - (low - order) : last - (low - order)]
            self.grad_waveform[..., first:last] += sum_to_shape(in_range, self.waveform_shape + [last - first])


def block_adjoint(
    grad_y: Optional[Tensor],
    grad_zf: Optional[Tensor],
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    y: Tensor,
    zi_shape: Optional[List[int]],
    needs_input_grad: Tuple[bool, bool, bool, bool],
    block_length: int = FILTER_BLOCK_LENGTH,
    chunk_min_bytes: int = CHUNK_MIN_BYTES,
) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """Gradients of ``(waveform, a, b, zi)``, each summed to its input's shape (the
    backend contract's adjoint; arguments as in ``_adjoint.filter_adjoint``, and
    ``block_length`` and ``chunk_min_bytes`` as in ``block.filter_block``). Complex
    calls follow PyTorch's convention through ``conjugated_for_adjoint``."""
    waveform, a_coeffs, b_coeffs, y = conjugated_for_adjoint(waveform, a_coeffs, b_coeffs, y)
    need_waveform, need_a, need_b, need_zi = needs_input_grad
    need_zi = need_zi and zi_shape is not None
    batch = list(y.shape[:-1])
    order = a_coeffs.shape[-1] - 1
    length = y.shape[-1]
    layout = MatrixLayout(batch, a_coeffs, b_coeffs)
    compute = a_coeffs.dtype  # float64, or complex128 for complex calls
    if grad_y is None:
        grad_y = torch.zeros(batch + [length], dtype=y.dtype, device=y.device)
    if grad_zf is None:
        state = None
        tail = torch.zeros([layout.n_filters, layout.n_rows, order], dtype=compute, device=y.device)
    else:
        state = reverse_state(grad_zf.to(compute), a_coeffs)
        tail = layout.to_matrix(grad_zf.to(compute))
    blocks = BlockFilter(grad_y, a_coeffs, None, state, layout, block_length, True, True, chunk_min_bytes)

    reductions = _Reductions(waveform, y, b_coeffs, layout, needs_input_grad)
    head: Optional[Tensor] = None  # g_v[0 .. N - 1] that lies inside the signal
    starts = blocks.starts
    for index in range(len(starts) - 1):
        gradient = blocks.flat_outputs(starts[index], starts[index + 1])
        low, _ = blocks.samples(starts[index], starts[index + 1])
        reductions.add(gradient, low)
        if need_zi and low == 0:
            head = gradient[:, :, :order].clone()  # the buffer is reused
    # g_v continues beyond the end with the final state's gradient.
    reductions.add(tail, length)

    grad_a = sum_to_shape(layout.from_filters(reductions.grad_a), list(a_coeffs.shape)) if need_a else None
    grad_b = sum_to_shape(layout.from_filters(reductions.grad_b), list(b_coeffs.shape)) if need_b else None
    grad_zi = None
    if need_zi and zi_shape is not None:
        # (With T == 0 the state's gradient passes straight through: copied, since an
        # op's output may not alias its input.)
        start_of_g_v = tail.clone() if head is None else torch.cat([head, tail], -1)[:, :, :order]
        grad_zi = sum_to_shape(layout.from_matrix(start_of_g_v), zi_shape).to(waveform.dtype)
    return reductions.grad_waveform, grad_a, grad_b, grad_zi
