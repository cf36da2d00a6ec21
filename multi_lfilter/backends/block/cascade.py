"""A cascade of second-order sections as one state space per block: the block
algorithm's one-pass cascade (``block.cascade_forward``).

The state is every section's transposed-direct-form state, ``2 S`` values (never the
direct form of order ``2 S``, whose coefficients are ill-conditioned). Per block of
``L`` samples, in row-vector form and per filter, with ``x`` the block's input and
``z`` the state entering it:

- ``y = x W + z Z``: the cascade's output (``W`` ``(L, L)``, ``Z`` ``(2 S, L)``);
- ``z' = x G + z P``: the state leaving it (``G`` ``(L, 2 S)``, ``P`` ``(2 S, 2 S)``).

The matrices are built section by section from each section's own block matrices
(``block.matrices.block_matrices``, which round like the recurrence): with ``u_s`` the
input of section ``s`` written as ``x U_s + z V_s``, its output is
``u_s W_s + z_s S_s`` and its state leaving the block follows from the block's last
two inputs and outputs. The states entering every block come from the log-depth scan
of the block backend (``scan_histories``), so the op count grows with ``log2(T / L)``.

Arithmetic is float64 (complex128 for complex calls). The signal is padded at the end to whole blocks; the final
state is the state after the last real sample (the last block is replayed with the
matrices of its true length).
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..._shapes import cascade_batch_shape
from ..._state import hankel
from .layout import MatrixLayout
from .matrices import block_matrices, scan_histories

# Longer than the block backend's 32: the scan's state is 2 S values, and fewer, longer blocks
# shrink it; 128 was the fastest length measured (benchmarks/results-2026-12-03.md, D2).
CASCADE_BLOCK_LENGTH = 128


def _last_two(length: int, like: Tensor) -> Tensor:
    """``(length, 2)``: picks samples ``length - 1`` and ``length - 2`` (most recent first)."""
    picker = torch.zeros(length, 2, dtype=like.dtype, device=like.device)
    picker[length - 1, 0] = 1.0
    if length >= 2:
        picker[length - 2, 1] = 1.0
    return picker


def cascade_block_matrices(a_coeffs: Tensor, b_coeffs: Tensor, block_length: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(W, Z, G, P)`` for ``(F, S, 3)`` normalised sections; see the module doc.

    Returns ``(F, L, L)``, ``(F, 2 S, L)``, ``(F, L, 2 S)`` and ``(F, 2 S, 2 S)``.
    """
    n_filters, sections = a_coeffs.shape[0], a_coeffs.shape[1]
    dtype, device = a_coeffs.dtype, a_coeffs.device
    identity = torch.eye(block_length, dtype=dtype, device=device).expand(n_filters, block_length, block_length)
    through_x = identity  # U_s: x -> u_s
    through_z = torch.zeros(n_filters, 2 * sections, block_length, dtype=dtype, device=device)  # V_s: z -> u_s
    tail = _last_two(block_length, a_coeffs)
    state_from_x = []
    state_from_z = []
    for s in range(sections):
        from_input, _, from_state, _ = block_matrices(a_coeffs[:, s], b_coeffs[:, s], block_length)
        section_w = from_input[:, 2:, :]  # the block's own samples (the 2 before it are in z)
        # z'[r] = sum_m c[r + m + 1] (last inputs)[m] - ... : in rows, tail @ hankel^T.
        b_tail = tail @ hankel(b_coeffs[:, s]).transpose(-1, -2)  # (F, L, 2)
        a_tail = tail @ hankel(a_coeffs[:, s]).transpose(-1, -2)
        # y_s = u_s W_s + z_s S_s;  z'_s = u_s b_tail - y_s a_tail.
        leaving = b_tail - section_w @ a_tail  # (F, L, 2): from u_s
        own_state = torch.zeros(n_filters, 2 * sections, 2, dtype=dtype, device=device)
        own_state[:, 2 * s : 2 * s + 2] = -(from_state @ a_tail)  # from z_s directly
        for r in range(2):  # a block shorter than the order passes part of z_s on
            if block_length + r < 2:
                own_state[:, 2 * s + block_length + r, r] += 1.0
        state_from_x.append(through_x @ leaving)
        state_from_z.append(through_z @ leaving + own_state)
        injected = torch.zeros_like(through_z)
        injected[:, 2 * s : 2 * s + 2] = from_state
        through_x, through_z = through_x @ section_w, through_z @ section_w + injected
    return through_x, through_z, torch.cat(state_from_x, -1), torch.cat(state_from_z, -1)


