"""The export backend: the block algorithm as a fixed graph of standard ops, for any ``T``.

What ``torch.export`` (and through it ONNX and AOTInductor) records in place of the
filter: plain ``aten`` ops, no Python control flow on the signal's length, so the
graph has the same nodes at every ``T`` and batch size and runs where this package is
not installed. It avoids ops the other exporters lack (no triangular solve, no
``unfold``). Eager calls may name it (``backend="export"``) to check what an exported
model computes; ``"auto"`` never picks it.

Time is cut into blocks of ``L`` samples, as in the block backend (``block.py``), with
the all-pole part written as the history of outputs entering each block
(row-vector form, per filter):

1. ``Y0 = x_ext @ W``: every block's output from rest (``x_ext`` is the block's input
   preceded by the ``N`` samples before it);
2. ``H[k + 1] = H[k] P + u[k]``, the history entering each block, ``u[k]`` being
   block ``k``'s last outputs from rest;
3. ``y = Y0 + H @ O`` (and ``zi @ S`` in the first block).

The scan of step 2 has a fixed depth whatever ``T``: blocks form groups of
``GROUP_BLOCKS``; a doubling scan inside every group (its spans are constants), then
one across the groups with ``GROUP_LEVELS`` doubling steps whose shifts are gathers
with clamped indices (valid for any number of groups), the clamped rows masked. Signals
of up to ``max_length()`` samples (about 17 minutes at 32 kHz) are supported; a
longer one fails a runtime check. The blocks are gathered by index, whole groups of
them (at least two), with positions past the end reading zero.

Arithmetic is float64, as in every backend. Non-finite inputs spread through whole
blocks (as in the block backend), and there is no loop to fall back on inside a
graph: exported models should not be fed ``nan`` or ``inf``.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.nn.functional import pad

from .._adjoint import filter_adjoint
from .._shapes import filter_batch_shape, take_last
from .._state import hankel

EXPORT_BLOCK_LENGTH = 32
GROUP_BLOCKS = 16
GROUP_LEVELS = 16


def max_length(order: int = 2) -> int:
    """The longest signal the graph filters, in samples (``2**25`` for orders up to 32)."""
    return max(EXPORT_BLOCK_LENGTH, order) * GROUP_BLOCKS * 2**GROUP_LEVELS


def _all_pole_response(a_coeffs: Tensor, length: int) -> Tensor:
    """``g[n]``, ``n < length``: the impulse response of ``1 / A(z)``, ``(..., length)``.

    The recurrence ``g[n] = -sum_k a_k g[n - k]`` unrolled over ``length`` (a
    constant) steps, so it rounds like the sample-by-sample filter.
    """
    order = a_coeffs.shape[-1] - 1
    feedback = a_coeffs[..., 1:]
    one = torch.ones_like(a_coeffs[..., :1])
    recent = torch.cat([one, torch.zeros_like(feedback[..., 1:])], -1)  # g[n - 1 - i], i < N
    values = [one]
    for _ in range(1, length):
        value = -(feedback * recent).sum(-1, keepdim=True)
        values.append(value)
        recent = torch.cat([value, recent[..., : order - 1]], -1)
    return torch.cat(values, -1)


def _toeplitz_index(rows: int, columns: int, offset: int, device: torch.device) -> Tuple[Tensor, Tensor]:
    """``(index, valid)``: ``index[m, n] = n - m + offset`` clamped at 0, and where it was >= 0."""
    lag = torch.arange(columns, device=device).unsqueeze(0) - torch.arange(rows, device=device).unsqueeze(1) + offset
    return lag.clamp(min=0), lag >= 0


def block_matrices(a_coeffs: Tensor, b_coeffs: Tensor, block_length: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(W, O, S, P)`` of one block, as in ``_block_math.block_matrices``: ``(..., N + L, L)``,
    ``(..., N, L)``, ``(..., N, L)``, ``(..., N, N)``, from products with the all-pole
    Toeplitz matrix ``G[m, n] = g[n - m]`` instead of a triangular solve."""
    order = a_coeffs.shape[-1] - 1
    device = a_coeffs.device
    response = _all_pole_response(a_coeffs, block_length)
    index, valid = _toeplitz_index(block_length, block_length, 0, device)
    all_pole = take_last(response, index) * valid.to(response.dtype)  # (..., L, L)
    # v[n] = sum_k b_k x_ext[n + N - k]: row m of the FIR matrix holds b[n + N - m].
    index, valid = _toeplitz_index(order + block_length, block_length, order, device)
    valid = valid & (index <= order)
    fir = take_last(b_coeffs, index.clamp(max=order)) * valid.to(b_coeffs.dtype)  # (..., N + L, L)
    # A unit history y[-1 - i] enters v[n] as -a[n + 1 + i].
    steps = torch.arange(block_length, device=device).unsqueeze(0) + torch.arange(order, device=device).unsqueeze(1) + 1
    history = take_last(pad(-a_coeffs, [0, block_length]), steps)  # (..., N, L)
    from_input = torch.matmul(fir, all_pole)
    from_history = torch.matmul(history, all_pole)
    from_state = all_pole[..., :order, :]  # a unit state zi_i is an injection into v[i]
    transition = from_history[..., block_length - order :].flip(-1)
    return from_input, from_history, from_state, transition


