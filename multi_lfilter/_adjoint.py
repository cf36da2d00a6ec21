"""The analytic adjoint of the filter, written with tensor ops and one filtering call.

With ``g = dL/dy`` (length ``T``) and ``h = dL/dzf`` (length ``N``), the gradient with
respect to the FIR-plus-injection signal ``v`` is the all-pole recurrence run backwards
in time,

.. math::

    g_v[n] = g[n] - \\sum_{k=1}^{N} a_k\\, g_v[n + k], \\qquad g_v[T + k] = h[k],

that is, extended by ``h`` beyond the end: the final state is the injection the next
chunk would receive, so its gradient continues ``g_v``. Everything else follows from
the extended ``g_v`` (length ``T + N``):

.. math::

    \\frac{\\partial L}{\\partial x[m]} = \\sum_k b_k g_v[m + k], \\quad
    \\frac{\\partial L}{\\partial a_j} = -\\sum_t g_v[t + j]\\, y[t], \\quad
    \\frac{\\partial L}{\\partial b_j} = \\sum_t g_v[t + j]\\, x[t], \\quad
    \\frac{\\partial L}{\\partial z_i[n]} = g_v[n].

The backward recurrence is an ordinary forward filtering of the time-reversed gradient
with ``b = [1]``; the history ``h`` enters it as an initial state (``reverse_state``).
Passing the differentiable op as ``filter_fn`` makes the whole adjoint differentiable,
which is how double backward works.

Complex calls: PyTorch's convention for complex autograd makes the backward of a
function holomorphic in its inputs the product with the *conjugate* transpose of its
Jacobian, ``J^H g`` (for ``y = c x``, ``dL/dx = conj(c) g``). The filter is
holomorphic in ``x``, ``zi``, ``a`` and ``b`` (a rational function with real rational
structure), so ``conj(J)`` is the Jacobian of the same filter at the conjugated
inputs, whose output is ``conj(y)``: the formulas above hold with ``a``, ``b``, ``x``
and ``y`` conjugated (``g_v`` runs the recurrence of ``conj(a)``,
``dL/da_j = -sum_t g_v[t + j] conj(y[t])``, ...). :func:`conjugated_for_adjoint` does
that; every backend's adjoint calls it.
"""
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor

from ._shapes import sum_to_shape
from ._state import hankel

FilterFn = Callable[[Tensor, Tensor, Tensor, Optional[Tensor]], Tuple[Tensor, Tensor]]


def reverse_state(grad_zf: Tensor, a_coeffs: Tensor) -> Tensor:
    """Initial state of the reversed-time pass that makes ``g_v[T + k] = grad_zf[k]``.

    In reversed time ``r = T - 1 - n`` the recurrence misses the terms
    ``-sum_{k > r} a_k h[k - r - 1]`` for ``r < N``; injecting them as ``zi`` restores them.
    """
    return -(hankel(a_coeffs) * grad_zf.unsqueeze(-2)).sum(-1)


