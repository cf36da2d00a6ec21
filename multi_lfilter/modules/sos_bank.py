"""``SOSFilterBank``: cascades of second-order sections, kept stable while learnt."""
from typing import Optional, Tuple

import torch
from torch import Tensor

from .._parametrize import inside_stable_triangle, stable_denominator, stable_denominator_inverse
from .._precision import wide_parameter
from .._validation import value_checks_allowed
from ._common import bank_input, check_float_tensor, check_frames, check_no_hop, frame_rate_value, register
from .butterworth_bank import ButterworthFilterBank
from .cascade_bank import CascadeFilterBank


class SOSFilterBank(CascadeFilterBank):
    r"""A bank of ``C`` cascades of ``S`` second-order sections, kept stable while learnt.

    Each section's numerator is stored as given (divided by ``a0``); its denominator
    ``[1, a1, a2]`` is stored as two unconstrained values mapped into the stability
    triangle ``|a2| < 1``, ``|a1| < 1 + a2`` shrunk by ``STABILITY_MARGIN`` (so every
    pole stays inside the unit circle whatever the optimiser does). Read the current
    sections with :meth:`sos`.

    Network-controlled: :meth:`forward` and :meth:`forward_with_state` also take
    frame-rate sections ``(..., C, F, S, 6)`` with a ``hop_length`` and filter with
    :func:`multi_lfilter.sosfilt_varying`; :meth:`sections_from_raw` maps any network
    output onto stable sections through the bank's own map. Runs in eager, under
    ``torch.compile`` and TorchScript.

    Args:
        sos: ``(C, S, 6)`` sections ``[b0, b1, b2, a0, a1, a2]`` as
            :func:`scipy.signal.butter` (``output="sos"``) makes them, stacked over
            filters; every section must be stable within the margin.
        learnable: whether the sections are parameters (else buffers).
        backend: passed to :func:`multi_lfilter.sosfilt_bank`.

    Shape:
        - input: ``(..., T)``
        - output: ``(..., C, T)``; the state of :meth:`forward_with_state` is
          ``(..., C, S, 2)``.
        - frame-rate sections: ``(..., C, F, S, 6)`` (``C`` or ``F`` may be 1), with
          ``F >= ceil(T / hop_length)``.

    Raises:
        ValueError: for a wrong shape, a zero ``a0`` or a section outside the stable
            range (naming the filter and section).

    Example:
        >>> import torch
        >>> from multi_lfilter import SOSFilterBank
        >>> sos = torch.tensor([[[0.2, 0.4, 0.2, 1.0, -0.6, 0.3], [1.0, -1.0, 0.0, 1.0, -0.9, 0.0]]])
        >>> bank = SOSFilterBank(sos.repeat(3, 1, 1))
        >>> bank
        SOSFilterBank(n_filters=3, n_sections=2, learnable=True)
        >>> bank(torch.randn(4, 1000)).shape
        torch.Size([4, 3, 1000])
        >>> torch.allclose(bank.sos(), sos.repeat(3, 1, 1))
        True
    """

    STABILITY_MARGIN = 1e-5

    def __init__(self, sos: Tensor, learnable: bool = True, backend: str = "auto"):
        super().__init__(learnable, backend)
        check_float_tensor("sos", sos, 3, "(C, S, 6)")
        if sos.shape[-1] != 6 or sos.shape[0] == 0 or sos.shape[1] == 0:
            raise ValueError(f"expected sos of shape (C, S, 6) with C, S >= 1, got {list(sos.shape)}")
        sections = sos.detach().to(torch.float64)
        leading = sections[..., 3:4]
        if bool((leading == 0).any()):
            raise ValueError("expected a0 != 0 in every section, got a0 = 0")
        numerators = sections[..., :3] / leading
        denominators = sections[..., 4:] / leading
        outside = ~inside_stable_triangle(denominators, self.STABILITY_MARGIN)
        if bool(outside.any()):
            filter_index, section_index = [int(i) for i in outside.nonzero()[0]]
            raise ValueError(
                f"expected every section's poles inside the unit circle (|a2/a0| < 1 - "
                f"{self.STABILITY_MARGIN:g} and |a1/a0| < (1 - {self.STABILITY_MARGIN:g}) (1 + a2/a0)), "
                f"got filter {filter_index} section {section_index} with a = "
                f"{sections[filter_index, section_index, 3:].tolist()}"
            )
        raw_denominators = stable_denominator_inverse(denominators, self.STABILITY_MARGIN)
        register(self, "numerators", numerators.to(sos.dtype), learnable)
        register(self, "raw_denominators", raw_denominators.to(sos.dtype), learnable)
        self.stability_margin = self.STABILITY_MARGIN

    @property
    def n_filters(self) -> int:
        return self.numerators.shape[0]

    @property
    def n_sections(self) -> int:
        return self.numerators.shape[1]

    @torch.jit.export
    def sos(self) -> Tensor:
        """The current sections, ``(C, S, 6)`` with ``a0 = 1``."""
        return self.sections_from_raw(wide_parameter(self.numerators), wide_parameter(self.raw_denominators))

    @torch.jit.export
    def sections_from_raw(self, numerators: Tensor, raw_denominators: Tensor) -> Tensor:
        """Sections ``(..., S, 6)`` (``a0 = 1``) from numerators ``(..., S, 3)`` and
        unconstrained ``(..., S, 2)`` values, by the map the bank's own parameters go
        through: stable whatever the values. A network that outputs frame-rate
        sections ``(..., C, F, S, 6)`` for :meth:`forward` this way cannot make an
        unstable filter.

        Example:
            >>> import torch
            >>> from multi_lfilter import SOSFilterBank
            >>> bank = SOSFilterBank(torch.tensor([[[0.2, 0.4, 0.2, 1.0, -0.6, 0.3]]]))
            >>> raw = 100 * torch.randn(2, 1, 10, 1, 2)               # (B, C, F, S, 2), any values
            >>> sections = bank.sections_from_raw(torch.randn(2, 1, 10, 1, 3), raw)
            >>> bool((sections[..., 5].abs() < 1).all())             # |a2| < 1: inside the triangle
            True
        """
        denominators = stable_denominator(raw_denominators, self.stability_margin)
        zero = torch.zeros_like(numerators[..., :1] + denominators[..., :1])  # the broadcast leading dims
        return torch.cat([numerators + zero, zero + 1, denominators + zero], -1)

    def forward(self, waveform: Tensor, sos: Optional[Tensor] = None, hop_length: Optional[int] = None) -> Tensor:
        """Filter ``(..., T)`` from rest through every filter: ``(..., C, T)``.

        Without ``sos`` the sections are the bank's own (time-invariant). With frame-rate
        sections ``sos (..., C, F, S, 6)`` (``C`` or ``F`` may be 1; ``S`` the bank's)
        frame ``f`` applies at sample ``f * hop_length`` and the samples in between
        interpolate each section linearly (see :func:`multi_lfilter.sosfilt_varying`).
        Every frame's section must be stable with half the bank's margin (checked in
        eager on CPU; :meth:`sections_from_raw` makes such sections from any values),
        and then so is every interpolated step.
        """
        y, _ = self.forward_with_state(waveform, None, sos, hop_length)
        return y

    @torch.jit.export
    def forward_with_state(
        self,
        waveform: Tensor,
        zi: Optional[Tensor] = None,
        sos: Optional[Tensor] = None,
        hop_length: Optional[int] = None,
    ) -> Tuple[Tensor, Tensor]:
        """Filter ``(..., T)`` from state ``zi`` (``(..., C, S, 2)``, ``None`` is zeros);
        returns ``(y, zf)``, ``(..., C, T)`` and ``(..., C, S, 2)``. Frame-rate
        sections as for :meth:`forward`; streamed as
        :meth:`BiquadFilterBank.forward_with_state` streams its frame-rate values."""
        if sos is None:
            check_no_hop(hop_length, "sos")
            return self.filter_sections(waveform, zi, None, None)
        reference = wide_parameter(self.numerators)
        sections = frame_rate_value("sos", sos, self.n_filters, reference, 2, "(..., C, F, S, 6)")
        if sections.shape[-2] != self.n_sections or sections.shape[-1] != 6:
            raise ValueError(
                f"expected sos of shape (..., C, F, S, 6) with S = {self.n_sections} (the bank's sections), "
                f"got {list(sections.shape)}"
            )
        if not torch.jit.is_scripting():
            self._check_stable_frames(sections)
        bank_input(waveform, sections.dtype)  # its checks first
        check_frames([("sos", sos)], sections, 2, waveform, hop_length)
        return self.filter_sections(waveform, zi, sections, hop_length)

    @torch.jit.unused
    def _check_stable_frames(self, sections: Tensor) -> None:
        if not value_checks_allowed(sections):
            return
        leading = sections[..., 3]
        if bool((leading == 0).any()):
            raise ValueError("expected sos with a0 != 0 in every frame's sections, got a0 = 0")
        margin = self.stability_margin / 2
        outside = ~inside_stable_triangle(sections[..., 4:] / leading.unsqueeze(-1), margin)
        if bool(outside.any()):
            where = [int(i) for i in outside.nonzero()[0]]
            raise ValueError(
                f"expected every frame's sections with poles inside the unit circle (|a2/a0| < 1 - {margin:g} and "
                f"|a1/a0| < (1 - {margin:g}) (1 + a2/a0)), got a = {sections[tuple(where)][3:].tolist()} at index "
                f"{where} of sos {list(sections.shape[:-1])} (..., C, F, S)"
            )

    def extra_repr(self) -> str:
        backend = "" if self.backend == "auto" else f", backend={self.backend!r}"
        return f"n_filters={self.n_filters}, n_sections={self.n_sections}, learnable={self.learnable}{backend}"

    @staticmethod
    def butterworth(
        order: int,
        sample_rate: float,
        center_freq: Tensor,
        bandwidth: Optional[Tensor] = None,
        kind: str = "bandpass",
        learnable: bool = True,
        backend: str = "auto",
        dtype: Optional[torch.dtype] = None,
    ) -> "ButterworthFilterBank":
        """A bank of Butterworth filters learnt through their frequencies: see
        :class:`ButterworthFilterBank`, which this returns.

        Example:
            >>> import torch
            >>> from multi_lfilter import SOSFilterBank
            >>> bank = SOSFilterBank.butterworth(2, 16000, torch.tensor([500.0, 2000.0]), torch.tensor([200.0, 800.0]))
            >>> bank.sos().shape     # 2 filters of 2 sections: 4th-order band-passes
            torch.Size([2, 2, 6])
        """
        return ButterworthFilterBank(order, sample_rate, center_freq, bandwidth, kind, learnable, backend, dtype)
