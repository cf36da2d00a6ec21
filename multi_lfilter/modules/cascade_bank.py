"""``CascadeFilterBank``: what the banks of second-order-section cascades share."""
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ..cascades import sosfilt_bank_with_state
from ..design import frequency_responses
from ._common import bank_input, check_backend


class CascadeFilterBank(nn.Module):
    """A bank of ``C`` cascades of ``S`` second-order sections, applied to every input
    signal: the base of :class:`SOSFilterBank` (sections learnt directly) and
    :class:`ButterworthFilterBank` (sections designed from learnt frequencies).

    A subclass defines :meth:`sos`, the current ``(C, S, 6)`` sections; filtering,
    streaming and frequency responses come from here.

    Shape:
        - input: ``(..., T)``
        - output: ``(..., C, T)``; the state of :meth:`forward_with_state` is
          ``(..., C, S, 2)``.

    Example:
        >>> import torch
        >>> from multi_lfilter import CascadeFilterBank, SOSFilterBank
        >>> bank = SOSFilterBank(torch.tensor([[[0.2, 0.4, 0.2, 1.0, -0.6, 0.3]]]))
        >>> isinstance(bank, CascadeFilterBank), bank(torch.randn(2, 50)).shape
        (True, torch.Size([2, 1, 50]))
    """

    def __init__(self, learnable: bool, backend: str):
        super().__init__()
        check_backend(backend)
        self.learnable = learnable
        self.backend = backend

    def sos(self) -> Tensor:
        """The current sections, ``(C, S, 6)``."""
        raise NotImplementedError

    def forward(self, waveform: Tensor) -> Tensor:
        """Filter ``(..., T)`` from rest through every filter: ``(..., C, T)``."""
        y, _ = self.forward_with_state(waveform, None)
        return y

    @torch.jit.export
    def forward_with_state(self, waveform: Tensor, zi: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Filter ``(..., T)`` from state ``zi`` (``(..., C, S, 2)``, ``None`` is zeros);
        returns ``(y, zf)``, ``(..., C, T)`` and ``(..., C, S, 2)``."""
        sections = self.sos()
        return sosfilt_bank_with_state(bank_input(waveform, sections.dtype), sections, zi, self.backend)

    @torch.jit.export
    def frequency_response(self, n_freqs: int = 512, sample_rate: Optional[float] = None) -> Tuple[Tensor, Tensor]:
        """``(freqs, response)``: ``(F,)`` (in Hz where ``sample_rate`` is given, else
        radians per sample) and the complex ``(C, F)``, the product over sections."""
        sections = self.sos()
        freqs, responses = frequency_responses(sections[..., 3:], sections[..., :3], n_freqs, sample_rate)
        return freqs, responses.prod(-2)

