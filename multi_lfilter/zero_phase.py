"""Zero-phase filtering: ``filtfilt_bank`` and ``sosfiltfilt_bank``.

Forward then backward through the bank, each pass started from the steady state
(``steady_state``), on a signal extended at both ends, as scipy does.
"""
from typing import Optional

import torch
from torch import Tensor

from ._validation import check_filter_inputs, check_sos_inputs, data_checks_allowed
from .cascades import sosfilt_bank_with_state
from .functional import lfilter_bank_with_state
from .steady_state import lfilter_zi_bank, sosfilt_zi_bank


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
    check_sos_inputs(waveform, sos, None)
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
