"""The reference for time-varying filters: each form as a TorchScript loop over time.

One step at a time, vectorised over the whole batch, with built-in ops only (so it
scripts and its results are the ground truth for every faster kernel). The
coefficients of step ``n`` are read (or interpolated between frames) and normalised
by their own ``a0`` inside the loop: per-sample coefficients are never materialised,
and autograd carries gradients back to the frames.

With ``K`` coefficients (``N = K - 1``) per step, ``a_k[n]`` and ``b_k[n]`` already
divided by ``a_0[n]``, the forms are (philtorch 0.7's definitions):

- ``tdf2``: ``y[n] = b_0[n] x[n] + s_1[n]``,
  ``s_k[n + 1] = s_{k+1}[n] + b_k[n] x[n] - a_k[n] y[n]`` (``s_{N+1} = 0``); state
  ``[s_1, ..., s_N]``, scipy's (and ``lfilter_bank``'s) with constant coefficients.
- ``df1``: ``y[n] = sum_k b_k[n] x[n-k] - sum_{k>=1} a_k[n] y[n-k]``; state
  ``[x[-1], ..., x[-N], y[-1], ..., y[-N]]`` (``2 N`` values).
- ``df2``: ``w[n] = x[n] - sum_{k>=1} a_k[n] w[n-k]``,
  ``y[n] = sum_k b_k[n] w[n-k]``; state ``[w[-1], ..., w[-N]]``.
- ``tdf1``: ``u[n] = x[n] - sum_{k>=1} a_k[n-k] u[n-k]``,
  ``y[n] = sum_k b_k[n-k] u[n-k]`` (each coefficient applied at the step it belongs
  to), both halves in transposed form; state ``[p_1, ..., p_N, q_1, ..., q_N]`` with
  ``u[n] = x[n] + p_1[n]``, ``p_k[n+1] = p_{k+1}[n] - a_k[n] u[n]`` and
  ``y[n] = b_0[n] u[n] + q_1[n]``, ``q_k[n+1] = q_{k+1}[n] + b_k[n] u[n]``.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

FORMS = ("tdf2", "df1", "df2", "tdf1")


def state_size(form: str, order: int) -> int:
    """The number of state values per chain: ``N`` for ``tdf2`` and ``df2``, ``2 N``
    for ``df1`` and ``tdf1``."""
    return 2 * order if form == "df1" or form == "tdf1" else order


def padded_coefficients(a_coeffs: Tensor, b_coeffs: Tensor) -> Tuple[Tensor, Tensor]:
    """The coefficients as the loop reads them: float64, zero-padded to one length."""
    width = max(a_coeffs.shape[-1], b_coeffs.shape[-1])
    a_wide = torch.nn.functional.pad(a_coeffs.double(), [0, width - a_coeffs.shape[-1]])
    b_wide = torch.nn.functional.pad(b_coeffs.double(), [0, width - b_coeffs.shape[-1]])
    return a_wide, b_wide


def coefficients_at(coefficients: Tensor, step: int, hop: int) -> Tensor:
    """The ``(..., K)`` coefficients of sample ``step`` from ``(..., Tc, K)``: the one
    row where ``Tc == 1``, row ``step`` where ``hop == 0`` (per sample), else frame
    ``f = step // hop`` interpolated linearly toward frame ``f + 1`` (held after the
    last frame)."""
    if coefficients.shape[-2] == 1:
        return coefficients[..., 0, :]
    if hop == 0:
        return coefficients[..., step, :]
    frame = step // hop
    offset = step - frame * hop
    if offset == 0 or frame + 1 >= coefficients.shape[-2]:
        return coefficients[..., frame, :]
    weight = offset / hop
    return coefficients[..., frame, :] * (1.0 - weight) + coefficients[..., frame + 1, :] * weight


def _shift_in(history: Tensor, newest: Tensor) -> Tensor:
    """``[newest, history[0], ..., history[-2]]`` along the last dim."""
    return torch.cat([newest.unsqueeze(-1), history[..., :-1]], -1)


def _advance(state: Tensor) -> Tensor:
    """``[state[1], ..., state[-1], 0]``: a transposed form's states moved one slot."""
    return torch.cat([state[..., 1:], torch.zeros_like(state[..., :1])], -1)


def filter_varying_loop(
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor],
    batch: List[int],
    form: str,
    hop: int,
) -> Tuple[Tensor, Tensor]:
    """Filter ``(..., T)`` through ``(..., Tc, K)`` coefficients (``a0`` included,
    float64, one ``K`` for both) from state ``zi`` (``(..., state_size)`` or ``None``).

    Returns ``(y, zf)``: ``(*batch, T)`` in the waveform's dtype and
    ``(*batch, state_size)`` in float64.
    """
    order = a_coeffs.shape[-1] - 1
    length = waveform.shape[-1]
    size = state_size(form, order)
    state = torch.zeros(batch + [size], dtype=torch.float64, device=waveform.device)
    if zi is not None:
        state = state + zi.to(torch.float64)
    signal = waveform.to(torch.float64).expand(batch + [length])
    outputs: List[Tensor] = []
    for step in range(length):
        a_step = coefficients_at(a_coeffs, step, hop)
        b_step = coefficients_at(b_coeffs, step, hop)
        inverse = 1.0 / a_step[..., :1]  # a reciprocal, then products: the native kernels' rounding
        a_step = a_step[..., 1:] * inverse
        b_step = b_step * inverse
        x = signal[..., step]
        if order == 0:
            y = b_step[..., 0] * x
        elif form == "tdf2":
            y = b_step[..., 0] * x + state[..., 0]
            state = _advance(state) + b_step[..., 1:] * x.unsqueeze(-1) - a_step * y.unsqueeze(-1)
        elif form == "df1":
            inputs, past = state[..., :order], state[..., order:]
            y = b_step[..., 0] * x + (b_step[..., 1:] * inputs).sum(-1) - (a_step * past).sum(-1)
            state = torch.cat([_shift_in(inputs, x), _shift_in(past, y)], -1)
        elif form == "df2":
            w = x - (a_step * state).sum(-1)
            y = b_step[..., 0] * w + (b_step[..., 1:] * state).sum(-1)
            state = _shift_in(state, w)
        else:  # tdf1
            poles, zeros = state[..., :order], state[..., order:]
            u = x + poles[..., 0]
            y = b_step[..., 0] * u + zeros[..., 0]
            poles = _advance(poles) - a_step * u.unsqueeze(-1)
            zeros = _advance(zeros) + b_step[..., 1:] * u.unsqueeze(-1)
            state = torch.cat([poles, zeros], -1)
        outputs.append(y)
    if length == 0:
        y_all = torch.zeros(batch + [0], dtype=waveform.dtype, device=waveform.device)
    else:
        y_all = torch.stack(outputs, -1).to(waveform.dtype)
    return y_all, state


def varying_filter(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], batch: List[int], form: str, hop: int
) -> Tuple[Tensor, Tensor]:
    """The registry's entry (``backends/dispatch.py``): the loop on the caller's
    coefficients, padded to one length in float64."""
    a_wide, b_wide = padded_coefficients(a_coeffs, b_coeffs)
    return filter_varying_loop(waveform, a_wide, b_wide, zi, batch, form, hop)
