"""The block (chunked) backend: the recurrence as matrix products.

Made of standard tensor ops only, so it runs on any device, scripts with TorchScript
and exports; it is the default on CUDA and the scripted path for long signals. Time
is cut into blocks of ``L`` samples and, block after block, the output is

    y_block = x_ext @ W + history @ O    (+ zi @ S in the first block)

in row-vector form (each signal a row), per filter:

- ``x_ext`` is the block's ``L`` input samples preceded by the ``N`` before them;
  ``W`` (``(N + L, L)``) is the FIR part followed by the all-pole filter from rest,
  i.e. ``Bmat^T Toeplitz(h)^T`` with ``h`` the all-pole impulse response;
- ``history`` is the last ``N`` outputs of the block before, most recent first, and
  ``O`` (``(N, L)``) the responses to unit histories;
- ``zi`` enters as an input added to the first ``N`` samples of ``v``, so its
  response ``S`` (``(N, L)``) is the first ``N`` rows of ``Toeplitz(h)^T``.

When the input is shared by the filters (a ``(B, 1, T)`` signal through ``(C, K)``
filters, the bank case) every filter's ``W`` is stacked side by side, and the block
is one matrix product over all filters, ``(R, N + L) @ (N + L, F L)``, without
copying the input per filter. The final state comes from the last samples in closed
form (``_state.final_state``).

``L`` trades FLOPs (``N + L`` multiply-adds per sample) for sequential steps
(``T / L``). Arithmetic is float64 whatever the input dtype, like every backend.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .._adjoint import filter_adjoint
from .._shapes import filter_batch_shape
from .._state import final_state, last_samples_reversed

BLOCK_LENGTH = 32


def block_responses(a_coeffs: Tensor, block_length: int) -> Tuple[Tensor, Tensor]:
    """The all-pole filter's responses over one block.

    In history form the filter is ``H[n + 1] = C H[n] + e_1 v[n]``,
    ``y[n] = r . H[n] + v[n]``, with ``r = -a[1:]``, ``H[n]`` the last ``N`` outputs
    (most recent first) and ``C`` the companion matrix (first row ``r``, ones below the
    diagonal). So the output at step ``n`` from history ``e_i`` and no input is
    ``O[n, i] = (r C^n)_i``, and the impulse response is ``h[0] = 1``,
    ``h[n] = O[n - 1, 0]``. The rows are stepped one at a time,
    ``(R C)_j = R_0 r_j + R_(j+1)``: faster schemes (squaring ``C``, or doubling by
    superposition) lose precision that compounds over the blocks of a long signal for
    high orders with poles near the unit circle.

    Returns:
        ``(h, O)``: the impulse response ``(..., L)`` and the zero-input responses
        ``(..., L, N)``.
    """
    feedback = -a_coeffs[..., 1:]  # r, (..., N)
    row = feedback
    rows: List[Tensor] = [row]
    for _ in range(block_length - 1):
        row = row[..., :1] * feedback + torch.nn.functional.pad(row[..., 1:], [0, 1])
        rows.append(row)
    zero_input = torch.stack(rows, -2)  # (..., L, N)
    first = torch.ones_like(a_coeffs[..., :1])
    if a_coeffs.shape[-1] == 1:
        return torch.nn.functional.pad(first, [0, block_length - 1]), zero_input
    return torch.cat([first, zero_input[..., : block_length - 1, 0]], -1), zero_input


def toeplitz_lower(impulse_response: Tensor) -> Tensor:
    """``T[..., i, j] = h[i - j]`` for ``i >= j``, else 0: ``(..., L, L)``."""
    length = impulse_response.shape[-1]
    # Window i of [0] * (L - 1) + h is h[i - L + 1 .. i]; reversed, it is row i.
    padded = torch.nn.functional.pad(impulse_response, [length - 1, 0])
    return padded.unfold(-1, length, 1).flip(-1)


def block_matrices(a_coeffs: Tensor, b_coeffs: Tensor, block_length: int) -> Tuple[Tensor, Tensor, Tensor]:
    """The matrices of one block, in row-vector form (see the module doc).

    Returns:
        ``(W, O, S)``: ``(..., N + L, L)``, ``(..., N, L)`` and ``(..., N, L)``, with
        leading dims the broadcast of ``a``'s and ``b``'s.
    """
    order = a_coeffs.shape[-1] - 1
    impulse_response, zero_input = block_responses(a_coeffs, block_length)
    from_rest = toeplitz_lower(impulse_response)  # (..., L, L)
    # The FIR part on x_ext (index m = n + N): v[n] = sum_m b[n + N - m] x_ext[m], so
    # row n holds b reversed at columns n .. n + N: window L - 1 - n of the padded b.
    padded = torch.nn.functional.pad(b_coeffs.flip(-1), [block_length - 1, block_length - 1])
    fir = padded.unfold(-1, order + block_length, 1).flip(-2)  # (..., L, N + L)
    from_input = torch.matmul(from_rest, fir).transpose(-1, -2)
    from_state = from_rest[..., :order].transpose(-1, -2)
    return from_input, zero_input.transpose(-1, -2), from_state


class MatrixLayout:
    """Moves ``(*batch, L)`` signals to ``(F, R, L)`` and back, for batched matmuls.

    ``F`` flattens the batch dims along which the filter varies (one matrix per
    filter), ``R`` the others (rows that share a filter). ``torch.matmul`` would
    instead materialise a copy of every filter's matrix per row. A signal that does
    not vary along the filter dims (the bank case) can also be laid out as ``(R, L)``
    rows, for one matrix product with every filter's matrix side by side.
    """

    def __init__(self, batch: List[int], a_coeffs: Tensor, b_coeffs: Tensor):
        self.batch = batch
        self.filter_dims: List[int] = []
        self.row_dims: List[int] = []
        for dim in range(len(batch)):
            if _varies(a_coeffs, dim, len(batch)) or _varies(b_coeffs, dim, len(batch)):
                self.filter_dims.append(dim)
            else:
                self.row_dims.append(dim)
        self.order: List[int] = self.filter_dims + self.row_dims
        self.inverse: List[int] = _inverse(self.order)
        self.rows_first_inverse: List[int] = _inverse(self.row_dims + self.filter_dims)
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

    def shared_by_filters(self, signal: Tensor) -> bool:
        """Whether ``signal`` (broadcastable to ``(*batch, L)``) has size 1 along every filter dim."""
        for dim in self.filter_dims:
            if _varies(signal, dim, len(self.batch)):
                return False
        return True

    def to_rows(self, signal: Tensor) -> Tensor:
        """A signal shared by the filters, ``(..., L)`` -> ``(R, L)``."""
        length = signal.shape[-1]
        aligned = signal.reshape([1] * (len(self.batch) + 1 - signal.dim()) + list(signal.shape))
        shape = [self.batch[dim] for dim in range(len(self.batch))] + [length]
        for dim in self.filter_dims:
            shape[dim] = 1
        ordered = aligned.expand(shape).permute(self.row_dims + self.filter_dims + [len(self.batch)])
        return ordered.reshape(self.n_rows, length)

    def from_rows(self, matrix: Tensor) -> Tensor:
        """``(R, F, L)`` -> ``(*batch, L)``."""
        length = matrix.shape[-1]
        shape = [self.batch[dim] for dim in self.row_dims + self.filter_dims] + [length]
        return matrix.reshape(shape).permute(self.rows_first_inverse + [len(self.batch)])

    def per_filter(self, matrices: Tensor) -> Tensor:
        """Per-filter ``(..., P, Q)`` matrices (leading dims those of ``a`` and ``b``) -> ``(F, P, Q)``."""
        rows, columns = matrices.shape[-2], matrices.shape[-1]
        missing = len(self.batch) - (matrices.dim() - 2)
        aligned = matrices.reshape([1] * missing + list(matrices.shape))
        expanded_shape = [aligned.shape[dim] for dim in range(len(self.batch))]
        for dim in self.filter_dims:
            expanded_shape[dim] = self.batch[dim]
        aligned = aligned.expand(expanded_shape + [rows, columns])
        # Row dims have size 1 here (the filter does not vary along them), so this keeps F.
        selected = aligned.permute(self.order + [len(self.batch), len(self.batch) + 1])
        return selected.reshape(self.n_filters, rows, columns)


def _varies(tensor: Tensor, dim: int, batch_ndim: int) -> bool:
    """Whether ``tensor`` (``(..., K)`` or ``(..., T)``, its leading dims aligned right
    with the batch) has a size other than 1 along batch dim ``dim``."""
    own = dim - (batch_ndim - (tensor.dim() - 1))
    return own >= 0 and tensor.shape[own] != 1


def _inverse(permutation: List[int]) -> List[int]:
    inverse: List[int] = [0] * len(permutation)
    for position, dim in enumerate(permutation):
        inverse[dim] = position
    return inverse


def filter_block(
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor],
    block_length: int = BLOCK_LENGTH,
    reverse: bool = False,
) -> Tuple[Tensor, Tensor]:
    """Filter with normalised float64 coefficients by blocks; see the module doc.

    One block at a time, so no float64 temporary is the size of the output (measured
    on 2 CPU cores: an all-blocks-at-once version spent most of its time
    page-faulting in such temporaries, and one that did every block of a chunk at
    once was 1.5x slower, its layout changes costing more than its larger products).

    Args:
        waveform: ``(..., T)``.
        a_coeffs: ``(..., K)`` float64, ``a_coeffs[..., 0] == 1``.
        b_coeffs: ``(..., K)`` float64.
        zi: ``(..., N)`` or ``None``.
        block_length: ``L``; raised to ``N`` where smaller.
        reverse: filter backwards in time, that is ``flip(filter(flip(waveform)))``,
            without either flip of the whole signal (the adjoint's backward pass).

    Returns:
        ``(y, zf)``: ``(*batch, T)`` and ``(*batch, N)`` in the waveform's dtype
        (with ``reverse``, ``zf`` is the state after the first sample).
    """
    batch = filter_batch_shape(waveform, a_coeffs, b_coeffs, zi)
    order = a_coeffs.shape[-1] - 1
    length = waveform.shape[-1]
    block_length = max(block_length, order, 1)
    layout = MatrixLayout(batch, a_coeffs, b_coeffs)
    shared = layout.shared_by_filters(waveform)
    from_input, from_history, from_state = block_matrices(a_coeffs, b_coeffs, block_length)
    from_input = layout.per_filter(from_input)  # (F, N + L, L)
    from_history = layout.per_filter(from_history)  # (F, N, L)
    side_by_side = from_input
    if shared:
        # The bank case: every filter's W side by side, (N + L, F * L), for one product
        # with the (R, N + T) rows (a float64 copy the size of the input, not the output).
        side_by_side = from_input.permute(1, 0, 2).reshape(order + block_length, -1)
        signal = waveform.flip(-1) if reverse else waveform  # the size of the input: cheap
        inputs = layout.to_rows(torch.nn.functional.pad(signal.double(), [order, 0]))
    else:
        # (F, R, T) in the input's dtype: a view where the layout allows (a (B, C, T)
        # input through (C, K) filters), else one copy. Every block is a slice of it,
        # cast to float64 one block at a time.
        inputs = layout.to_matrix(waveform)
    history = torch.zeros([layout.n_filters, layout.n_rows, order], dtype=torch.float64, device=waveform.device)
    if zi is not None:
        # zi acts like a history in the first block, through S instead of O.
        from_history = torch.cat([from_history, layout.per_filter(from_state)], 1)
        history = torch.cat([history, layout.to_matrix(zi.double())], -1)
    needs_graph = torch.is_grad_enabled() and (
        waveform.requires_grad
        or a_coeffs.requires_grad
        or b_coeffs.requires_grad
        or (zi is not None and zi.requires_grad)
    )
    # Under autograd (the TorchScript path) blocks are joined once at the end: writing
    # each into a slice of one output would copy the output's gradient per block. (The
    # output is then allocated but never touched, which costs nothing.)
    y = torch.empty(batch + [length], dtype=waveform.dtype, device=waveform.device)
    blocks: List[Tensor] = []
    # Without a graph the per-block temporaries go to buffers reused block after block:
    # fresh megabyte-sized ones cost page faults each time once the allocator has handed
    # memory back to the OS (measured: the whole filter twice as slow after a large
    # backward pass).
    n_filters, n_rows = layout.n_filters, layout.n_rows
    float64 = torch.float64
    past_buffer = torch.empty([n_filters, n_rows, block_length], dtype=float64, device=waveform.device)
    if shared:  # the product over all filters (R, F L), and the block (R, F, L)
        now_shape = [n_rows, n_filters * block_length]
        block_shape = [n_rows, n_filters, block_length]
    else:  # the block's float64 input (F, R, N + L), and the block (F, R, L)
        now_shape = [n_filters, n_rows, order + block_length]
        block_shape = [n_filters, n_rows, block_length]
    now_buffer = torch.empty(now_shape, dtype=float64, device=waveform.device)
    block_buffer = torch.empty(block_shape, dtype=float64, device=waveform.device)
    for start in range(0, length, block_length):
        count = min(block_length, length - start)
        reuse = count == block_length and not needs_graph
        to_past = from_history[:, : history.shape[-1], :count]
        if reuse:
            from_past = torch.bmm(history, to_past, out=past_buffer)  # (F, R, count)
        else:
            from_past = torch.bmm(history, to_past)
        if shared:
            x_ext = inputs[:, start : start + order + count]
            if reuse:
                from_now = torch.mm(x_ext, side_by_side, out=now_buffer)
                block = torch.add(from_now.view(n_rows, n_filters, count), from_past.transpose(0, 1), out=block_buffer)
            else:
                weights = from_input[:, : order + count, :count].permute(1, 0, 2).reshape(order + count, -1)
                block = torch.mm(x_ext, weights).reshape(n_rows, n_filters, count) + from_past.transpose(0, 1)
            in_batch_layout = layout.from_rows(block)
            recent_outputs = block.transpose(0, 1)
        else:
            if reverse:  # the same window of the time-reversed signal
                stop = length - start
                x_slice = inputs[..., stop - count : min(stop + order, length)].flip(-1)
                x_slice = torch.nn.functional.pad(x_slice, [order + count - x_slice.shape[-1], 0])
            elif start >= order:
                x_slice = inputs[..., start - order : start + count]
            else:  # the first block: zeros before the start
                x_slice = torch.nn.functional.pad(inputs[..., : start + count], [order - start, 0])
            to_now = from_input[:, : order + count, :count]
            if reuse:
                x_ext = now_buffer.copy_(x_slice)  # cast to float64 in place
                block = torch.baddbmm(from_past, x_ext, to_now, out=block_buffer)
            else:
                block = torch.baddbmm(from_past, x_slice.double(), to_now)
            in_batch_layout = layout.from_matrix(block)
            recent_outputs = block
        if reverse:
            in_batch_layout = in_batch_layout.flip(-1)
            where = length - start - count
        else:
            where = start
        if needs_graph:
            blocks.append(in_batch_layout.to(waveform.dtype))
        else:
            y[..., where : where + count].copy_(in_batch_layout)
        # The new history: the last N outputs, most recent first (older ones carry on
        # where the block is shorter than the order).
        recent = recent_outputs[..., max(count - order, 0) :].flip(-1)
        history = torch.cat([recent, history[..., : order - recent.shape[-1]]], -1)

    # The last input samples, most recent first, of the signal as filtered (backwards
    # in time with ``reverse``: the first samples of the waveform, in order).
    filtered_signal = waveform.narrow(-1, 0, min(order, length)).flip(-1) if reverse else waveform
    x_recent = last_samples_reversed(filtered_signal, order).double()
    zf = final_state(x_recent, layout.from_matrix(history[..., :order]), a_coeffs, b_coeffs, zi, length)
    if needs_graph and length > 0:
        if reverse:
            blocks.reverse()
        y = torch.cat(blocks, -1)
    return y, zf.expand(batch + [order]).to(waveform.dtype).contiguous()


def forward(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]
) -> Tuple[Tensor, Tensor]:
    """The backend contract's forward kernel: see ``filter_block``."""
    return filter_block(waveform, a_coeffs, b_coeffs, zi)


def _forward_reversed(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]
) -> Tuple[Tensor, Tensor]:
    return filter_block(waveform, a_coeffs, b_coeffs, zi, BLOCK_LENGTH, True)


def adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs_input_grad):
    """The backend contract's adjoint kernel: the composite adjoint over this forward,
    its backward pass run in reversed time without flipping the gradient."""
    return filter_adjoint(
        forward, grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs_input_grad,
        reversed_filter_fn=_forward_reversed,
    )
