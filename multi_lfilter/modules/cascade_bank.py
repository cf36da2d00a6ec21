"""``CascadeFilterBank``: what the banks of second-order-section cascades share."""
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ..cascades import sosfilt_bank_with_state
from ..varying import sosfilt_varying_with_state
from ..design import frequency_responses
from ._common import bank_input, check_backend


class CascadeFilterBank(nn.Module):
    """A bank of ``C`` cascades of ``S`` second-order sections, applied to every input
    signal: the base of :class:`SOSFilterBank` (sections learnt directly) and
    :class:`ButterworthFilterBank` (sections designed from learnt frequencies).

    A subclass defines :meth:`sos`, the current ``(C, S, 6)`` sections; filtering,
    streaming and frequency responses come from here. A subclass that takes
    frame-rate values (sections, or the values it designs them from) in its
    ``forward`` turns them into ``(..., C, F, S, 6)`` sections and calls
    :meth:`filter_sections`.

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
        return self.filter_sections(waveform, zi, None, None)

    def filter_sections(
        self, waveform: Tensor, zi: Optional[Tensor], frame_sections: Optional[Tensor], hop_length: Optional[int]
    ) -> Tuple[Tensor, Tensor]:
        """Filter with the bank's own sections, or with checked frame-rate sections
        ``(..., C, F, S, 6)`` (frame ``f`` at sample ``f * hop_length``, interpolated
        linearly in between: :func:`multi_lfilter.sosfilt_varying`); ``(y, zf)``.

        The subclasses' ``forward_with_state`` check their frame-rate values and design
        ``frame_sections`` from them."""
        if frame_sections is None:
            sections = self.sos()
            return sosfilt_bank_with_state(bank_input(waveform, sections.dtype), sections, zi, self.backend)
        return sosfilt_varying_with_state(
            bank_input(waveform, frame_sections.dtype), frame_sections, zi, hop_length, self.backend
        )

    @torch.jit.export
    def frequency_response(self, n_freqs: int = 512, sample_rate: Optional[float] = None) -> Tuple[Tensor, Tensor]:
        """``(freqs, response)``: ``(F,)`` (in Hz where ``sample_rate`` is given, else
        radians per sample) and the complex ``(C, F)``, the product over sections."""
        sections = self.sos()
        freqs, responses = frequency_responses(sections[..., 3:], sections[..., :3], n_freqs, sample_rate)
        return freqs, responses.prod(-2)

