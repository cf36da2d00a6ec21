"""The reference backend: the recurrence as a plain TorchScript loop over time.

This is the ground truth every other kernel is tested against, the documentation of
what they compute, and the path ``torch.jit.script`` takes when the block algorithm is
not preferred. It is written with built-in ops only, so a scripted model that uses it
loads in a process that never imports ``multi_lfilter``.

It runs scipy's transposed direct form II, one time step at a time, vectorised over
the whole batch:

.. math::

    y[n] = b_0 x[n] + z_0[n - 1], \\qquad
    z_k[n] = b_{k+1} x[n] - a_{k+1} y[n] + z_{k+1}[n - 1],

with :math:`z[-1]` the initial state ``zi`` and :math:`z[T - 1]` the final state ``zf``.
"""
import functools
import warnings
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .._adjoint import filter_adjoint
from .._precision import compute_dtype
from .._shapes import filter_batch_shape


def filter_loop(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]
) -> Tuple[Tensor, Tensor]:
    """Filter with normalised coefficients, one time step at a time.

    Args:
        waveform: ``(..., T)``.
        a_coeffs: ``(..., K)`` float64, ``a_coeffs[..., 0] == 1`` (complex128, with
            every input complex, for a complex call).
        b_coeffs: ``(..., K)`` float64 (complex128), the same ``K``.
        zi: ``(..., N)`` initial state with ``N = K - 1``, or ``None`` for zeros.

    Returns:
        ``(y, zf)``: ``(*batch, T)`` and ``(*batch, N)`` in the waveform's dtype, where
        ``batch`` is the broadcast of the leading dims of every input.
    """
    batch = filter_batch_shape(waveform, a_coeffs, b_coeffs, zi)
    order = a_coeffs.shape[-1] - 1
    length = waveform.shape[-1]
    # The recurrence runs in double precision whatever the input dtype (float64, or
    # complex128 for complex calls): a float32 recurrence (as in scipy or torchaudio)
    # drifts by up to 1e-3 of max|y| for high orders with poles near the unit circle;
    # here float32 is rounded once, on output. Casting copies the waveform once, never
    # once per filter.
    dtype = waveform.dtype
    compute = compute_dtype(waveform)
    waveform = waveform.to(compute)
    if zi is not None:
        zi = zi.to(compute)
    options_zeros = torch.zeros(batch, dtype=compute, device=waveform.device)

    # One batch-shaped tensor per state slot: indexing a Python list is cheaper per step
    # than slicing and concatenating an (..., N) tensor.
    state: List[Tensor] = []
    for k in range(order):
        if zi is None:
            state.append(options_zeros)
        else:
            state.append(options_zeros + zi[..., k])
    b_taps = [b_coeffs[..., k] for k in range(order + 1)]
    a_taps = [a_coeffs[..., k] for k in range(order + 1)]

    outputs: List[Tensor] = []
    for n in range(length):
        sample = waveform[..., n]
        if order == 0:
            output = options_zeros + b_taps[0] * sample
        else:
            output = b_taps[0] * sample + state[0]
            for k in range(order - 1):
                state[k] = state[k + 1] + b_taps[k + 1] * sample - a_taps[k + 1] * output
            state[order - 1] = b_taps[order] * sample - a_taps[order] * output
        outputs.append(output)

    if length == 0:
        y = torch.zeros(batch + [0], dtype=dtype, device=waveform.device)
    else:
        y = torch.stack(outputs, -1).to(dtype)
    if order == 0:
        zf = torch.zeros(batch + [0], dtype=dtype, device=waveform.device)
    else:
        zf = torch.stack(state, -1).to(dtype)
    return y, zf


@functools.lru_cache(maxsize=None)
def scripted_filter_loop():
    """``filter_loop`` compiled with TorchScript, once, on first use.

    Eager calls go through this compiled version (the interpreter saves the Python
    overhead of every step); compiling lazily keeps ``import multi_lfilter`` fast and
    free of TorchScript's deprecation warning.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.script(filter_loop)


def forward(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]
) -> Tuple[Tensor, Tensor]:
    """The backend contract's forward kernel: see ``filter_loop``."""
    return scripted_filter_loop()(waveform, a_coeffs, b_coeffs, zi)


def adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs_input_grad):
    """The backend contract's adjoint kernel: the composite adjoint over this forward."""
    return filter_adjoint(
        forward, grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs_input_grad
    )
