"""A cascade as one filter call per section, through the filter's own door.

What TorchScript falls back to beyond the fused kernels, what ``torch.export`` and
``torch.func`` transforms record, and what double backward of a cascade differentiates
(``_cascade_op``). Its own module so that ``cascades`` and ``_cascade_op`` both use it
without importing each other.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .functional import lfilter_bank_with_state


def sections_one_by_one(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], backend: str
) -> Tuple[Tensor, Tensor]:
    """``S`` calls of :func:`lfilter_bank_with_state`: ``(..., S, 3)`` coefficients and
    ``(..., S, 2)`` states in, ``(y, zf)`` out, ``(*batch, T)`` and ``(*batch, S, 2)``."""
    states: List[Tensor] = []
    y = waveform
    for section in range(a_coeffs.shape[-2]):
        section_zi = zi[..., section, :] if zi is not None else None
        y, state = lfilter_bank_with_state(y, a_coeffs[..., section, :], b_coeffs[..., section, :], section_zi, backend)
        states.append(state)
    batch = list(y.shape[:-1])
    return y, torch.stack([state.expand(batch + [2]) for state in states], -2)
