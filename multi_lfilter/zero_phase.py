"""Zero-phase filtering: ``filtfilt_bank`` and ``sosfiltfilt_bank``.

Forward then backward through the bank, with scipy's edge handling: either the signal
is extended at both ends (``method="pad"``: odd, even or constant extension) and each
pass starts from the steady state (``steady_state``), or, for direct forms,
Gustafsson's initial conditions are solved for (``method="gust"``). ``T`` time, ``K``
coefficients, ``N = K - 1`` order, ``S`` sections.

TorchScript refuses keyword-only parameters with defaults, so each public function has
a positional twin (``_filtfilt``, ``_sosfiltfilt``) that ``torch.jit.script`` compiles
in its place (through ``__prepare_scriptable__``, which it reads on functions too).
"""
import numbers
from typing import List, Optional

import torch
from torch import Tensor

from ._precision import real_dtype
from ._validation import check_filter_inputs, check_sos_inputs, data_checks_allowed
from .cascades import sosfilt_bank_with_state
from .functional import lfilter_bank, lfilter_bank_with_state
from .steady_state import lfilter_zi_bank, sosfilt_zi_bank


def _check_option_types(padtype, padlen, method, irlen) -> None:
    """Eager-only: ``TypeError`` for options of the wrong type (TorchScript's annotations
    enforce them; callers guard with ``torch.jit.is_scripting()``)."""
    if padtype is not None and not isinstance(padtype, str):
        raise TypeError(f"expected padtype to be a str or None, got {type(padtype).__name__}")
    if not isinstance(method, str):
        raise TypeError(f"expected method to be a str, got {type(method).__name__}")
    for name, value in (("padlen", padlen), ("irlen", irlen)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            raise TypeError(f"expected {name} to be an int or None, got {type(value).__name__}")


def _check_padtype(padtype: Optional[str]) -> None:
    if padtype is not None and padtype != "odd" and padtype != "even" and padtype != "constant":
        raise ValueError(f"expected padtype to be 'odd', 'even', 'constant' or None, got '{padtype}'")


def _padding(padtype: Optional[str], padlen: Optional[int], default: int, length: int, default_rule: str) -> int:
    """scipy's ``_validate_pad`` for a checked ``padtype``: the samples of extension at
    each end, ``0`` for ``padtype=None`` (which ignores ``padlen``), and the errors for a
    bad ``padlen``."""
    if padtype is None:
        return 0
    if padlen is not None and padlen < 0:
        raise ValueError(f"expected padlen >= 0, got {padlen}")
    pad = default if padlen is None else padlen
    if length <= pad:
        rule = f", by default {default_rule}" if padlen is None else ""
        raise ValueError(
            f"expected a waveform longer than the padding of {pad} samples (padlen{rule}), got {length} samples"
        )
    return pad


def _extend(waveform: Tensor, pad: int, padtype: Optional[str]) -> Tensor:
    """scipy's ``odd_ext`` (``2 x[0] - x[pad:0:-1]`` before), ``even_ext`` (``x[pad:0:-1]``)
    or ``const_ext`` (``x[0]`` repeated), mirrored after; ``pad < T`` samples at each end."""
    if padtype is None or pad == 0:
        return waveform
    first, last = waveform[..., :1], waveform[..., -1:]
    if padtype == "constant":
        size = list(waveform.shape[:-1]) + [pad]
        return torch.cat([first.expand(size), waveform, last.expand(size)], -1)
    before = waveform[..., 1 : pad + 1].flip(-1)
    after = waveform[..., -pad - 1 : -1].flip(-1)
    if padtype == "odd":
        before = 2 * first - before
        after = 2 * last - after
    return torch.cat([before, waveform, after], -1)


def _observability(a_coeffs: Tensor, b_coeffs: Tensor, length: int, like: Tensor, backend: str) -> Tensor:
    """``O (..., length, N)``: column ``k`` is the output, for a zero input, of the state
    ``e_k``, which is the response to ``e_0`` delayed by ``k`` samples (scipy's ``Obs``)."""
    order = max(a_coeffs.shape[-1], b_coeffs.shape[-1]) - 1
    unit = torch.eye(order, dtype=like.dtype, device=like.device)[0]
    response, _ = lfilter_bank_with_state(like.new_zeros(length), a_coeffs, b_coeffs, unit, backend)
    columns: List[Tensor] = []
    for delay in range(order):
        columns.append(torch.nn.functional.pad(response, [delay, 0])[..., :length])
    return torch.stack(columns, -1)


def _block_diagonal(top: Tensor, bottom: Tensor) -> Tensor:
    """``[[top, 0], [0, bottom]]`` over the last two dims."""
    top_zeros, bottom_zeros = torch.zeros_like(top), torch.zeros_like(bottom)
    return torch.cat([torch.cat([top, bottom_zeros], -1), torch.cat([top_zeros, bottom], -1)], -2)


def _gustafsson(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, irlen: Optional[int], backend: str) -> Tensor:
    """scipy's ``_filtfilt_gust``, batched over the bank: the forward and backward
    initial states that make forward-backward equal backward-forward filtering, in the
    least-squares sense (Gustafsson 1996, eqs. 5-7).

    The matrices depend on the filters only, so each is built once per filter and
    applied to every signal through it; the least-squares solve uses the
    pseudo-inverse with scipy's cut-off (``eps`` times the largest singular value),
    which gives scipy's minimum-norm answer where the system is short or
    rank-deficient (a pole cancelled by a zero makes ``M`` singular).
    """
    # Forward-backward and backward-forward at once: two passes, each followed by a
    # time reversal, turn [x, rev(x)] into [forward-backward, rev(backward-forward)]
    # (each a filter call fewer in the scripted graph, which TorchScript optimises
    # slowly). The two are stacked on a dim ahead of every input's leading dims.
    leading = max(a_coeffs.dim(), b_coeffs.dim(), waveform.dim()) - 1
    aligned = waveform.reshape([1] * (leading - waveform.dim() + 1) + list(waveform.shape))
    passes = torch.stack([aligned, aligned.flip(-1)])
    for _ in range(2):
        passes = lfilter_bank(passes, a_coeffs, b_coeffs, None, backend).flip(-1)
    forward_backward, backward_forward = passes[0], passes[1].flip(-1)
    order = max(a_coeffs.shape[-1], b_coeffs.shape[-1]) - 1
    if order == 0:  # a gain, (b0 / a0) ** 2: no state to solve for
        return forward_backward
    length = waveform.shape[-1]
    # Only the first and last ``irlen`` samples feel the initial states, unless those
    # overlap.
    rows = length if irlen is None or length <= 2 * irlen else irlen
    observability = _observability(a_coeffs, b_coeffs, rows, waveform, backend)
    observability_reversed = observability.flip(-2)
    # S: the filter applied to the (reversed) free response of each state.
    filtered = lfilter_bank(
        observability_reversed.transpose(-1, -2), a_coeffs.unsqueeze(-2), b_coeffs.unsqueeze(-2), None, backend
    ).transpose(-1, -2)
    filtered_reversed = filtered.flip(-2)
    if rows == length:
        system = torch.cat([filtered_reversed - observability, observability_reversed - filtered], -1)
        correction = torch.cat([filtered_reversed, observability_reversed], -1)
    else:  # section IV of the paper: the two ends apart
        system = _block_diagonal(filtered_reversed - observability, observability_reversed - filtered)
        correction = _block_diagonal(filtered_reversed, observability_reversed)

    difference = backward_forward - forward_backward
    if rows != length:
        difference = torch.cat([difference[..., :rows], difference[..., length - rows :]], -1)

    double = real_dtype(difference.dtype) == torch.float64
    eps = 2.220446049250313e-16 if double else 1.1920928955078125e-07
    initial_states = torch.einsum("...kt,...t->...k", [torch.linalg.pinv(system, rtol=eps), difference])
    adjustment = torch.einsum("...tk,...k->...t", [correction, initial_states])
    if rows == length:
        return forward_backward + adjustment
    # The first ``rows`` adjust the start, the last ``rows`` the end.
    pad = torch.nn.functional.pad
    return forward_backward + pad(adjustment[..., :rows], [0, length - rows]) + pad(adjustment[..., rows:], [length - rows, 0])


def filtfilt_bank(
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    backend: str = "auto",
    *,
    padtype: Optional[str] = "odd",
    padlen: Optional[int] = None,
    method: str = "pad",
    irlen: Optional[int] = None,
) -> Tensor:
    """Zero-phase filtering, forward then backward, like :func:`scipy.signal.filtfilt`.

    The result has zero phase and the filter's magnitude response squared. The edges
    are handled as in scipy:

    - ``method="pad"`` (the default): the signal is extended by ``padlen`` samples at
      both ends (``padtype``: ``"odd"``, ``2 x[0] - x[padlen:0:-1]`` before it;
      ``"even"``, ``x[padlen:0:-1]``; ``"constant"``, ``x[0]`` repeated; mirrored after
      it; ``None``, no extension), and each pass starts from the steady state
      (:func:`lfilter_zi_bank`) scaled by its first sample.
    - ``method="gust"``: Gustafsson's method [Gustafsson 1996]: the initial states of
      both passes are those that make forward-backward filtering equal backward-forward
      filtering (least squares); ``padtype`` and ``padlen`` are ignored.

    Supports: CPU and CUDA, autograd (double backward too) with respect to the
    waveform and both coefficient tensors, TorchScript, ``torch.compile(fullgraph=True)``
    and ``torch.export`` (the default ``padlen`` reads only shapes); complex waveforms
    and coefficients with :func:`multi_lfilter.lfilter_bank`'s dtype rules (not under
    ``torch.export``). For complex coefficients ``method="gust"`` solves Gustafsson's
    system in complex arithmetic, where scipy (1.17) drops the imaginary part of its
    observability matrix (with a ``ComplexWarning``) and so differs.

    Args:
        waveform: ``(..., T)`` with ``T > padlen`` for ``method="pad"``.
        a_coeffs: ``(..., Ka)``.
        b_coeffs: ``(..., Kb)``.
        backend: as for :func:`multi_lfilter.lfilter_bank`.
        padtype: ``"odd"`` (default), ``"even"``, ``"constant"`` or ``None``.
        padlen: samples of extension at each end, ``0`` for none; ``None`` is
            ``3 * max(Ka, Kb)``.
        method: ``"pad"`` (default) or ``"gust"``.
        irlen: for ``"gust"``, the length of the impulse response that counts: the
            initial states are fitted on the first and last ``irlen`` samples (on all of
            them where ``T <= 2 irlen``); ``None`` uses the whole signal.

    Returns:
        ``(*batch, T)``, ``batch`` the broadcast of the inputs' leading dims.

    Raises:
        TypeError: for options of the wrong type, and everything
            :func:`multi_lfilter.lfilter_bank` raises.
        ValueError: for a ``padtype`` or ``method`` scipy does not know, a negative
            ``padlen``, a signal not longer than ``padlen``, an ``irlen`` below 1, and
            everything :func:`multi_lfilter.lfilter_bank` raises.

    Example:
        >>> import torch
        >>> from multi_lfilter import filtfilt_bank
        >>> a = torch.tensor([[1.0, -0.8], [1.0, -0.3]])   # (C, K)
        >>> b = torch.tensor([[0.2, 0.0], [0.7, 0.0]])
        >>> x = torch.randn(2, 1, 100)
        >>> filtfilt_bank(x, a_coeffs=a, b_coeffs=b).shape
        torch.Size([2, 2, 100])
        >>> filtfilt_bank(x, a_coeffs=a, b_coeffs=b, padtype="even", padlen=20).shape
        torch.Size([2, 2, 100])
        >>> filtfilt_bank(x, a_coeffs=a, b_coeffs=b, method="gust", irlen=40).shape
        torch.Size([2, 2, 100])
    """
    return _filtfilt(waveform, a_coeffs, b_coeffs, backend, padtype, padlen, method, irlen)


def _filtfilt(
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    backend: str = "auto",
    padtype: Optional[str] = "odd",
    padlen: Optional[int] = None,
    method: str = "pad",
    irlen: Optional[int] = None,
) -> Tensor:
    """:func:`filtfilt_bank` with positional options, which TorchScript can compile."""
    check_filter_inputs(waveform, a_coeffs, b_coeffs, None)
    if not torch.jit.is_scripting():
        _check_option_types(padtype, padlen, method, irlen)
    if method == "gust":
        if irlen is not None and irlen < 1:
            raise ValueError(f"expected irlen >= 1 or None, got {irlen}")
        return _gustafsson(waveform, a_coeffs, b_coeffs, irlen, backend)
    if method != "pad":
        raise ValueError(f"expected method to be 'pad' or 'gust', got '{method}'")
    _check_padtype(padtype)
    taps = max(a_coeffs.shape[-1], b_coeffs.shape[-1])
    pad = _padding(padtype, padlen, 3 * taps, waveform.shape[-1], "3 * max(Ka, Kb)")
    steady = lfilter_zi_bank(a_coeffs=a_coeffs, b_coeffs=b_coeffs)
    extended = _extend(waveform, pad, padtype)
    forward, _ = lfilter_bank_with_state(extended, a_coeffs, b_coeffs, steady * extended[..., :1], backend)
    reversed_forward = forward.flip(-1)
    backward, _ = lfilter_bank_with_state(
        reversed_forward, a_coeffs, b_coeffs, steady * reversed_forward[..., :1], backend
    )
    return backward.flip(-1)[..., pad : backward.shape[-1] - pad]


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
    waveform: Tensor,
    sos: Tensor,
    padlen: Optional[int] = None,
    backend: str = "auto",
    *,
    padtype: Optional[str] = "odd",
) -> Tensor:
    """Zero-phase filtering through cascades, like :func:`scipy.signal.sosfiltfilt`.

    Forward then backward through the sections, on the signal extended by ``padlen``
    samples at both ends as :func:`filtfilt_bank`'s ``method="pad"`` does (``padtype``
    ``"odd"``, ``"even"``, ``"constant"`` or ``None``), each pass starting from the
    steady state (:func:`sosfilt_zi_bank`) scaled by its first sample. scipy's
    ``sosfiltfilt`` has no Gustafsson method, and neither has this.

    Supports: CPU and CUDA, autograd (double backward too) with respect to the waveform
    and ``sos``, TorchScript; ``torch.compile(fullgraph=True)`` and ``torch.export``
    where ``padlen`` is given (or ``padtype=None``); complex waveforms and sections with
    :func:`multi_lfilter.lfilter_bank`'s dtype rules (not under ``torch.export``).

    Args:
        waveform: ``(..., T)`` with ``T > padlen``.
        sos: ``(..., S, 6)``; leading dims broadcast with the waveform's.
        padlen: samples of extension at each end, ``0`` for none; ``None`` is scipy's
            default, ``3 * (2 S + 1 - min(#(b2 == 0), #(a2 == 0)))`` (which reads the
            values, so graphs that cannot, like ``torch.compile``'s, must pass it).
        backend: as for :func:`multi_lfilter.lfilter_bank`.
        padtype: ``"odd"`` (default), ``"even"``, ``"constant"`` or ``None`` (no
            extension, ``padlen`` ignored), as for :func:`filtfilt_bank`.

    Returns:
        ``(*batch, T)``.

    Raises:
        TypeError: for options of the wrong type, and everything :func:`sosfilt_bank`
            raises.
        ValueError: for an unknown ``padtype``, a signal not longer than ``padlen``, a
            negative ``padlen``, cascades with different default paddings, and
            everything :func:`sosfilt_bank` raises.

    Example:
        >>> import torch
        >>> from multi_lfilter import sosfiltfilt_bank
        >>> from multi_lfilter.design import butter_sos
        >>> sos = butter_sos(4, torch.tensor([[0.1, 0.2], [0.3, 0.4]]), "bandpass")   # 2 cascades
        >>> sosfiltfilt_bank(torch.randn(3, 1, 500), sos).shape
        torch.Size([3, 2, 500])
        >>> sosfiltfilt_bank(torch.randn(3, 1, 500), sos, padlen=50, padtype="constant").shape
        torch.Size([3, 2, 500])
    """
    return _sosfiltfilt(waveform, sos, padlen, backend, padtype)


