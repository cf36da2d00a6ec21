"""Steady-state initial conditions: ``lfilter_zi_bank`` and ``sosfilt_zi_bank``.

The state a filter (or cascade) settles in under a constant input, as scipy computes
it, batched over the bank and differentiable with respect to the coefficients.
"""
import torch
from torch import Tensor

from ._precision import result_dtype
from ._validation import check_coefficients, check_is_tensor, check_sections, normalize_coefficients, value_checks_allowed


def lfilter_zi_bank(*, a_coeffs: Tensor, b_coeffs: Tensor) -> Tensor:
    """Steady-state initial state for a unit step, like :func:`scipy.signal.lfilter_zi`.

    Solves ``(I - A^T) zi = b[1:] - a[1:] b[0]`` with ``A`` the companion matrix of the
    normalised denominator; ``zi * x[0]`` starts a filter as if ``x[0]`` had always been
    its input. The coefficients are keyword-only (see "Argument order" in the guide):
    scipy's ``lfilter_zi(b, a)`` takes them the other way round.

    Args:
        a_coeffs: ``(..., Ka)``, ``a[..., 0] != 0``.
        b_coeffs: ``(..., Kb)``; leading dims broadcast with ``a``'s.

    Returns:
        ``(..., N)`` with ``N = max(Ka, Kb) - 1``, in the coefficients' dtype (complex
        where either is complex: see :func:`multi_lfilter.lfilter_bank_with_state`).

    Raises:
        TypeError: for non-tensors, integer tensors, or mixed precisions.
        ValueError: for scalars, empty coefficients, leading dims that do not
            broadcast, or a zero ``a0``.

    Example:
        >>> import torch
        >>> from multi_lfilter import lfilter_zi_bank
        >>> lfilter_zi_bank(a_coeffs=torch.tensor([1.0, -0.5]), b_coeffs=torch.tensor([0.5, 0.0]))
        tensor([0.5000])
    """
    check_coefficients(a_coeffs, b_coeffs)
    # The state's dtype: the coefficients' one precision, complex where either is.
    dtype = result_dtype(a_coeffs, a_coeffs, b_coeffs, None)
    # Padded, normalised (zero a0 refused) and in float64 (complex128), then back to ``dtype``.
    a, b = normalize_coefficients(a_coeffs, b_coeffs, value_checks_allowed(a_coeffs))
    a, b = torch.broadcast_tensors(a, b)
    order = a.shape[-1] - 1
    if order == 0:
        return a[..., :0].to(dtype)
    # I - A^T, A the companion matrix: first row -a[1:], ones below the diagonal.
    identity = torch.eye(order, dtype=a.dtype, device=a.device)
    shifted = torch.diag(torch.ones(order - 1, dtype=a.dtype, device=a.device), 1)
    companion_t = shifted.expand(a.shape[:-1] + (order, order)).clone()
    companion_t[..., :, 0] = -a[..., 1:]
    rhs = b[..., 1:] - a[..., 1:] * b[..., :1]
    return torch.linalg.solve(identity - companion_t, rhs).to(dtype)


def sosfilt_zi_bank(sos: Tensor) -> Tensor:
    """Steady-state initial states of cascades, like :func:`scipy.signal.sosfilt_zi`.

    Section ``s`` starts from :func:`lfilter_zi_bank` of its own coefficients, scaled by
    the DC gain of the sections before it (the level its input settles at for a unit
    step); ``zi * x[0]`` starts a cascade as if ``x[0]`` had always been its input.

    Args:
        sos: ``(..., S, 6)`` sections ``[b0, b1, b2, a0, a1, a2]``.

    Returns:
        ``(..., S, 2)`` in ``sos``'s dtype, differentiable with respect to ``sos``.

    Raises:
        TypeError: for a non-tensor, or an integer ``sos``.
        ValueError: for an ``sos`` that is not ``(..., S, 6)``, or a zero ``a0``.

    Example:
        >>> import torch
        >>> from multi_lfilter import sosfilt_zi_bank
        >>> sos = torch.tensor([[0.5, 0.0, 0.0, 1.0, -0.5, 0.0], [1.0, 0.0, 0.0, 1.0, -0.5, 0.0]])
        >>> sosfilt_zi_bank(sos)
        tensor([[0.5000, 0.0000],
                [1.0000, 0.0000]])
    """
    if not torch.jit.is_scripting():
        check_is_tensor("sos", sos)
    check_sections(sos)
    b, a = sos[..., :3], sos[..., 3:]
    zi = lfilter_zi_bank(a_coeffs=a, b_coeffs=b)
    dc_gain = b.sum(-1) / a.sum(-1)
    # The gain before each section: 1 for the first, then the running product.
    before = torch.cumprod(torch.cat([torch.ones_like(dc_gain[..., :1]), dc_gain[..., :-1]], -1), -1)
    return zi * before.unsqueeze(-1)
