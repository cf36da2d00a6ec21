"""Differentiable filter design: cookbook biquads, centre-frequency spacings, responses.

Every function takes tensors (or numbers) that broadcast, and gradients flow to every
tensor parameter, so filter banks can be learnt through their centre frequencies, Qs
and gains. Shapes use ``C`` for filters and ``F`` for frequencies.
"""
import math
from typing import List, NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor

from ._butterworth import butter_sos
from ._precision import real_dtype
from ._validation import check_coefficients, data_checks_allowed

__all__ = [
    "BIQUAD_KINDS",
    "SCALES",
    "FilterCoefficients",
    "biquad_coeffs",
    "butter_sos",
    "center_frequencies",
    "cookbook_biquad",
    "freqz_bank",
    "frequency_responses",
]

Number = Union[float, Tensor]

def _biquad_kinds() -> List[str]:
    """The cookbook's kinds (a function: TorchScript cannot read module globals)."""
    return ["lowpass", "highpass", "bandpass", "bandpass_peak", "notch", "allpass", "peaking", "lowshelf", "highshelf"]


BIQUAD_KINDS = tuple(_biquad_kinds())
SCALES = ("linear", "log", "mel", "erb")


class FilterCoefficients(NamedTuple):
    """A numerator and denominator, read by name: ``coefficients.b``, ``coefficients.a``.

    Unpacking gives ``(b, a)``, scipy's order for returned pairs; pass them on by
    keyword (``a_coeffs=coefficients.a, b_coeffs=coefficients.b``).

    Example:
        >>> import torch
        >>> from multi_lfilter import lfilter_bank
        >>> from multi_lfilter.design import biquad_coeffs
        >>> lowpass = biquad_coeffs("lowpass", 16000, torch.tensor([500.0, 2000.0]))
        >>> lowpass.a.shape, lowpass.b.shape
        (torch.Size([2, 3]), torch.Size([2, 3]))
        >>> lfilter_bank(torch.randn(4, 1, 100), a_coeffs=lowpass.a, b_coeffs=lowpass.b).shape
        torch.Size([4, 2, 100])
    """

    b: Tensor
    a: Tensor


def _as_tensors(**named: Number):
    """Tensors of one floating dtype: the first floating tensor's, else the default
    dtype (integers are converted). Complex values are a ``TypeError`` naming them."""
    for name, value in named.items():
        if (isinstance(value, Tensor) and value.is_complex()) or isinstance(value, complex):
            raise TypeError(f"expected {name} to be real, got a complex value")
    floating = [v for v in named.values() if isinstance(v, Tensor) and v.is_floating_point()]
    dtype = floating[0].dtype if floating else torch.get_default_dtype()
    device = next((v.device for v in named.values() if isinstance(v, Tensor)), None)
    return [torch.as_tensor(v, dtype=dtype, device=device) for v in named.values()]