def conjugated_for_adjoint(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, y: Tensor
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x, a, b, y)`` as the adjoint's formulas read them: conjugated for a complex call
    (PyTorch's convention, see the module doc), unchanged for a real one. The
    coefficients are resolved (small); the signals stay lazy conjugate views."""
    if not a_coeffs.is_complex():
        return waveform, a_coeffs, b_coeffs, y
    return waveform.conj(), a_coeffs.conj().resolve_conj(), b_coeffs.conj().resolve_conj(), y.conj()


def filter_adjoint(
    filter_fn: FilterFn,
    grad_y: Optional[Tensor],
    grad_zf: Optional[Tensor],
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    y: Tensor,
    zi_shape: Optional[List[int]],
    needs_input_grad: Tuple[bool, bool, bool, bool],
) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """Gradients of ``(waveform, a_coeffs, b_coeffs, zi)``, each summed to its input's shape.

    Args:
        filter_fn: ``(waveform, a, b, zi) -> (y, zf)`` used for the backward recurrence.
        grad_y: ``(*batch, T)`` or ``None`` (zero).
        grad_zf: ``(*batch, N)`` or ``None`` (zero).
        waveform, a_coeffs, b_coeffs: the forward inputs (normalised, same ``K``).
        y: the forward output ``(*batch, T)``.
        zi_shape: the shape of the forward ``zi``, ``None`` where it was not given.
        needs_input_grad: which of the four gradients to compute.
    """
    waveform, a_coeffs, b_coeffs, y = conjugated_for_adjoint(waveform, a_coeffs, b_coeffs, y)
    order = a_coeffs.shape[-1] - 1
    length = y.shape[-1]
    batch = list(y.shape[:-1])
    if grad_y is None:
        grad_y = y.new_zeros(batch + [length])
    if grad_zf is None:
        grad_zf = y.new_zeros(batch + [order])

    impulse = torch.zeros(order + 1, dtype=a_coeffs.dtype, device=y.device)
    impulse[0] = 1
    state = reverse_state(grad_zf, a_coeffs)
    grad_v_reversed, _ = filter_fn(grad_y.flip(-1), a_coeffs, impulse, state)
    grad_v = grad_v_reversed.flip(-1)
    del grad_v_reversed  # frees it now: the adjoint's peak memory is a few outputs
    # The gradient of v is (*batch, T) here, continued beyond the end by the gradient of
    # the final state (``tail``). The two are kept apart: joining them would copy an
    # output-sized tensor once more.
    tail = grad_zf.expand(batch + [order])

    def lagged_dot(lag: int, signal: Tensor) -> Tensor:
        """``sum_t g_v[t + lag] signal[t]``, with ``g_v`` continued by ``tail``.

        Summed in the signal's dtype (torch's cascade summation keeps a float32 sum
        within about 1e-7 of the exact one; converting the output-sized products to
        float64 first would cost a copy of twice their size).
        """
        inside = max(length - lag, 0)
        total = (grad_v[..., lag : lag + inside] * signal[..., :inside]).sum(-1)
        beyond = min(lag, length)  # the last samples meet the tail
        if beyond > 0:
            total = total + (tail[..., lag - beyond : lag] * signal[..., length - beyond :]).sum(-1)
        return total

    need_waveform, need_a, need_b, need_zi = needs_input_grad
    grad_waveform = grad_a = grad_b = grad_zi = None
    if need_waveform:
        extended = torch.cat([grad_v, tail], -1)
        total = b_coeffs[..., 0:1] * extended.narrow(-1, 0, length)
        for k in range(1, order + 1):
            total = total + b_coeffs[..., k : k + 1] * extended.narrow(-1, k, length)
        grad_waveform = sum_to_shape(total.to(waveform.dtype), list(waveform.shape))
    # Coefficient gradients are reductions over time, carried on in the coefficients'
    # float64 once summed.
    if need_a:
        taps = [y.new_zeros(batch, dtype=a_coeffs.dtype)]
        taps += [-lagged_dot(j, y).to(a_coeffs.dtype) for j in range(1, order + 1)]
        grad_a = sum_to_shape(torch.stack(taps, -1), list(a_coeffs.shape))
    if need_b:
        taps = [lagged_dot(j, waveform).to(b_coeffs.dtype) for j in range(order + 1)]
        grad_b = sum_to_shape(torch.stack(taps, -1), list(b_coeffs.shape))
    if need_zi and zi_shape is not None:
        grad_zi = sum_to_shape(torch.cat([grad_v[..., :order], tail], -1)[..., :order], zi_shape)
    return grad_waveform, grad_a, grad_b, grad_zi


def recorded_gradients(
    outputs: List[Tensor], upstream: List[Optional[Tensor]], inputs: List[Optional[Tensor]], needs: List[bool]
) -> List[Optional[Tensor]]:
    """The gradients of ``inputs`` (where ``needs``) for ``outputs`` weighted by
    ``upstream`` (``None`` entries skipped), recorded so they differentiate again: the
    double backward of the ops whose first backward is an opaque kernel. A needed input
    the outputs do not reach gets zeros. Call with the outputs computed under
    ``torch.enable_grad()``."""
    pairs = [(output, gradient) for output, gradient in zip(outputs, upstream) if gradient is not None]
    wanted = [tensor for tensor, need in zip(inputs, needs) if need]
    with torch.enable_grad():
        found = iter(torch.autograd.grad(
            [output for output, _ in pairs], wanted, [gradient.to(output.dtype) for output, gradient in pairs],
            create_graph=True, allow_unused=True,
        ))
    gradients = [next(found) if need else None for need in needs]
    return [
        torch.zeros_like(tensor) if need and gradient is None else gradient
        for tensor, need, gradient in zip(inputs, needs, gradients)
    ]