def _sosfiltfilt(
    waveform: Tensor, sos: Tensor, padlen: Optional[int] = None, backend: str = "auto", padtype: Optional[str] = "odd"
) -> Tensor:
    """:func:`sosfiltfilt_bank` with positional options, which TorchScript can compile."""
    check_sos_inputs(waveform, sos, None)
    if not torch.jit.is_scripting():
        _check_option_types(padtype, padlen, "pad", None)
    if waveform.dim() == 0:
        raise ValueError("expected waveform of shape (..., T), got a 0-dim tensor")
    _check_padtype(padtype)
    # The default reads the sections: only where it is used.
    default = _default_sos_padding(sos) if padtype is not None and padlen is None else 0
    default_rule = "3 * (2 S + 1 - min(#(b2 == 0), #(a2 == 0)))"
    pad = _padding(padtype, padlen, default, waveform.shape[-1], default_rule)
    steady = sosfilt_zi_bank(sos)
    extended = _extend(waveform, pad, padtype)
    forward, _ = sosfilt_bank_with_state(extended, sos, steady * extended[..., :1].unsqueeze(-1), backend)
    reversed_forward = forward.flip(-1)
    backward, _ = sosfilt_bank_with_state(
        reversed_forward, sos, steady * reversed_forward[..., :1].unsqueeze(-1), backend
    )
    return backward.flip(-1)[..., pad : backward.shape[-1] - pad]


# TorchScript compiles the positional twins (see the module's docstring).
filtfilt_bank.__prepare_scriptable__ = lambda: _filtfilt
sosfiltfilt_bank.__prepare_scriptable__ = lambda: _sosfiltfilt