def biquad_coeffs(
    kind: str,
    sample_rate: float,
    center_freq: Number,
    q: Number = 0.7071,
    gain_db: Number = 0.0,
) -> FilterCoefficients:
    r"""Biquad coefficients from the Audio EQ Cookbook (R. Bristow-Johnson).

    With :math:`\omega_0 = 2\pi f_0 / f_s`, :math:`\alpha = \sin\omega_0 / (2Q)` and
    :math:`A = 10^{g/40}`, e.g. the low-pass is
    :math:`b = [(1 - \cos\omega_0)/2,\ 1 - \cos\omega_0,\ (1 - \cos\omega_0)/2]`,
    :math:`a = [1 + \alpha,\ -2\cos\omega_0,\ 1 - \alpha]`.

    Args:
        kind: one of ``"lowpass"``, ``"highpass"``, ``"bandpass"`` (constant skirt
            gain, peak gain ``Q``), ``"bandpass_peak"`` (0 dB peak), ``"notch"``,
            ``"allpass"``, ``"peaking"``, ``"lowshelf"``, ``"highshelf"``.
        sample_rate: in Hz.
        center_freq: ``(...)`` centre (or cut-off) frequency in Hz, in (0, Nyquist).
        q: ``(...)`` quality factor (for shelves, the cookbook's Q form).
        gain_db: ``(...)`` gain in dB for ``"peaking"`` and the shelves (ignored by
            the others).

    Returns:
        :class:`FilterCoefficients` ``(b, a)``, each ``(..., 3)``: the broadcast of the
        parameters' shapes, not normalised (``a[..., 0] != 1``;
        :func:`multi_lfilter.lfilter_bank` normalises).

    Raises:
        ValueError: for an unknown ``kind`` (listing the kinds), a ``sample_rate`` that
            is not positive, a ``center_freq`` outside (0, Nyquist) or a ``q`` that is
            not positive (each naming the offending values; the value checks are
            skipped inside ``torch.compile`` graphs).

    Example:
        >>> import torch
        >>> from multi_lfilter.design import biquad_coeffs
        >>> bank = biquad_coeffs("bandpass_peak", 16000, torch.tensor([250.0, 1000.0, 4000.0]), q=2.0)
        >>> bank.b.shape, bank.a.shape
        (torch.Size([3, 3]), torch.Size([3, 3]))
    """
    if not sample_rate > 0:
        raise ValueError(f"expected a positive sample_rate, got {sample_rate}")
    center_freq, q, gain_db = _as_tensors(center_freq=center_freq, q=q, gain_db=gain_db)
    if data_checks_allowed():
        nyquist = sample_rate / 2
        outside = (center_freq <= 0) | (center_freq >= nyquist) | center_freq.isnan()
        if bool(outside.any()):
            raise ValueError(
                f"expected center_freq in (0, {nyquist}) Hz (0 to Nyquist, both excluded), got "
                f"{center_freq[outside].tolist()}"
            )
        if bool((~(q > 0)).any()):
            raise ValueError(f"expected a positive q, got {q[~(q > 0)].tolist()}")
    return cookbook_biquad(kind, 2 * math.pi * center_freq / sample_rate, q, gain_db)  # checks kind


def cookbook_biquad(kind: str, omega: Tensor, q: Tensor, gain_db: Tensor) -> FilterCoefficients:
    """:func:`biquad_coeffs` on tensors, with the frequency in radians per sample.

    The TorchScript-compatible core that the Modules call. It checks the kind only:
    the values are the caller's (the Modules map theirs into stable ranges).

    Args:
        kind: as for :func:`biquad_coeffs`.
        omega: ``(...)`` centre frequency ``2 pi f / sample_rate``, in (0, pi).
        q: ``(...)`` quality factor.
        gain_db: ``(...)`` gain in dB (used by ``"peaking"`` and the shelves).

    Returns:
        :class:`FilterCoefficients` ``(b, a)``, each ``(..., 3)``.

    Raises:
        ValueError: for a ``kind`` not in :data:`BIQUAD_KINDS`.

    Example:
        >>> import math, torch
        >>> from multi_lfilter.design import cookbook_biquad
        >>> omega = torch.tensor([math.pi / 3, math.pi / 2])   # a sixth and a quarter of the sample rate
        >>> lowpass = cookbook_biquad("lowpass", omega, q=torch.tensor(0.5), gain_db=torch.tensor(0.0))
        >>> lowpass.b / lowpass.a[:, :1]
        tensor([[0.1340, 0.2679, 0.1340],
                [0.2500, 0.5000, 0.2500]])
    """
    kinds = _biquad_kinds()
    if kind not in kinds:
        raise ValueError("expected kind to be one of " + str(kinds) + ", got '" + kind + "'")
    cos, sin = torch.cos(omega), torch.sin(omega)
    alpha = sin / (2 * q)
    one = torch.ones_like(alpha)
    if kind == "lowpass":
        b = [(1 - cos) / 2, 1 - cos, (1 - cos) / 2]
        a = [1 + alpha, -2 * cos, 1 - alpha]
    elif kind == "highpass":
        b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
        a = [1 + alpha, -2 * cos, 1 - alpha]
    elif kind == "bandpass":
        b = [sin / 2, 0 * alpha, -sin / 2]
        a = [1 + alpha, -2 * cos, 1 - alpha]
    elif kind == "bandpass_peak":
        b = [alpha, 0 * alpha, -alpha]
        a = [1 + alpha, -2 * cos, 1 - alpha]
    elif kind == "notch":
        b = [one, -2 * cos, one]
        a = [1 + alpha, -2 * cos, 1 - alpha]
    elif kind == "allpass":
        b = [1 - alpha, -2 * cos, 1 + alpha]
        a = [1 + alpha, -2 * cos, 1 - alpha]
    else:  # peaking and the shelves
        amplitude = torch.pow(10.0, gain_db / 40)
        if kind == "peaking":
            b = [1 + alpha * amplitude, -2 * cos, 1 - alpha * amplitude]
            a = [1 + alpha / amplitude, -2 * cos, 1 - alpha / amplitude]
        else:
            root = 2 * torch.sqrt(amplitude) * alpha
            plus, minus = amplitude + 1, amplitude - 1
            # The high shelf is the low shelf with cos -> -cos and the odd taps negated.
            sign = 1 if kind == "lowshelf" else -1
            b = [
                amplitude * (plus - sign * minus * cos + root),
                sign * 2 * amplitude * (minus - sign * plus * cos),
                amplitude * (plus - sign * minus * cos - root),
            ]
            a = [
                plus + sign * minus * cos + root,
                -sign * 2 * (minus + sign * plus * cos),
                plus + sign * minus * cos - root,
            ]
    # Some taps are constant along some dims (e.g. a notch's b0): broadcast them all.
    zero = torch.zeros_like(b[0] + b[1] + b[2] + a[0] + a[1] + a[2])
    return FilterCoefficients(torch.stack([tap + zero for tap in b], -1), torch.stack([tap + zero for tap in a], -1))


