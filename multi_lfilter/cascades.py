"""Second-order-section cascades, steady-state initial conditions and zero-phase filtering.

Built on :func:`multi_lfilter.lfilter_bank_with_state`, so they broadcast, run on every
backend, differentiate and script the same way. ``S`` is the number of sections.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ._validation import (
    check_coefficients,
    check_filter_inputs,
    check_is_tensor,
    data_checks_allowed,
    dtype_name,
    is_half,
    normalize_coefficients,
    transforms_active,
    value_checks_allowed,
    widen_half,
)
from ._cascade_op import graph_sosfilt, resolve_cascade_backend
from .backends import cascade
from .functional import lfilter_bank_with_state


def _check_sos(waveform: Tensor, sos: Tensor, zi: Optional[Tensor]) -> None:
    if not torch.jit.is_scripting():
        check_is_tensor("waveform", waveform)
        check_is_tensor("sos", sos)
        check_is_tensor("zi", zi, optional=True)
    _check_sections(sos, allow_half=True)


def sosfilt_bank_with_state(
    waveform: Tensor, sos: Tensor, zi: Optional[Tensor] = None, backend: str = "auto"
) -> Tuple[Tensor, Tensor]:
    """Filter through cascades of second-order sections, like :func:`scipy.signal.sosfilt`.

    Each section is a biquad, ``sos[..., s, :] = [b0, b1, b2, a0, a1, a2]``; section
    ``s`` filters the output of section ``s - 1``. Cascades keep high-order filters
    accurate where one long direct form would not (its coefficients are ill-conditioned).
    With the native kernels the cascade runs in one pass, every section per sample, and
    its backward keeps no intermediate signal (it recomputes them block by block);
    the sections and states are differentiable like ``lfilter_bank``'s inputs.

    Args:
        waveform: ``(..., T)``.
        sos: ``(..., S, 6)``; leading dims broadcast with the waveform's.
        zi: ``(..., S, 2)`` initial states (scipy's layout), or ``None`` for zeros.
        backend: as for :func:`multi_lfilter.lfilter_bank`.

    Returns:
        ``(y, zf)``: ``(*batch, T)`` and the final states ``(*batch, S, 2)``.

    Raises:
        ValueError: for an ``sos`` that is not ``(..., S, 6)``, and everything
            :func:`multi_lfilter.lfilter_bank` raises.

    Example:
        >>> import torch
        >>> from multi_lfilter import sosfilt_bank_with_state
        >>> sos = torch.tensor([[0.2, 0.4, 0.2, 1.0, -0.6, 0.3], [1.0, -1.0, 0.0, 1.0, -0.9, 0.0]])
        >>> y, zf = sosfilt_bank_with_state(torch.randn(4, 100), sos)
        >>> y.shape, zf.shape
        (torch.Size([4, 100]), torch.Size([4, 2, 2]))
    """
    _check_sos(waveform, sos, zi)
    if is_half(waveform.dtype):  # every section in a wider type, rounded once at the end
        wide_waveform, wide_sos, _, wide_zi = widen_half(waveform, sos, sos, zi)
        y, states = _cascade(wide_waveform, wide_sos, wide_zi, backend)
        return y.to(waveform.dtype), states.to(waveform.dtype)
    return _cascade(waveform, sos, zi, backend)


def _cascade(waveform: Tensor, sos: Tensor, zi: Optional[Tensor], backend: str) -> Tuple[Tensor, Tensor]:
    """:func:`sosfilt_bank_with_state` on checked inputs.

    Eager calls and ``torch.compile`` run the cascade op (``_cascade_op``): one pass
    through every section with the native kernels, and no intermediate signal kept for
    backward. TorchScript, ``torch.export`` and ``torch.func`` transforms compose the
    sections through ``lfilter_bank_with_state`` (which serves each of them).
    """
    n_sections = sos.shape[-2]
    if zi is not None and (zi.dim() < 2 or zi.shape[-2] != n_sections or zi.shape[-1] != 2):
        raise ValueError(
            f"expected zi of shape (..., {n_sections}, 2) for {n_sections} sections, got {list(zi.shape)}"
        )
    if not torch.jit.is_scripting():
        if not (torch.compiler.is_exporting() or transforms_active()):
            return _cascade_in_one_op(waveform, sos, zi, backend)
    return sections_one_by_one(waveform, sos[..., 3:], sos[..., :3], zi, backend)


def sections_one_by_one(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], backend: str
) -> Tuple[Tensor, Tensor]:
    """A cascade as ``S`` calls of :func:`lfilter_bank_with_state` (``(..., S, 3)``
    coefficients, ``(..., S, 2)`` states): what TorchScript, ``torch.export`` and
    ``torch.func`` run, and what double backward differentiates."""
    states = []
    y = waveform
    for section in range(a_coeffs.shape[-2]):
        section_zi = zi[..., section, :] if zi is not None else None
        y, state = lfilter_bank_with_state(y, a_coeffs[..., section, :], b_coeffs[..., section, :], section_zi, backend)
        states.append(state)
    batch = list(y.shape[:-1])
    return y, torch.stack([state.expand(batch + [2]) for state in states], -2)


@torch.jit.unused
def _cascade_in_one_op(waveform: Tensor, sos: Tensor, zi: Optional[Tensor], backend: str) -> Tuple[Tensor, Tensor]:
    """The cascade through ``multi_lfilter::sosfilt`` (or, without a graph to build,
    straight through ``backends.cascade``), with the checks the composed path makes."""
    first_zi = zi[..., 0, :] if zi is not None else None
    check_filter_inputs(waveform, sos[..., 0, 3:], sos[..., 0, :3], first_zi)
    a_coeffs, b_coeffs = normalize_coefficients(sos[..., 3:], sos[..., :3], value_checks_allowed(waveform))
    tracing = torch.compiler.is_compiling() or torch.jit.is_tracing()
    needs_graph = torch.is_grad_enabled() and (
        waveform.requires_grad or sos.requires_grad or (zi is not None and zi.requires_grad)
    )
    if tracing or needs_graph:
        resolve_cascade_backend(backend, waveform, a_coeffs, b_coeffs, zi, read_data=False)  # name check
        return graph_sosfilt(waveform, a_coeffs, b_coeffs, zi, backend)
    name = resolve_cascade_backend(backend, waveform, a_coeffs, b_coeffs, zi)
    return cascade.forward(name, waveform, a_coeffs, b_coeffs, zi)


def sosfilt_bank(
    waveform: Tensor, sos: Tensor, zi: Optional[Tensor] = None, backend: str = "auto"
) -> Tensor:
    """:func:`sosfilt_bank_with_state` without the final states.

    Example:
        >>> import torch
        >>> from multi_lfilter import sosfilt_bank
        >>> sos = torch.tensor([[0.2, 0.4, 0.2, 1.0, -0.6, 0.3]]).repeat(8, 1, 1)   # 8 banks of 1 section
        >>> sosfilt_bank(torch.randn(3, 1, 50), sos).shape
        torch.Size([3, 8, 50])
    """
    y, _ = sosfilt_bank_with_state(waveform, sos, zi, backend)
    return y


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
        ``(..., N)`` with ``N = max(Ka, Kb) - 1``, in the coefficients' dtype.

    Raises:
        TypeError: for non-tensors, integer or complex tensors, or mixed dtypes.
        ValueError: for scalars, empty coefficients, leading dims that do not
            broadcast, or a zero ``a0``.

    Example:
        >>> import torch
        >>> from multi_lfilter import lfilter_zi_bank
        >>> lfilter_zi_bank(a_coeffs=torch.tensor([1.0, -0.5]), b_coeffs=torch.tensor([0.5, 0.0]))
        tensor([0.5000])
    """
    check_coefficients(a_coeffs, b_coeffs)
    # Padded, normalised (zero a0 refused) and in float64, then back to the input's dtype.
    a, b = normalize_coefficients(a_coeffs, b_coeffs, value_checks_allowed(a_coeffs))
    a, b = torch.broadcast_tensors(a, b)
    order = a.shape[-1] - 1
    if order == 0:
        return a[..., :0].to(a_coeffs.dtype)
    # I - A^T, A the companion matrix: first row -a[1:], ones below the diagonal.
    identity = torch.eye(order, dtype=a.dtype, device=a.device)
    shifted = torch.diag(torch.ones(order - 1, dtype=a.dtype, device=a.device), 1)
    companion_t = shifted.expand(a.shape[:-1] + (order, order)).clone()
    companion_t[..., :, 0] = -a[..., 1:]
    rhs = b[..., 1:] - a[..., 1:] * b[..., :1]
    return torch.linalg.solve(identity - companion_t, rhs).to(a_coeffs.dtype)


def _odd_extension(waveform: Tensor, length: int) -> Tensor:
    """scipy's ``odd_ext``: ``2 x[0] - x[n:0:-1]`` before, ``2 x[-1] - x[-2:-n-2:-1]`` after."""
    first, last = waveform[..., :1], waveform[..., -1:]
    before = 2 * first - waveform[..., 1 : length + 1].flip(-1)
    after = 2 * last - waveform[..., -length - 1 : -1].flip(-1)
    return torch.cat([before, waveform, after], -1)


def filtfilt_bank(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, backend: str = "auto"
) -> Tensor:
    """Zero-phase filtering, forward then backward, like :func:`scipy.signal.filtfilt`.

    With scipy's defaults: the signal is extended by odd reflection of
    ``3 * max(Ka, Kb)`` samples at both ends, and each pass starts from the steady
    state (:func:`lfilter_zi_bank`) scaled by its first sample.

    Args:
        waveform: ``(..., T)`` with ``T > 3 * max(Ka, Kb)``.
        a_coeffs: ``(..., Ka)``.
        b_coeffs: ``(..., Kb)``.
        backend: as for :func:`multi_lfilter.lfilter_bank`.

    Returns:
        ``(*batch, T)``.

    Raises:
        ValueError: for a signal too short to extend, and everything
            :func:`multi_lfilter.lfilter_bank` raises.

    Example:
        >>> import torch
        >>> from multi_lfilter import filtfilt_bank
        >>> filtfilt_bank(torch.randn(2, 1, 100), torch.tensor([[1.0, -0.8]]), torch.tensor([[0.2, 0.0]])).shape
        torch.Size([2, 1, 100])
    """
    check_filter_inputs(waveform, a_coeffs, b_coeffs, None)
    pad = 3 * max(a_coeffs.shape[-1], b_coeffs.shape[-1])
    if waveform.shape[-1] <= pad:
        raise ValueError(
            f"expected a waveform longer than the padding of {pad} samples (3 * max(Ka, Kb)), "
            f"got {waveform.shape[-1]} samples"
        )
    steady = lfilter_zi_bank(a_coeffs=a_coeffs, b_coeffs=b_coeffs)
    extended = _odd_extension(waveform, pad)
    forward, _ = lfilter_bank_with_state(
        extended, a_coeffs, b_coeffs, steady * extended[..., :1], backend
    )
    reversed_forward = forward.flip(-1)
    backward, _ = lfilter_bank_with_state(
        reversed_forward, a_coeffs, b_coeffs, steady * reversed_forward[..., :1], backend
    )
    return backward.flip(-1)[..., pad : backward.shape[-1] - pad]


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
        TypeError: for a non-tensor, or an integer or complex ``sos``.
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
    _check_sections(sos)
    b, a = sos[..., :3], sos[..., 3:]
    zi = lfilter_zi_bank(a_coeffs=a, b_coeffs=b)
    dc_gain = b.sum(-1) / a.sum(-1)
    # The gain before each section: 1 for the first, then the running product.
    before = torch.cumprod(torch.cat([torch.ones_like(dc_gain[..., :1]), dc_gain[..., :-1]], -1), -1)
    return zi * before.unsqueeze(-1)


def _check_sections(sos: Tensor, allow_half: bool = False) -> None:
    """The dtype (float16/bfloat16 too where ``allow_half``: the caller widens them) and
    the ``(..., S, 6)`` shape of sections."""
    if sos.dtype != torch.float32 and sos.dtype != torch.float64 and not (allow_half and is_half(sos.dtype)):
        raise TypeError(f"expected sos to be float32 or float64, got {dtype_name(sos.dtype)}")
    if sos.dim() < 2 or sos.shape[-1] != 6 or sos.shape[-2] == 0:
        raise ValueError(f"expected sos of shape (..., S, 6) with S >= 1 sections, got {list(sos.shape)}")


def _default_sos_padding(sos: Tensor) -> int:
    """scipy's default ``padlen`` for :func:`scipy.signal.sosfiltfilt`:
    ``3 * (2 S + 1 - min(#(b2 == 0), #(a2 == 0)))``, the same for every cascade of the bank.

    Raises:
        ValueError: where the cascades of a bank would get different paddings, or where
            the values cannot be read (``torch.compile``, ``torch.export``, ``vmap``).
    """
    if not data_checks_allowed() or sos.device.type == "meta":
        raise ValueError(
            "expected padlen to be given: its default depends on the values of sos, which "
            "cannot be read here (torch.compile, torch.export, torch.func.vmap or meta tensors)"
        )
    n_sections = sos.shape[-2]
    zeros = torch.minimum((sos[..., 2] == 0).sum(-1), (sos[..., 5] == 0).sum(-1))
    lowest, highest = int(zeros.min()), int(zeros.max())
    if lowest != highest:
        raise ValueError(
            "expected cascades with the same number of first-order sections, whose default "
            f"padding (scipy's) is the same; got between {lowest} and {highest}: pass padlen"
        )
    return 3 * (2 * n_sections + 1 - lowest)


def sosfiltfilt_bank(
    waveform: Tensor, sos: Tensor, padlen: Optional[int] = None, backend: str = "auto"
) -> Tensor:
    """Zero-phase filtering through cascades, like :func:`scipy.signal.sosfiltfilt`.

    Forward then backward through the sections, with scipy's defaults: odd extension
    of ``padlen`` samples at both ends, and each pass starting from the steady state
    (:func:`sosfilt_zi_bank`) scaled by its first sample.

    Args:
        waveform: ``(..., T)`` with ``T > padlen``.
        sos: ``(..., S, 6)``; leading dims broadcast with the waveform's.
        padlen: samples of extension at each end; ``None`` is scipy's default,
            ``3 * (2 S + 1 - min(#(b2 == 0), #(a2 == 0)))`` (which reads the values, so
            graphs that cannot, like ``torch.compile``'s, must pass it).
        backend: as for :func:`multi_lfilter.lfilter_bank`.

    Returns:
        ``(*batch, T)``.

    Raises:
        ValueError: for a signal not longer than ``padlen``, a negative ``padlen``,
            cascades with different default paddings, and everything
            :func:`sosfilt_bank` raises.

    Example:
        >>> import torch
        >>> from multi_lfilter import sosfiltfilt_bank
        >>> from multi_lfilter.design import butter_sos
        >>> sos = butter_sos(4, torch.tensor([[0.1, 0.2], [0.3, 0.4]]), "bandpass")   # 2 cascades
        >>> sosfiltfilt_bank(torch.randn(3, 1, 500), sos).shape
        torch.Size([3, 2, 500])
    """
    _check_sos(waveform, sos, None)
    if waveform.dim() == 0:
        raise ValueError("expected waveform of shape (..., T), got a 0-dim tensor")
    pad = _default_sos_padding(sos) if padlen is None else padlen
    if pad < 0:
        raise ValueError(f"expected padlen >= 0, got {pad}")
    if waveform.shape[-1] <= pad:
        raise ValueError(
            f"expected a waveform longer than the padding of {pad} samples, got {waveform.shape[-1]} samples"
        )
    steady = sosfilt_zi_bank(sos)
    extended = _odd_extension(waveform, pad) if pad > 0 else waveform
    forward, _ = sosfilt_bank_with_state(extended, sos, steady * extended[..., :1].unsqueeze(-1), backend)
    reversed_forward = forward.flip(-1)
    backward, _ = sosfilt_bank_with_state(
        reversed_forward, sos, steady * reversed_forward[..., :1].unsqueeze(-1), backend
    )
    return backward.flip(-1)[..., pad : backward.shape[-1] - pad]