def _shift_rows(values: Tensor, rows: int) -> Tensor:
    """``values`` moved ``rows`` (a constant) rows later along dim -2, zeros in front.

    Padded then cut to the old size: never a slice shorter than the input, whose size
    torch.export would have to prove positive.
    """
    count = values.shape[-2]
    return pad(values, [0, 0, rows, 0])[..., :count, :]


def _times(rows: Tensor, matrices: Tensor) -> Tensor:
    """``rows @ matrices`` for ``(..., N)`` rows and ``(..., N, M)`` matrices that
    broadcast, as ``N`` multiply-adds: no batched product of tiny matrices, and no
    reshape of the (dynamic) block dim for torch.export to reason about."""
    total = rows[..., :1] * matrices[..., 0, :]
    for i in range(1, rows.shape[-1]):
        total = total + rows[..., i : i + 1] * matrices[..., i, :]
    return total


def _histories(last_outputs: Tensor, transition: Tensor) -> Tensor:
    """The history entering every block, ``(*batch, blocks, N)``, from each block's
    last outputs from rest (same shape) and ``P`` (``(*filters, N, N)``).

    Blocks form groups of ``GROUP_BLOCKS`` (a multiple of them is always present): a
    doubling scan inside every group (spans and masks are constants), then one across
    the groups, whose shifts are gathers with clamped indices, the clamped rows masked.
    """
    n_blocks = last_outputs.shape[-2]
    device = last_outputs.device
    index = torch.arange(n_blocks, device=device)
    in_group = (index % GROUP_BLOCKS).unsqueeze(-1)
    total = last_outputs
    # powers[..., j, :, :] = P^(j + 1), j < GROUP_BLOCKS, by doubling.
    powers = transition.unsqueeze(-3)
    span = 1
    while span < GROUP_BLOCKS:
        # After the step of span s every total holds the last 2 s blocks of its group.
        carried = _times(_shift_rows(total, span), powers[..., span - 1 : span, :, :])
        total = total + torch.where(in_group >= span, carried, torch.zeros_like(carried))
        powers = torch.cat([powers, torch.matmul(powers, powers[..., span - 1 : span, :, :])], -3)
        span *= 2
    # Across groups: c[j + 1] = c[j] P^G + e[j], e[j] the total after group j's last block.
    n_groups = n_blocks // GROUP_BLOCKS
    group_index = torch.arange(n_groups, device=device)
    per_group = total.index_select(-2, group_index * GROUP_BLOCKS + GROUP_BLOCKS - 1)
    row = group_index.unsqueeze(-1)
    power = powers[..., GROUP_BLOCKS - 1 :, :, :]
    span = 1
    for _ in range(GROUP_LEVELS):
        # Row j reads row j - span, clamped at 0: a gather whose index needs no modulo
        # (torch.roll's would be one by the symbolic group count per element, which
        # slowed these steps down many times when compiled: benchmarks/results-2026-12-03.md, D5). Rows below span are masked (a
        # product with the overflowed power of an unstable filter would put nan there).
        carried = _times(per_group.index_select(-2, (group_index - span).clamp(min=0)), power)
        per_group = per_group + torch.where(row >= span, carried, torch.zeros_like(carried))
        power = torch.matmul(power, power)
        span *= 2
    entering_group = _shift_rows(per_group, 1).index_select(-2, index // GROUP_BLOCKS)
    # After block g of group j: the group's own total + c[j] P^(g + 1).
    after = total + _times(entering_group, powers.index_select(-3, index % GROUP_BLOCKS))
    return _shift_rows(after, 1)


def _from_rest(x_ext: Tensor, from_input: Tensor) -> Tensor:
    """``x_ext @ W``, ``(*batch, blocks, L)``, for ``(*signals, blocks, N + L)`` inputs and
    ``(*filters, N + L, L)`` matrices.

    Where every filter dim faces a signal dim of 1 and the reverse (a ``(B, 1, T)``
    signal through ``(C, K)`` filters), one product with every filter's ``W`` side by
    side, then a permutation (which the compilers fuse into what reads it); else a
    broadcast batched product, which copies each signal once per filter.
    """
    signal_lead = list(x_ext.shape[:-2])
    filter_lead = list(from_input.shape[:-2])
    ndim = max(len(signal_lead), len(filter_lead))
    signal_lead = [1] * (ndim - len(signal_lead)) + signal_lead
    filter_lead = [1] * (ndim - len(filter_lead)) + filter_lead

    def is_one(size) -> bool:  # a literal 1, never a symbolic size (no guard on it)
        return isinstance(size, int) and size == 1

    filter_dims = [i for i in range(ndim) if not is_one(filter_lead[i])]
    if not filter_dims or not all(is_one(signal_lead[i]) for i in filter_dims):
        return torch.matmul(x_ext, from_input)
    signal_dims = [i for i in range(ndim) if i not in filter_dims]
    taps, block_length = from_input.shape[-2:]
    rows = x_ext.reshape([signal_lead[i] for i in signal_dims] + list(x_ext.shape[-2:]))
    columns = from_input.reshape([filter_lead[i] for i in filter_dims] + [taps, block_length])
    columns = columns.movedim(-2, 0).reshape(taps, -1)  # (N + L, filters * L)
    product = torch.matmul(rows, columns)  # (*signal dims, blocks, filters * L)
    product = product.reshape(list(product.shape[:-1]) + [filter_lead[i] for i in filter_dims] + [block_length])
    # Now (*signal dims, blocks, *filter dims, L): back to the batch order.
    n_signal = len(signal_dims)
    source = {dim: position for position, dim in enumerate(signal_dims)}
    source.update({dim: n_signal + 1 + position for position, dim in enumerate(filter_dims)})
    return product.permute([source[i] for i in range(ndim)] + [n_signal, ndim + 1])


def _picked_times(rows: Tensor, blocks: Tensor, matrices: Tensor, columns: Tensor) -> Tensor:
    """``(rows[..., blocks[i], :] @ matrices)[..., columns[i]]`` for each ``i``: ``(..., I)``,
    for ``(..., blocks, N)`` rows, ``(..., N, L)`` matrices and ``(I,)`` indices."""
    picked_rows = rows.index_select(-2, blocks)  # (..., I, N)
    picked_columns = matrices.index_select(-1, columns).transpose(-1, -2)  # (..., I, N)
    return (picked_rows * picked_columns).sum(-1)


def filter_export_graph(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]
) -> Tuple[Tensor, Tensor]:
    """Filter with normalised float64 coefficients in a fixed graph; see the module doc.

    Args:
        waveform: ``(..., T)``, ``T <= max_length(N)``.
        a_coeffs: ``(..., K)`` float64, ``a_coeffs[..., 0] == 1``.
        b_coeffs: ``(..., K)`` float64.
        zi: ``(..., N)`` or ``None``.

    Returns:
        ``(y, zf)``: ``(*batch, T)`` and ``(*batch, N)`` in the waveform's dtype.
    """
    batch = filter_batch_shape(waveform, a_coeffs, b_coeffs, zi)
    order = a_coeffs.shape[-1] - 1
    dtype = waveform.dtype
    signal = waveform.double()
    length = signal.shape[-1]
    if order == 0:
        y = (b_coeffs * signal).expand(batch + [length])
        return y.to(dtype), signal.new_zeros(batch + [0]).to(dtype)
    torch._check(
        length <= max_length(order),
        lambda: f"expected at most {max_length(order)} samples in an exported filter graph, got {length}",
    )
    block_length = max(EXPORT_BLOCK_LENGTH, order)
    device = signal.device
    # Whole groups, at least two (so torch.export never asks whether there is one).
    # Every block's samples, and the N before it, are gathered by index from the
    # signal with one zero appended, which stands for every position outside it:
    # padding and reshaping instead would ask torch.export to prove facts about
    # ``T // group_length`` it cannot, and it would then fix ``T``.
    n_blocks = (length // (block_length * GROUP_BLOCKS) + 2) * GROUP_BLOCKS
    block_starts = torch.arange(n_blocks, device=device).unsqueeze(-1) * block_length
    positions = block_starts + torch.arange(-order, block_length, device=device)  # (blocks, N + L)
    outside = (positions < 0) | (positions >= length)
    positions = torch.where(outside, torch.full_like(positions, length), positions)
    padded = pad(signal, [0, 1])
    x_ext = padded[..., positions]  # (*lead, blocks, N + L)
    from_input, from_history, from_state, transition = block_matrices(a_coeffs, b_coeffs, block_length)

    from_rest = _from_rest(x_ext, from_input)  # (*batch, blocks, L)
    last_outputs = from_rest[..., block_length - order :].flip(-1)
    if zi is not None:
        # zi enters the first block only, carried by S.
        zi_rows = zi.double().unsqueeze(-2) * (block_starts == 0).to(signal.dtype)  # (..., blocks, N)
        last_outputs = last_outputs + _times(zi_rows, from_state[..., block_length - order :].flip(-1).unsqueeze(-3))
    entering = _histories(last_outputs, transition)
    outputs = from_rest + _times(entering, from_history.unsqueeze(-3))
    if zi is not None:
        outputs = outputs + _times(zi_rows, from_state.unsqueeze(-3))
    y = outputs.flatten(-2).index_select(-1, torch.arange(length, device=device)).expand(batch + [length])

    # The last N samples, most recent first (zeros before the start), give zf. Their
    # outputs are recomputed from the pieces, so that ``outputs`` has one reader and
    # the compilers write y in one pass (reading it twice made them store it first).
    recent = length - 1 - torch.arange(order, device=device)
    before_start = recent < 0
    x_recent = padded.index_select(-1, torch.where(before_start, torch.full_like(recent, length), recent))
    recent = recent.clamp(min=0)
    recent_block = recent // block_length
    in_block = recent % block_length
    # Their blocks first, then one sample of each (flattening all of from_rest, a
    # permuted view, would copy it whole in eager).
    recent_blocks = from_rest.index_select(-2, recent_block).flatten(-2)  # (..., N * L)
    y_recent = recent_blocks.index_select(-1, torch.arange(order, device=device) * block_length + in_block)
    y_recent = y_recent + _picked_times(entering, recent_block, from_history, in_block)
    if zi is not None:
        y_recent = y_recent + _picked_times(zi_rows, recent_block, from_state, in_block)
    y_recent = torch.where(before_start, torch.zeros_like(y_recent), y_recent)
    zf = _times(x_recent, hankel(b_coeffs)) - _times(y_recent, hankel(a_coeffs))
    if zi is not None:
        zf = zf + pad(zi.double(), [0, length])[..., length : length + order]
    return y.to(dtype), zf.expand(batch + [order]).to(dtype).contiguous()


def forward(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]
) -> Tuple[Tensor, Tensor]:
    """The backend contract's forward kernel: see ``filter_export_graph``."""
    return filter_export_graph(waveform, a_coeffs, b_coeffs, zi)


def adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs_input_grad):
    """The backend contract's adjoint kernel: the composite adjoint over this forward."""
    return filter_adjoint(
        forward, grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs_input_grad
    )