def center_frequencies(
    n_filters: int, f_min: float, f_max: float, scale: str = "mel", dtype: torch.dtype = None
) -> Tensor:
    """``n_filters`` frequencies from ``f_min`` to ``f_max`` (both included), evenly spaced
    on a perceptual or plain scale.

    Args:
        n_filters: how many (one gives ``[f_min]``, zero an empty tensor).
        f_min, f_max: in Hz, ``0 <= f_min < f_max``.
        scale: ``"linear"``, ``"log"`` (geometric; ``f_min > 0``), ``"mel"`` (HTK:
            ``2595 log10(1 + f / 700)``) or ``"erb"`` (Glasberg & Moore ERB-rate:
            ``21.4 log10(1 + 0.00437 f)``).
        dtype: of the result (default dtype if ``None``).

    Returns:
        ``(n_filters,)``, increasing.

    Raises:
        ValueError: for an unknown scale, an invalid range or a negative ``n_filters``.

    Example:
        >>> from multi_lfilter.design import center_frequencies
        >>> center_frequencies(3, 100.0, 400.0, scale="log")
        tensor([100., 200., 400.])
    """
    if scale not in SCALES:
        raise ValueError(f"expected scale to be one of {list(SCALES)}, got {scale!r}")
    if n_filters < 0:
        raise ValueError(f"expected n_filters >= 0, got {n_filters}")
    if not 0 <= f_min < f_max or (scale == "log" and f_min <= 0):
        raise ValueError(
            f"expected 0 {'<' if scale == 'log' else '<='} f_min < f_max for scale {scale!r}, "
            f"got f_min={f_min}, f_max={f_max}"
        )
    dtype = dtype or torch.get_default_dtype()
    forward, inverse = {
        "linear": (lambda f: f, lambda u: u),
        "log": (math.log, torch.exp),
        "mel": (lambda f: 2595 * math.log10(1 + f / 700), lambda m: 700 * (10 ** (m / 2595) - 1)),
        "erb": (
            lambda f: 21.4 * math.log10(1 + 0.00437 * f),
            lambda e: (10 ** (e / 21.4) - 1) / 0.00437,
        ),
    }[scale]
    positions = torch.linspace(forward(f_min), forward(f_max), n_filters, dtype=torch.float64)
    frequencies = inverse(positions)
    if n_filters == 0:
        return frequencies.to(dtype)
    # Pin the ends exactly: the round trip through the scale is only close.
    frequencies[0] = f_min
    if n_filters > 1:
        frequencies[-1] = f_max
    return frequencies.to(dtype)


