"""Public filtering functions: validate, normalise by ``a[..., 0]``, call the op.

Dimension names: ``T`` time, ``K`` coefficients, ``N = K - 1`` order, ``C`` filters,
``B`` batch.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ._call_mode import EAGER, EXPORT, GRAPH, call_mode
from ._fir import filter_fir
from ._op import FilterFunction, graph_filter
from ._precision import is_half, to_result_dtype, widen_half
from ._validation import (
    check_filter_inputs,
    check_filter_inputs_are_tensors,
    normalize_coefficients,
    value_checks_allowed,
)
from .export_modes import current_export_mode
from .backends.dispatch import backend_for_call, backend_module, exported_filter, scripted_filter


def lfilter_bank_with_state(
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor] = None,
    backend: str = "auto",
) -> Tuple[Tensor, Tensor]:
    r"""Filter with a bank of IIR filters and return the final state too.

    Runs the difference equation (scipy's convention, normalised by :math:`a_0`)

    .. math::

        a_0 y[n] = \sum_{k=0}^{N} b_k x[n - k] - \sum_{k=1}^{N} a_k y[n - k]

    in transposed direct form II, whose state ``zi``/``zf`` is exactly that of
    :func:`scipy.signal.lfilter`. The leading dims of ``waveform``, ``a_coeffs``,
    ``b_coeffs`` and ``zi`` broadcast with NumPy rules; the broadcast waveform is never
    copied per filter. ``a_coeffs`` and ``b_coeffs`` may differ in length (the shorter
    is zero-padded). The result is differentiable with respect to every tensor input,
    through an analytic adjoint; double backward works.

    Complex signals and filters: where any input is complex (complex64 or
    complex128), the output and final state are complex, of the inputs' precision (a
    float32 signal through complex64 coefficients gives complex64); all inputs share
    one precision. Complex calls run on the backends that declare it (block and loop;
    ``"auto"`` picks among them), their gradients follow PyTorch's convention for
    complex autograd, and ``torch.export`` refuses them (ONNX has no complex type).

    Args:
        waveform: ``(..., T)``, float32 or float64, complex64 or complex128; float16
            and bfloat16 too (filtered in float32, or float64 with float64
            coefficients, and returned in their own dtype; the coefficients may then
            be float32, as under ``torch.autocast``, but not complex).
        a_coeffs: ``(..., Ka)`` denominator ``[a0, a1, ...]``; no ``a0`` may be zero.
        b_coeffs: ``(..., Kb)`` numerator ``[b0, b1, ...]``.
        zi: ``(..., N)`` initial state with ``N = max(Ka, Kb) - 1``; ``None`` is zeros.
        backend: which kernel runs; ``"auto"`` picks the fastest available
            (see :func:`multi_lfilter.available_backends`).

    Returns:
        ``(y, zf)``: the output ``(*batch, T)`` and final state ``(*batch, N)``, with
        ``batch`` the broadcast of the inputs' leading dims. Feeding ``zf`` as the next
        chunk's ``zi`` continues the signal exactly. For ``T = 0`` the final state is
        ``zi`` unchanged (scipy returns zeros there).

    Raises:
        TypeError: for non-tensors, integer tensors, mixed precisions (float32 with
            float64 or complex128), or complex coefficients with a half-precision
            waveform.
        ValueError: for shapes that do not broadcast, a wrong ``zi`` length, a zero
            ``a0``, mixed devices, an unknown backend, or one named for a problem it
            cannot run (a complex call on a backend that runs real dtypes only).

    Example:
        >>> import torch
        >>> from multi_lfilter import lfilter_bank_with_state
        >>> a = torch.tensor([1.0, -0.9])          # one-pole smoother
        >>> b = torch.tensor([0.1])
        >>> x = torch.ones(2, 100)
        >>> y_first, zf = lfilter_bank_with_state(x[:, :60], a_coeffs=a, b_coeffs=b)
        >>> y_rest, _ = lfilter_bank_with_state(x[:, 60:], a_coeffs=a, b_coeffs=b, zi=zf)
        >>> y_whole, _ = lfilter_bank_with_state(x, a_coeffs=a, b_coeffs=b)
        >>> torch.allclose(torch.cat([y_first, y_rest], -1), y_whole)
        True
        >>> zf.shape
        torch.Size([2, 1])
    """
    if not torch.jit.is_scripting():
        check_filter_inputs_are_tensors(waveform, a_coeffs, b_coeffs, zi)
    if is_half(waveform.dtype):  # filtered in a wider type, returned as it came
        wide = widen_half(waveform, a_coeffs, b_coeffs, zi)
        y, zf = _filter_with_state(wide[0], wide[1], wide[2], wide[3], backend)
        return y.to(waveform.dtype), zf.to(waveform.dtype)
    return _filter_with_state(waveform, a_coeffs, b_coeffs, zi, backend)


def _filter_with_state(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], backend: str
) -> Tuple[Tensor, Tensor]:
    """:func:`lfilter_bank_with_state` for float32, float64, complex64 and complex128 inputs."""
    check_filter_inputs(waveform, a_coeffs, b_coeffs, zi)
    # A complex call (any input complex) runs on complex signals and coefficients.
    waveform, zi = to_result_dtype(waveform, a_coeffs, b_coeffs, zi)
    a_normalised, b_normalised = normalize_coefficients(
        a_coeffs, b_coeffs, value_checks_allowed(waveform), waveform.is_complex()
    )
    # One coefficient in a: no feedback, and scipy's convolution semantics (see _fir).
    has_feedback = a_coeffs.shape[-1] > 1

    if torch.jit.is_scripting():
        return scripted_filter(waveform, a_normalised, b_normalised, zi, backend, has_feedback)
    return _filter_outside_script(waveform, a_normalised, b_normalised, zi, backend, has_feedback)


@torch.jit.unused
def _filter_outside_script(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], backend: str, has_feedback: bool
) -> Tuple[Tensor, Tensor]:
    """Every mode but TorchScript's (see ``_call_mode``), on normalised coefficients."""
    mode = call_mode([waveform, a_coeffs, b_coeffs, zi])
    if mode == EXPORT:
        return exported_filter(waveform, a_coeffs, b_coeffs, zi, backend, current_export_mode())
    if not has_feedback:
        backend_for_call(backend, waveform, a_coeffs, b_coeffs, zi, read_data=False)  # name check
        return filter_fir(waveform, b_coeffs, zi)
    if mode == GRAPH:
        # The op keeps the backend as asked for ("auto" by default) and resolves it from
        # the tensors it receives when it runs, so a traced or compiled graph works
        # where another backend is the right one; on a GPU the graph may hold the
        # Triton kernels instead (graph_filter). Unknown names fail now.
        return graph_filter(waveform, a_coeffs, b_coeffs, zi, backend)
    if mode != EAGER:
        # Eager autograd, torch.func and forward-mode AD: the op as an autograd.Function.
        backend_for_call(backend, waveform, a_coeffs, b_coeffs, zi, read_data=False)
        return FilterFunction.apply(waveform, a_coeffs, b_coeffs, zi, backend)
    # Nothing to differentiate: skip the op's dispatch (tens of microseconds, which a
    # streaming call of a few hundred samples would notice).
    backend_name = backend_for_call(backend, waveform, a_coeffs, b_coeffs, zi)
    return backend_module(backend_name).forward(waveform, a_coeffs, b_coeffs, zi)


