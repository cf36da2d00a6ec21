"""Butterworth filters as second-order sections, in differentiable torch ops.

The digital filter is the bilinear transform of the analog Butterworth filter at
prewarped edges, as :func:`scipy.signal.butter` makes it, built section by section: the
analog transfer function is written as a product of real factors of degree two (one of
degree one for odd low- and high-pass orders), and each factor is transformed on its
own. The cascade is the same rational function as scipy's; the sections differ:

- pairing: each section holds one conjugate pair of poles with the zeros of its own
  analog factor (scipy pairs poles with the nearest zeros);
- gain: each section carries its factor's gain (scipy puts all of it in the first);
- order: sections come from the lowest quality factor to the highest, so the poles
  nearest the unit circle are last (as in scipy), and a first-order section first.

With ``K = 2 fs`` the bilinear transform ``s = K (1 - z^-1) / (1 + z^-1)`` maps
``(b2 s^2 + b1 s + b0) / (a2 s^2 + a1 s + a0)`` to ``[b2 K^2 + b1 K + b0,
2 (b0 - b2 K^2), b2 K^2 - b1 K + b0]`` over the same in ``a``. Frequencies are
prewarped, ``w = K tan(pi f / fs)``.
"""
import math
from typing import List, Tuple

import torch
from torch import Tensor

from ._validation import data_checks_allowed

# scipy's names for the four kinds, and ours.
BUTTERWORTH_KINDS = {
    "lowpass": "lowpass", "low": "lowpass", "lp": "lowpass",
    "highpass": "highpass", "high": "highpass", "hp": "highpass",
    "bandpass": "bandpass", "band": "bandpass", "bp": "bandpass",
    "bandstop": "bandstop", "stop": "bandstop", "bs": "bandstop",
}

# One analog factor: (numerator, denominator), each [c2, c1, c0] for c2 s^2 + c1 s + c0,
# and whether it is of degree one (c2 = 0 in both).
Factor = Tuple[List[Tensor], List[Tensor], bool]


