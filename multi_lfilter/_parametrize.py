"""Maps from unconstrained parameters to the values of stable filters, and back.

A learnable filter is trained in an unconstrained space: whatever value an optimiser
gives a raw parameter, these maps return a value inside a range where the filter is
stable. Each ``*_inverse`` gives the raw parameter for a value strictly inside the range
(used once, to initialise).
"""
import math

import torch
from torch import Tensor


def bounded(raw: Tensor, low: float, high: float) -> Tensor:
    """``low + (high - low) * sigmoid(raw)``: any real to the interval ``[low, high]``."""
    return low + (high - low) * torch.sigmoid(raw)


def bounded_inverse(value: Tensor, low: float, high: float) -> Tensor:
    return torch.logit((value - low) / (high - low))


def log_bounded(raw: Tensor, low: float, high: float) -> Tensor:
    """:func:`bounded` on a log scale, for positive values spanning decades (``Q``)."""
    return torch.exp(bounded(raw, math.log(low), math.log(high)))


def log_bounded_inverse(value: Tensor, low: float, high: float) -> Tensor:
    return bounded_inverse(torch.log(value), math.log(low), math.log(high))


def stable_denominator(raw: Tensor, margin: float) -> Tensor:
    """``(..., 2)`` raw values to ``(..., 2)`` coefficients ``[a1, a2]`` (with ``a0 = 1``)
    of a stable second-order denominator.

    ``z^2 + a1 z + a2`` has both roots inside the unit circle exactly when
    ``|a2| < 1`` and ``|a1| < 1 + a2`` (the stability triangle). The map
    ``a2 = r tanh(raw2)``, ``a1 = r (1 + a2) tanh(raw1)`` with ``r = 1 - margin`` covers
    that triangle shrunk by ``margin``, so even a saturated ``tanh`` (which rounds to
    exactly 1) leaves the poles inside.
    """
    shrink = 1.0 - margin
    a2 = shrink * torch.tanh(raw[..., 1])
    a1 = shrink * (1 + a2) * torch.tanh(raw[..., 0])
    return torch.stack([a1, a2], -1)


def stable_denominator_inverse(denominator: Tensor, margin: float) -> Tensor:
    """The raw ``(..., 2)`` values for normalised ``[a1, a2]`` inside the shrunk triangle."""
    shrink = 1.0 - margin
    a1, a2 = denominator[..., 0], denominator[..., 1]
    return torch.stack([torch.atanh(a1 / (shrink * (1 + a2))), torch.atanh(a2 / shrink)], -1)


def inside_stable_triangle(denominator: Tensor, margin: float) -> Tensor:
    """Which normalised ``[a1, a2]`` (``(..., 2)``) :func:`stable_denominator` can reach."""
    shrink = 1.0 - margin
    a1, a2 = denominator[..., 0], denominator[..., 1]
    return (a2.abs() < shrink) & (a1.abs() < shrink * (1 + a2))
