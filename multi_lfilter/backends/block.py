"""The block (chunked) backend: the recurrence as batched matrix products.

Made of standard tensor ops only, so it runs on any device, scripts with TorchScript
and exports; it is the default on CUDA and the scripted path for long signals. Time
is cut into blocks of ``L`` samples and, block after block,

1. the FIR part and the ``zi`` injection give ``v`` (``v[n] = sum_k b_k x[n-k] + zi[n]``);
2. the all-pole response is ``Toeplitz(h) v + O s``: ``h`` is the filter's first ``L``
   impulse-response samples, ``s`` the *history* (the last ``N`` outputs of the block
   before, most recent first) and ``O`` the responses to unit histories; both are
   batched matmuls over all signals at once;
3. the block's last ``N`` outputs become the next history;
4. the final state comes from the last samples in closed form (``_state.final_state``).

``L`` trades FLOPs (``L`` multiply-adds per sample) for sequential steps (``T / L``).
Arithmetic is float64 whatever the input dtype, like every backend.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .._adjoint import filter_adjoint
from .._shapes import filter_batch_shape, take_last
from .._state import final_state, last_samples_reversed

BLOCK_LENGTH = 64


def block_responses(a_coeffs: Tensor, block_length: int) -> Tuple[Tensor, Tensor]:
    """The all-pole filter's responses over one block.

    Returns:
        ``(h, O)``: the impulse response ``(..., L)`` and the zero-input responses
        ``(..., L, N)``, column ``i`` being the output when the history (the last ``N``
        outputs, most recent first) is the unit vector ``e_i``.
    """
    order = a_coeffs.shape[-1] - 1
    lead = list(a_coeffs.shape[:-1])
    feedback = a_coeffs[..., 1:].unsqueeze(-2)  # (..., 1, N)
    # Row 0 answers an impulse from rest; row i + 1 starts from history e_i.
    history = torch.zeros(lead + [order + 1, order], dtype=a_coeffs.dtype, device=a_coeffs.device)
    history[..., 1:, :] = torch.eye(order, dtype=a_coeffs.dtype, device=a_coeffs.device)
    impulse = torch.zeros(lead + [order + 1], dtype=a_coeffs.dtype, device=a_coeffs.device)
    impulse[..., 0] = 1.0
    outputs: List[Tensor] = []
    for step in range(block_length):
        output = -(history * feedback).sum(-1)
        if step == 0:
            output = output + impulse
        history = torch.cat([output.unsqueeze(-1), history[..., :-1]], -1)
        outputs.append(output)
    responses = torch.stack(outputs, -1)  # (..., N + 1, L)
    return responses[..., 0, :], responses[..., 1:, :].transpose(-1, -2)


def toeplitz_lower(impulse_response: Tensor) -> Tensor:
    """``T[..., i, j] = h[i - j]`` for ``i >= j``, else 0: ``(..., L, L)``."""
    length = impulse_response.shape[-1]
    steps = torch.arange(length, device=impulse_response.device)
    lag = steps.unsqueeze(1) - steps.unsqueeze(0)
    values = take_last(impulse_response, lag.clamp(min=0))
    return values * (lag >= 0).to(impulse_response.dtype)


def fir_with_injection(
    padded: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], start: int, count: int
) -> Tensor:
    """``v[n] = sum_k b_k x[n - k] + zi[n]`` for ``n`` in ``[start, start + count)``.

    ``padded`` is the waveform with ``N`` zeros in front; ``zi[n] = 0`` for ``n >= N``.
    """
    order = b_coeffs.shape[-1] - 1
    v = b_coeffs[..., 0:1] * padded[..., start + order : start + order + count]
    for k in range(1, order + 1):
        v = v + b_coeffs[..., k : k + 1] * padded[..., start + order - k : start + order - k + count]
    if zi is not None and start < order:
        head = min(order - start, count)
        v = v + torch.nn.functional.pad(zi[..., start : start + head], [0, count - head])
    return v


class MatrixLayout:
    """Moves ``(*batch, L)`` signals to ``(F, R, L)`` and back, for batched matmuls.

    ``F`` flattens the batch dims along which the denominator varies (one matrix per
    filter), ``R`` the others (rows that share a filter). ``torch.matmul`` would
    instead materialise a copy of every filter's matrix per row.
    """

    def __init__(self, batch: List[int], a_coeffs: Tensor):
        missing = len(batch) - (a_coeffs.dim() - 1)
        self.batch = batch
        self.filter_dims: List[int] = []
        self.row_dims: List[int] = []
        for dim in range(len(batch)):
            own = dim - missing
            if own >= 0 and a_coeffs.shape[own] != 1:
                self.filter_dims.append(dim)
            else:
                self.row_dims.append(dim)
        self.order: List[int] = self.filter_dims + self.row_dims
        self.inverse: List[int] = [0] * len(batch)
        for position, dim in enumerate(self.order):
            self.inverse[dim] = position
        self.n_filters = 1
        for dim in self.filter_dims:
            self.n_filters *= batch[dim]
        self.n_rows = 1
        for dim in self.row_dims:
            self.n_rows *= batch[dim]

    def to_matrix(self, signal: Tensor) -> Tensor:
        """``(*batch, L)`` (broadcastable to it) -> ``(F, R, L)``."""
        length = signal.shape[-1]
        signal = signal.expand(self.batch + [length])
        return signal.permute(self.order + [len(self.batch)]).reshape(self.n_filters, self.n_rows, length)

    def from_matrix(self, matrix: Tensor) -> Tensor:
        """``(F, R, L)`` -> ``(*batch, L)``."""
        length = matrix.shape[-1]
        shape = [self.batch[dim] for dim in self.order] + [length]
        return matrix.reshape(shape).permute(self.inverse + [len(self.batch)])

    def per_filter(self, matrices: Tensor) -> Tensor:
        """Per-filter ``(..., P, Q)`` matrices (leading dims those of ``a``) -> ``(F, P, Q)``."""
        rows, columns = matrices.shape[-2], matrices.shape[-1]
        missing = len(self.batch) - (matrices.dim() - 2)
        aligned = matrices.reshape([1] * missing + list(matrices.shape))
        expanded_shape = [aligned.shape[dim] for dim in range(len(self.batch))]
        for dim in self.filter_dims:
            expanded_shape[dim] = self.batch[dim]
        aligned = aligned.expand(expanded_shape + [rows, columns])
        # Row dims have size 1 here (a does not vary along them), so this keeps F.
        selected = aligned.permute(self.order + [len(self.batch), len(self.batch) + 1])
        return selected.reshape(self.n_filters, rows, columns)


def filter_block(
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor],
    block_length: int = BLOCK_LENGTH,
) -> Tuple[Tensor, Tensor]:
    """Filter with normalised float64 coefficients by blocks; see the module doc.

    One block at a time, so no float64 temporary is the size of the output (measured
    on 2 CPU cores: the all-blocks-at-once version spent most of its time
    page-faulting in such temporaries); the blocks and the joined output are.

    Args:
        waveform: ``(..., T)``.
        a_coeffs: ``(..., K)`` float64, ``a_coeffs[..., 0] == 1``.
        b_coeffs: ``(..., K)`` float64.
        zi: ``(..., N)`` or ``None``.
        block_length: ``L``; raised to ``N`` where smaller.

    Returns:
        ``(y, zf)``: ``(*batch, T)`` and ``(*batch, N)`` in the waveform's dtype.
    """
    batch = filter_batch_shape(waveform, a_coeffs, b_coeffs, zi)
    order = a_coeffs.shape[-1] - 1
    length = waveform.shape[-1]
    block_length = max(block_length, order, 1)
    padded = torch.nn.functional.pad(waveform.double(), [order, 0])
    if zi is not None:
        zi = zi.double()
    layout = MatrixLayout(batch, a_coeffs)
    impulse_response, zero_input = block_responses(a_coeffs, block_length)
    # Row-vector form: y_block = v_block @ T^T + history @ O^T, per filter.
    from_rest = layout.per_filter(toeplitz_lower(impulse_response).transpose(-1, -2))
    from_history = layout.per_filter(zero_input.transpose(-1, -2))
    history = torch.zeros(
        [layout.n_filters, layout.n_rows, order], dtype=torch.float64, device=waveform.device
    )
    # Blocks are joined once at the end: under autograd (the TorchScript path) writing
    # each into a slice of one output would copy the output's gradient per block.
    blocks: List[Tensor] = []
    for start in range(0, length, block_length):
        count = min(block_length, length - start)
        v = layout.to_matrix(fir_with_injection(padded, b_coeffs, zi, start, count))
        block = torch.baddbmm(
            torch.bmm(v, from_rest[:, :count, :count]), history, from_history[:, :, :count]
        )
        blocks.append(layout.from_matrix(block).to(waveform.dtype))
        # The new history: the last N outputs, most recent first (older ones carry on
        # where the block is shorter than the order).
        recent = block[..., max(count - order, 0) :].flip(-1)
        history = torch.cat([recent, history[..., : order - recent.shape[-1]]], -1)

    x_recent = last_samples_reversed(padded[..., order:], order)
    zf = final_state(x_recent, layout.from_matrix(history), a_coeffs, b_coeffs, zi, length)
    if length == 0:
        y = torch.zeros(batch + [0], dtype=waveform.dtype, device=waveform.device)
    else:
        y = torch.cat(blocks, -1)
    return y, zf.expand(batch + [order]).to(waveform.dtype).contiguous()


def forward(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]
) -> Tuple[Tensor, Tensor]:
    """The backend contract's forward kernel: see ``filter_block``."""
    return filter_block(waveform, a_coeffs, b_coeffs, zi)


def adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs_input_grad):
    """The backend contract's adjoint kernel: the composite adjoint over this forward."""
    return filter_adjoint(
        forward, grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs_input_grad
    )
