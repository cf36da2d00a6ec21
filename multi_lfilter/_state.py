"""The filter state in closed form: the final state from the last samples.

TorchScript-compatible; used by the block backend (which does not step through the
state) and by the adjoint (whose reversed pass starts from a state).
"""
from typing import Optional

import torch
from torch import Tensor

from ._shapes import take_last


def hankel(coeffs: Tensor) -> Tensor:
    """``H[..., r, m] = c[r + m + 1]`` where ``r + m + 1 <= N``, else 0; shape ``(..., N, N)``.

    For ``c`` of length ``K = N + 1``. Applied to the last ``N`` samples of a signal,
    most recent first, it gives how those samples reach the transposed-direct-form
    state: ``z[r] = sum_m c[r + m + 1] s[T - 1 - m]``.
    """
    order = coeffs.shape[-1] - 1
    steps = torch.arange(order, device=coeffs.device)
    index = steps.unsqueeze(1) + steps.unsqueeze(0) + 1
    padded = torch.nn.functional.pad(coeffs, [0, order])
    return take_last(padded, index) * (index <= order).to(coeffs.dtype)


def last_samples_reversed(signal: Tensor, count: int) -> Tensor:
    """``signal[..., T - 1 - i]`` for ``i < count``, zeros before the start: ``(..., count)``."""
    length = signal.shape[-1]
    if length < count:
        signal = torch.nn.functional.pad(signal, [count - length, 0])
    return signal[..., signal.shape[-1] - count :].flip(-1)


def final_state(
    x_recent: Tensor,
    y_recent: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor],
    length: int,
) -> Tensor:
    """The final state ``zf`` of ``lfilter`` from the last samples of its input and output.

    .. math::

        z_f[k] = \\sum_{j=k+1}^{N} (b_j x[T + k - j] - a_j y[T + k - j]) + z_i[T + k],

    with samples before the start taken as zero and ``zi[n] = 0`` for ``n >= N``.

    Args:
        x_recent: ``(..., N)``, ``x[T - 1 - i]`` (see ``last_samples_reversed``).
        y_recent: ``(..., N)``, ``y[T - 1 - i]``.
        a_coeffs, b_coeffs: ``(..., N + 1)``.
        zi: ``(..., N)`` or ``None``.
        length: ``T``.

    Returns:
        The broadcast ``(..., N)``.
    """
    order = a_coeffs.shape[-1] - 1
    state = (hankel(b_coeffs) * x_recent.unsqueeze(-2)).sum(-1)
    state = state - (hankel(a_coeffs) * y_recent.unsqueeze(-2)).sum(-1)
    if zi is not None and length < order:
        state = state + torch.nn.functional.pad(zi[..., length:], [0, length])
    return state
