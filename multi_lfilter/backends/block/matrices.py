"""The block algorithm's matrices and its scan over blocks, in standard tensor ops.

TorchScript-compatible. Row-vector form throughout (a signal is a row), per filter:

- ``O`` (``(N, L)`` as ``from_history``): the block's outputs from a unit history
  (the last ``N`` outputs before it, most recent first) and no input;
- ``W`` (``(N + L, L)`` as ``from_input``): the block's outputs from its ``L`` input
  samples preceded by the ``N`` before them, from rest (FIR and all-pole parts);
- ``S`` (``(N, L)`` as ``from_state``): the outputs from a unit initial state ``zi``
  (an injection into the first ``N`` samples);
- ``P`` (``(N, N)``): the history after a block from the history before it,
  ``H[k + 1] = H[k] P + u[k]`` with ``u[k]`` the last outputs of block ``k`` from rest.

The matrices take a fixed number of ops (one triangular solve gives all three
responses) and the scan ``ceil(log2(T / L))`` steps: none grows with ``T``.
"""
from typing import Tuple

import torch
from torch import Tensor

from ..._shapes import broadcast_batch_shape


def block_matrices(a_coeffs: Tensor, b_coeffs: Tensor, block_length: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """The matrices of one block (see the module doc).

    All three responses solve the block's recurrence ``A y = rhs`` (``A`` the unit
    lower-triangular banded Toeplitz matrix of ``a``) by forward substitution, which
    rounds like the sample-by-sample recurrence. (Squaring the companion matrix
    instead moves the poles of filters with clustered poles near the unit circle by
    enough to multiply the error: benchmarks/results-2026-12-03.md, D4.)

    Returns:
        ``(W, O, S, P)``: ``(..., N + L, L)``, ``(..., N, L)``, ``(..., N, L)`` and
        ``(..., N, N)``, with leading dims the broadcast of ``a``'s and ``b``'s.
    """
    order = a_coeffs.shape[-1] - 1
    lead = list(a_coeffs.shape[:-1])
    # A[n, m] = a[n - m]: window L - 1 + m - n of [0] * (L - 1) + a + [0] * (L - 1), reversed.
    padded_a = torch.nn.functional.pad(a_coeffs, [block_length - 1, max(block_length - 1 - order, 0)])
    recurrence = padded_a[..., : 2 * block_length - 1].unfold(-1, block_length, 1).flip(-1)
    # The FIR part on x_ext (index m = n + N): v[n] = sum_m b[n + N - m] x_ext[m], so
    # row n holds b reversed at columns n .. n + N: window L - 1 - n of the padded b.
    padded_b = torch.nn.functional.pad(b_coeffs.flip(-1), [block_length - 1, block_length - 1])
    fir = padded_b.unfold(-1, order + block_length, 1).flip(-2)  # (..., L, N + L)
    # A unit history e_i (output -1 - i) enters output n as -a[n + 1 + i]: window n + 1
    # of a followed by zeros.
    if order > 0:
        padded = torch.nn.functional.pad(-a_coeffs[..., 1:], [0, block_length])
        history = padded.unfold(-1, order, 1)[..., :block_length, :]
    else:
        history = a_coeffs.new_zeros(lead + [block_length, 0])
    # A unit initial state zi_i is an injection into v[i].
    state = torch.eye(block_length, order, dtype=a_coeffs.dtype, device=a_coeffs.device)
    batch = broadcast_batch_shape([lead, list(b_coeffs.shape[:-1])])
    if batch is None:
        raise ValueError(f"expected a and b whose leading dims broadcast, got {lead} and {list(b_coeffs.shape[:-1])}")
    rhs = torch.cat(
        [
            fir.expand(batch + [block_length, order + block_length]),
            history.expand(batch + [block_length, order]),
            state.expand(batch + [block_length, order]),
        ],
        -1,
    )
    solved = torch.linalg.solve_triangular(
        recurrence.expand(batch + [block_length, block_length]), rhs, upper=False, unitriangular=True
    )
    from_input = solved[..., : order + block_length].transpose(-1, -2)
    from_history = solved[..., order + block_length : 2 * order + block_length].transpose(-1, -2)
    from_state = solved[..., 2 * order + block_length :].transpose(-1, -2)
    # The new history's entry j is output L - 1 - j.
    transition = from_history[..., block_length - order :].flip(-1)
    return from_input, from_history, from_state, transition


def scan_histories(increments: Tensor, transition: Tensor, in_place: bool, reverse: bool = False) -> Tensor:
    """The history entering every block, from what each block adds to it.

    Solves ``H[k] = H[k - 1] P + v[k]``, ``H[0] = v[0]``, in ``ceil(log2(n_blocks))``
    steps (Hillis-Steele doubling: after the step of span ``s`` every total holds the
    last ``2 s`` increments, carried by ``P^s``). The increment of block ``k`` is the
    last outputs from rest of the block before it (``u[k - 1]`` in the module doc), and
    that of the first block the history entering it: the caller lays them out shifted
    by one block, so the result needs no shifting copy.

    Args:
        increments: ``v``, ``(F, n_blocks, R, N)``.
        transition: ``P``, ``(F, N, N)``.
        in_place: accumulate into ``increments`` (where no autograd graph is built).
        reverse: the blocks follow each other backwards, ``H[k] = H[k + 1] P + v[k]``
            (filtering backwards in time, the blocks kept in natural order).

    Returns:
        ``H``: ``(F, n_blocks, R, N)``.
    """
    n_filters, n_blocks, n_rows, order = increments.shape
    total = increments
    power = transition
    # In place, every step's products go into one buffer (a fresh one per step would
    # be allocated before the last is freed).
    carried_buffer = increments.new_empty([n_filters * max(n_blocks - 1, 0) * n_rows * order if in_place else 0])
    span = 1
    while span < n_blocks:
        # The n - span blocks that carry are one (F, (n - span) R, N) view (blocks before rows).
        earlier = total[:, span:] if reverse else total[:, : n_blocks - span]
        earlier = earlier.reshape(n_filters, (n_blocks - span) * n_rows, order)
        if in_place:
            size = n_filters * (n_blocks - span) * n_rows * order
            carried = torch.bmm(earlier, power, out=carried_buffer[:size].view(n_filters, (n_blocks - span) * n_rows, order))
        else:
            carried = torch.bmm(earlier, power)
        carried = carried.view(n_filters, n_blocks - span, n_rows, order)
        if in_place and reverse:
            total[:, : n_blocks - span] += carried
        elif in_place:
            total[:, span:] += carried
        elif reverse:
            total = torch.cat([total[:, : n_blocks - span] + carried, total[:, n_blocks - span :]], 1)
        else:
            total = torch.cat([total[:, :span], total[:, span:] + carried], 1)
        span *= 2
        if span < n_blocks:
            power = torch.bmm(power, power)
    return total