def lfilter_bank(
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor] = None,
    backend: str = "auto",
) -> Tensor:
    r"""Filter with a bank of IIR filters whose coefficients broadcast against the input.

    The same filter as :func:`lfilter_bank_with_state`, returning only the output.

    Common layouts (``B`` signals, ``C`` filters):

    - one signal per example through every filter: ``waveform (B, 1, T)`` (that is,
      ``x.unsqueeze(-2)``) with ``a_coeffs (C, K)`` gives ``(B, C, T)``;
    - one filter per channel: ``waveform (B, C, T)`` with ``a_coeffs (C, K)``;
    - per-example filters: ``waveform (B, 1, T)`` with ``a_coeffs (B, C, K)``.

    Args:
        waveform: ``(..., T)``, float32 or float64, complex64 or complex128 (see
            :func:`lfilter_bank_with_state` for the dtype rules).
        a_coeffs: ``(..., Ka)`` denominator ``[a0, a1, ...]``; no ``a0`` may be zero.
        b_coeffs: ``(..., Kb)`` numerator ``[b0, b1, ...]``.
        zi: ``(..., N)`` initial state, ``N = max(Ka, Kb) - 1``; ``None`` is zeros.
        backend: which kernel runs (``"auto"`` picks the fastest available).

    Returns:
        ``(*batch, T)``: the filtered signals. No clamping: the output is linear in the
        input.

    Raises:
        TypeError: for non-tensors, integer tensors, or mixed precisions.
        ValueError: for shapes that do not broadcast, a wrong ``zi`` length, a zero
            ``a0``, mixed devices, an unknown backend, or one named for a problem it
            cannot run.

    Example:
        >>> import torch
        >>> from multi_lfilter import lfilter_bank
        >>> waveform = torch.randn(32, 16000)
        >>> a = torch.tensor([1.0, -1.8, 0.9]).repeat(128, 1)   # (C, K)
        >>> b = torch.rand(128, 3)
        >>> lfilter_bank(waveform.unsqueeze(-2), a_coeffs=a, b_coeffs=b).shape
        torch.Size([32, 128, 16000])
    """
    y, _ = lfilter_bank_with_state(waveform, a_coeffs, b_coeffs, zi, backend)
    return y