def _prototype_poles(order: int) -> List[complex]:
    """The analog prototype's poles in the upper half plane (one per conjugate pair),
    from the lowest quality factor to the highest; ``-1`` first for odd orders."""
    upper = [complex(math.cos(t), math.sin(t)) for t in (math.pi * (2 * k + order + 1) / (2 * order) for k in range(order // 2))]
    return ([complex(-1.0, 0.0)] if order % 2 else []) + upper[::-1]


def _pair(root: Tensor) -> List[Tensor]:
    """``(s - r)(s - conj r)`` as ``[1, -2 Re r, |r|^2]``."""
    return [torch.ones_like(root.real), -2 * root.real, root.real.square() + root.imag.square()]


def _analog_factors(order: int, kind: str, edges: List[Tensor]) -> List[Factor]:
    """The analog filter as real factors of degree two (or one, with a zero ``s^2`` term)."""
    factors: List[Factor] = []
    zero = torch.zeros_like(edges[0])
    one = torch.ones_like(zero)
    for pole in _prototype_poles(order):
        real = pole.imag == 0.0
        if kind in ("lowpass", "highpass"):
            cutoff = edges[0]
            if real:  # w / (s + w), or s / (s + w)
                numerator = [zero, zero, cutoff] if kind == "lowpass" else [zero, one, zero]
                factors.append((numerator, [zero, one, cutoff], True))
            else:  # w^2 / (s^2 - 2 w Re(p) s + w^2), or s^2 / (...)
                numerator = [zero, zero, cutoff.square()] if kind == "lowpass" else [one, zero, zero]
                factors.append((numerator, [one, -2 * pole.real * cutoff, cutoff.square()], False))
            continue
        bandwidth = edges[1] - edges[0]
        centre_squared = edges[0] * edges[1]
        # Bandpass: s bw / (s^2 - p bw s + wo^2) per prototype pole; band-stop:
        # (s^2 + wo^2) / (s^2 - (bw / p) s + wo^2), the gains -1/p multiplying to 1.
        numerator = [zero, bandwidth, zero] if kind == "bandpass" else [one, zero, centre_squared]
        if real:
            factors.append((numerator, [one, bandwidth, centre_squared], False))
            continue
        linear = pole if kind == "bandpass" else pole.conjugate()  # p bw, or bw / p = bw conj(p)
        half = bandwidth.to(torch.complex128) * (linear / 2)
        root = torch.sqrt(half.square() - centre_squared.to(torch.complex128))
        for conjugate_pair_root in (half - root, half + root):
            factors.append((numerator, _pair(conjugate_pair_root), False))
    return factors


def _bilinear(factor: Factor, k: float) -> Tensor:
    """One analog factor to a digital section ``[b0, b1, b2, 1, a1, a2]``, ``(..., 6)``.

    A factor of degree one becomes a first-order section (``b2 = a2 = 0``): through the
    second-order formula it would gain a pole and a zero at ``z = -1``, on the unit
    circle, which a recurrence does not cancel.
    """
    numerator, denominator, first_order = factor
    digital = []
    for c2, c1, c0 in (numerator, denominator):
        if first_order:
            digital.append([c1 * k + c0, c0 - c1 * k, torch.zeros_like(c0)])
        else:
            digital.append([c2 * k * k + c1 * k + c0, 2 * (c0 - c2 * k * k), c2 * k * k - c1 * k + c0])
    (b0, b1, b2), (a0, a1, a2) = digital
    return torch.stack([b0, b1, b2, a0, a1, a2], -1) / a0.unsqueeze(-1)


def butter_sos(order: int, cutoff, btype: str = "lowpass", sample_rate: float = 2.0) -> Tensor:
    """A Butterworth filter as second-order sections, like ``scipy.signal.butter(...,
    output="sos")``, differentiable with respect to ``cutoff``.

    Every cutoff of a bank gives its own cascade (a bank of learnable band-passes
    is a tensor of band edges). The cascade's frequency response is scipy's (to about
    ``1e-12``); the sections themselves differ in pairing, gain and order, which the
    module ``multi_lfilter._butterworth`` documents: each section holds a conjugate
    pair of poles with its own gain, the poles nearest the unit circle last.

    Args:
        order: ``N >= 1``; bandpass and bandstop filters have ``2 N`` poles.
        cutoff: in the units of ``sample_rate``, strictly between 0 and Nyquist:
            ``(...)`` for ``"lowpass"`` and ``"highpass"``, ``(..., 2)`` band edges
            (low, high) for ``"bandpass"`` and ``"bandstop"``. A number or a tensor.
        btype: ``"lowpass"``, ``"highpass"``, ``"bandpass"`` or ``"bandstop"`` (scipy's
            ``"low"``, ``"high"``, ``"band"``, ``"stop"`` too).
        sample_rate: the default 2.0 makes ``cutoff`` a fraction of Nyquist, as
            scipy's ``Wn`` without ``fs``.

    Returns:
        ``(..., S, 6)`` sections ``[b0, b1, b2, 1, a1, a2]`` in ``cutoff``'s dtype
        (the default dtype for numbers; computed in float64), with ``S = ceil(N / 2)``
        for low- and high-pass filters and ``S = N`` for band filters. A first-order
        section (odd low- and high-pass orders) has ``b2 = a2 = 0``.

    Raises:
        ValueError: for an order below 1, an unknown ``btype``, a cutoff of the wrong
            shape, or cutoffs outside ``(0, Nyquist)`` or not increasing.
        TypeError: for an integer ``order`` that is not an int, or a complex cutoff.

    Example:
        >>> import torch
        >>> from multi_lfilter.design import butter_sos
        >>> edges = torch.tensor([[300.0, 600.0], [1000.0, 2000.0]], requires_grad=True)
        >>> sos = butter_sos(2, edges, "bandpass", sample_rate=16000)   # 2 band-passes
        >>> sos.shape
        torch.Size([2, 2, 6])
        >>> sos[..., 0].sum().backward()
        >>> edges.grad.shape
        torch.Size([2, 2])
    """
    if isinstance(order, bool) or not isinstance(order, int):
        raise TypeError(f"expected order to be an int, got {type(order).__name__}")
    if order < 1:
        raise ValueError(f"expected order >= 1, got {order}")
    if btype not in BUTTERWORTH_KINDS:
        raise ValueError(f"expected btype to be one of {sorted(set(BUTTERWORTH_KINDS.values()))}, got {btype!r}")
    if not sample_rate > 0:
        raise ValueError(f"expected sample_rate > 0, got {sample_rate}")
    kind = BUTTERWORTH_KINDS[btype]
    if (isinstance(cutoff, Tensor) and cutoff.is_complex()) or isinstance(cutoff, complex):
        raise TypeError("expected cutoff to be real, got a complex value")
    is_floating = isinstance(cutoff, Tensor) and cutoff.is_floating_point()
    dtype = cutoff.dtype if is_floating else torch.get_default_dtype()
    # Numbers go straight to float64 (not through the default dtype's rounding).
    cutoff = cutoff.to(torch.float64) if isinstance(cutoff, Tensor) else torch.as_tensor(cutoff, dtype=torch.float64)
    band = kind in ("bandpass", "bandstop")
    if band and (cutoff.dim() == 0 or cutoff.shape[-1] != 2):
        raise ValueError(f"expected cutoff of shape (..., 2) (low, high) for a {kind}, got {list(cutoff.shape)}")
    nyquist = sample_rate / 2
    if data_checks_allowed() and cutoff.device.type != "meta":
        if not bool(((cutoff > 0) & (cutoff < nyquist)).all()):
            raise ValueError(f"expected cutoffs strictly between 0 and Nyquist ({nyquist:g}), got {cutoff.tolist()}")
        if band and not bool((cutoff[..., 0] < cutoff[..., 1]).all()):
            raise ValueError(f"expected band edges (low, high) with low < high, got {cutoff.tolist()}")
    k = 4.0  # the bilinear transform at a sample rate of 2 (cutoffs as fractions of Nyquist)
    warped = k * torch.tan(cutoff * (math.pi / sample_rate))
    edges = [warped[..., 0], warped[..., 1]] if band else [warped]
    sections = [_bilinear(factor, k) for factor in _analog_factors(order, kind, edges)]
    return torch.stack(sections, -2).to(dtype)