def freqz_bank(
    *, a_coeffs: Tensor, b_coeffs: Tensor, n_freqs: int = 512, sample_rate: Optional[float] = None
) -> Tuple[Tensor, Tensor]:
    r"""Frequency responses of a bank of filters, like :func:`scipy.signal.freqz` per filter.

    .. math::

        H(e^{j\omega}) = \frac{\sum_k b_k e^{-j\omega k}}{\sum_k a_k e^{-j\omega k}},
        \qquad \omega = \pi n / F,\ n = 0, \dots, F - 1.

    The coefficients are keyword-only (see "Argument order" in the guide): scipy's
    ``freqz(b, a)`` and this library's ``(a, b)`` order are easy to swap.

    Args:
        a_coeffs: ``(..., Ka)`` denominators, real or complex (one precision with ``b``).
        b_coeffs: ``(..., Kb)`` numerators; leading dims broadcast with ``a``'s.
        n_freqs: ``F >= 0``, frequencies from 0 up to (not including) Nyquist
            (scipy's ``worN=F``).
        sample_rate: where given, ``freqs`` are in Hz; else in radians per sample.

    Returns:
        ``(freqs, response)``: ``(F,)`` real and the complex ``(..., F)``.

    Example:
        >>> import torch
        >>> from multi_lfilter import freqz_bank
        >>> freqs, response = freqz_bank(a_coeffs=torch.tensor([1.0, 0.0]), b_coeffs=torch.tensor([0.5, 0.5]), n_freqs=4)
        >>> response.abs()
        tensor([1.0000, 0.9239, 0.7071, 0.3827])
    """
    check_coefficients(a_coeffs, b_coeffs)
    if n_freqs < 0:
        raise ValueError(f"expected n_freqs >= 0, got {n_freqs}")
    return frequency_responses(a_coeffs, b_coeffs, n_freqs, sample_rate)


def frequency_responses(
    a_coeffs: Tensor, b_coeffs: Tensor, n_freqs: int, sample_rate: Optional[float]
) -> Tuple[Tensor, Tensor]:
    """:func:`freqz_bank` without its checks, positional and TorchScript-compatible
    (TorchScript takes no keyword-only arguments with defaults): the core the Modules
    call. Shapes as for :func:`freqz_bank`.

    Example:
        >>> import torch
        >>> from multi_lfilter.design import frequency_responses
        >>> freqs, response = frequency_responses(torch.tensor([1.0, -0.5]), torch.tensor([0.5, 0.0]), 3, None)
        >>> response.abs()
        tensor([1.0000, 0.5774, 0.3780])
    """
    real = real_dtype(torch.promote_types(b_coeffs.dtype, a_coeffs.dtype))
    # Evaluated in double precision and rounded once, as the filters are: near a pole
    # close to the unit circle the sums cancel (in float32, up to 1e-5 of the peak).
    omega = torch.arange(n_freqs, dtype=torch.float64, device=b_coeffs.device) * (math.pi / max(n_freqs, 1))
    response = _on_unit_circle(b_coeffs, omega) / _on_unit_circle(a_coeffs, omega)
    freqs = omega if sample_rate is None else omega * (sample_rate / (2 * math.pi))
    if real == torch.float32:
        return freqs.float(), response.to(torch.complex64)
    return freqs, response


def _on_unit_circle(coeffs: Tensor, omega: Tensor) -> Tensor:
    """``sum_k coeffs[..., k] exp(-j omega k)``: ``(..., K)`` at ``(F,)`` -> ``(..., F)``."""
    taps = torch.arange(coeffs.shape[-1], dtype=omega.dtype, device=omega.device)
    phase = -omega.unsqueeze(-1) * taps  # (F, K)
    kernel = torch.polar(torch.ones_like(phase), phase)
    return (coeffs.to(kernel.dtype).unsqueeze(-2) * kernel).sum(-1)
