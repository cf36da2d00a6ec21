"""Filters without feedback (``a`` of one coefficient): scipy's convolution semantics.

:func:`scipy.signal.lfilter` runs a one-coefficient ``a`` as a convolution, so a
non-finite sample spoils only the ``K`` outputs it reaches. Through a recurrence with
``a`` padded by zeros it would spoil every later output (``0 * nan`` is ``nan``), so
the functional layer sends such filters here instead of to a backend.

Standard tensor ops, double-precision sums rounded once (like every backend; complex128
for complex calls), differentiable by
autograd, TorchScript-compatible; ``K`` ops over the output, so meant for the short
numerators of audio filters.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ._precision import compute_dtype
from ._shapes import filter_batch_shape
from ._state import final_state, last_samples_reversed


def filter_fir(waveform: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """``y[n] = sum_k b_k x[n - k] + zi[n]`` (``zi[n] = 0`` for ``n >= N``) and the final state.

    Args:
        waveform: ``(..., T)``.
        b_coeffs: ``(..., K)`` float64 (complex128 for a complex waveform), already
            divided by ``a0``.
        zi: ``(..., N)`` or ``None``.

    Returns:
        ``(y, zf)``: ``(*batch, T)`` and ``(*batch, N)`` in the waveform's dtype.
    """
    batch = filter_batch_shape(waveform, b_coeffs, b_coeffs, zi)
    order = b_coeffs.shape[-1] - 1
    length = waveform.shape[-1]
    compute = compute_dtype(waveform)
    signal = waveform.to(compute)
    delayed = torch.nn.functional.pad(signal, [order, 0])
    y = b_coeffs[..., :1] * signal
    for lag in range(1, order + 1):
        y = y + b_coeffs[..., lag : lag + 1] * delayed[..., order - lag : order - lag + length]
    if zi is not None:
        injected = min(order, length)
        y = y + torch.nn.functional.pad(zi.to(compute)[..., :injected], [0, length - injected])
    y = y.expand(batch + [length])
    # No feedback: the state holds only the numerator's tails (zeros stand for y).
    no_feedback = torch.zeros_like(b_coeffs)
    x_recent = last_samples_reversed(signal, order)
    zf = final_state(x_recent, torch.zeros_like(x_recent), no_feedback, b_coeffs, zi, length)
    return y.to(waveform.dtype), zf.expand(batch + [order]).to(waveform.dtype).contiguous()