def cascade_forward_blocks(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], block_length: Optional[int] = None
) -> Tuple[Tensor, Tensor]:
    """The cascade by blocks; see the module doc.

    Args:
        waveform: ``(..., T)``.
        a_coeffs, b_coeffs: ``(..., S, 3)`` float64 (complex128 for a complex call),
            normalised per section.
        zi: ``(..., S, 2)`` or ``None``.

    Returns:
        ``(y, zf)``: ``(*batch, T)`` and ``(*batch, S, 2)`` in the waveform's dtype.
    """
    block_length = block_length or CASCADE_BLOCK_LENGTH
    compute = a_coeffs.dtype
    sections = a_coeffs.shape[-2]
    batch = cascade_batch_shape(waveform, a_coeffs, b_coeffs, zi)
    length = waveform.shape[-1]
    width = 2 * sections
    flat_a, flat_b = a_coeffs.flatten(-2), b_coeffs.flatten(-2)
    layout = MatrixLayout(batch, flat_a, flat_b)
    n_filters, n_rows = layout.n_filters, layout.n_rows
    states_in = None if zi is None else layout.to_matrix(zi.to(compute).flatten(-2))  # (F, R, 2S)
    if length == 0:  # the state passes through (a copy: the op's outputs never alias its inputs)
        zf = states_in.clone() if states_in is not None else torch.zeros(n_filters, n_rows, width, dtype=compute, device=waveform.device)
        y = torch.zeros(batch + [0], dtype=waveform.dtype, device=waveform.device)
        return y, layout.from_matrix(zf).reshape(batch + [sections, 2]).to(waveform.dtype).contiguous()

    per_filter_a = layout.per_filter(flat_a.unsqueeze(-2)).reshape(n_filters, sections, 3)
    per_filter_b = layout.per_filter(flat_b.unsqueeze(-2)).reshape(n_filters, sections, 3)
    output_map, state_output_map, input_state_map, transition = cascade_block_matrices(per_filter_a, per_filter_b, block_length)

    n_blocks = (length + block_length - 1) // block_length
    padded = n_blocks * block_length
    signal = layout.to_matrix(waveform).to(compute)  # (F, R, T)
    blocks = torch.nn.functional.pad(signal, [0, padded - length]).reshape(n_filters, n_rows * n_blocks, block_length)
    # The state each block's input leaves behind, from rest: (F, R, blocks, 2S), then blocks first.
    left = torch.bmm(blocks, input_state_map).reshape(n_filters, n_rows, n_blocks, width).transpose(1, 2)
    # The scan's increments: zi (or rest) entering block 0, then each block's from the block before it.
    if states_in is None:
        states_in = torch.zeros(n_filters, n_rows, width, dtype=compute, device=waveform.device)
    increments = torch.cat([states_in.unsqueeze(1), left[:, : n_blocks - 1]], 1)
    entering = scan_histories(increments, transition, False)  # (F, blocks, R, 2S)
    from_rest = torch.bmm(blocks, output_map).reshape(n_filters, n_rows, n_blocks, block_length)
    from_states = torch.bmm(entering.transpose(1, 2).reshape(n_filters, n_rows * n_blocks, width), state_output_map)
    outputs = (from_rest + from_states.reshape(n_filters, n_rows, n_blocks, block_length)).reshape(n_filters, n_rows, padded)
    y = layout.from_matrix(outputs[..., :length]).to(waveform.dtype).contiguous()

    # The final state: the last block replayed with the matrices of its true length.
    last = length - (n_blocks - 1) * block_length
    _, _, last_input_map, last_transition = cascade_block_matrices(per_filter_a, per_filter_b, last)
    last_input = signal[..., (n_blocks - 1) * block_length :]
    last_entering = entering[:, n_blocks - 1]  # (F, R, 2S)
    zf = torch.bmm(last_input, last_input_map) + torch.bmm(last_entering, last_transition)
    return y, layout.from_matrix(zf).reshape(batch + [sections, 2]).to(waveform.dtype).contiguous()
