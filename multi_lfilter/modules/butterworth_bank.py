"""``ButterworthFilterBank``: Butterworth cascades learnt through their frequencies."""
from typing import Optional, Tuple

import torch
from torch import Tensor

from .._parametrize import bounded, bounded_inverse
from .._precision import wide_parameter
from ..design import butter_sos
from ._common import (
    bank_input,
    check_float_tensor,
    check_frames,
    check_no_hop,
    check_range,
    frame_count,
    frame_rate_value,
    register,
)
from .cascade_bank import CascadeFilterBank


class ButterworthFilterBank(CascadeFilterBank):
    r"""A bank of ``C`` Butterworth filters as cascades, learnt through their frequencies.

    The sections are designed on every call by
    :func:`multi_lfilter.design.butter_sos` from the current frequencies, so gradients
    reach them through the design, and every filter is stable by construction (a
    Butterworth filter with edges strictly between 0 and Nyquist has every pole inside
    the unit circle). The frequencies live in an unconstrained space:

    - the centre frequency (the cut-off for ``"lowpass"`` and ``"highpass"``) maps
      into ``[FREQUENCY_MARGIN, 1 - FREQUENCY_MARGIN]`` times Nyquist by a logistic
      function, as in :class:`BiquadFilterBank`;
    - the bandwidth (``"bandpass"``, ``"bandstop"``) maps into that same fraction of
      the room the centre leaves, ``2 min(centre, Nyquist - centre)``, so the band
      edges ``centre -/+ bandwidth / 2`` stay inside ``(0, Nyquist)``. (A moving centre
      therefore scales the largest bandwidth it allows.)

    Read the current values with :attr:`center_freq` and :attr:`bandwidth`, the sections
    with :meth:`sos` and the responses with :meth:`frequency_response`. Runs in eager,
    under ``torch.compile`` and ``torch.export``; not under TorchScript (the design
    uses complex arithmetic it does not script).

    Network-controlled: :meth:`forward` and :meth:`forward_with_state` also take
    frame-rate ``center_freq`` and ``bandwidth`` (Hz, ``(..., C, F)``, with a
    ``hop_length``); the bank designs the sections per frame (:meth:`frame_sos`) and
    filters with :func:`multi_lfilter.sosfilt_varying` (see :meth:`forward`).

    Args:
        order: the Butterworth order ``N``: ``N`` sections for band filters (``2 N``
            poles), ``ceil(N / 2)`` for low- and high-pass filters.
        sample_rate: in Hz.
        center_freq: ``(C,)`` initial centre (or cut-off) frequencies in Hz.
        bandwidth: ``(C,)`` initial bandwidths in Hz for band filters (``None`` for
            low- and high-pass filters).
        kind: ``"bandpass"``, ``"bandstop"``, ``"lowpass"`` or ``"highpass"``.
        learnable: whether the raw frequencies are parameters (else buffers).
        backend: passed to :func:`multi_lfilter.sosfilt_bank`.
        dtype: of the parameters (default dtype if ``None``).

    Shape:
        - input: ``(..., T)``
        - output: ``(..., C, T)``; the state of ``forward_with_state`` is
          ``(..., C, S, 2)``.
        - frame-rate values: ``(..., C, F)`` (``C`` or ``F`` may be 1), with
          ``F >= ceil(T / hop_length)``.

    Example:
        >>> import torch
        >>> from multi_lfilter import ButterworthFilterBank
        >>> bank = ButterworthFilterBank(2, 16000, torch.tensor([300.0, 1000.0, 3000.0]), torch.tensor([100.0, 300.0, 1000.0]))
        >>> bank
        ButterworthFilterBank(order=2, n_filters=3, sample_rate=16000.0, kind='bandpass', learnable=True)
        >>> bank(torch.randn(4, 8000)).shape
        torch.Size([4, 3, 8000])
        >>> bank.bandwidth.round()
        tensor([ 100.,  300., 1000.], grad_fn=<RoundBackward0>)
    """

    FREQUENCY_MARGIN = 5e-4

    def __init__(
        self,
        order: int,
        sample_rate: float,
        center_freq: Tensor,
        bandwidth: Optional[Tensor] = None,
        kind: str = "bandpass",
        learnable: bool = True,
        backend: str = "auto",
        dtype: Optional[torch.dtype] = None,
    ):
        super().__init__(learnable, backend)
        if kind not in ("bandpass", "bandstop", "lowpass", "highpass"):
            raise ValueError(f"expected kind to be 'bandpass', 'bandstop', 'lowpass' or 'highpass', got {kind!r}")
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise ValueError(f"expected order to be an int >= 1, got {order!r}")
        if not sample_rate > 0:
            raise ValueError(f"expected sample_rate > 0, got {sample_rate}")
        check_float_tensor("center_freq", center_freq, 1, "(C,)")
        if center_freq.shape[0] == 0:
            raise ValueError("expected at least one filter, got center_freq of shape [0]")
        band = kind in ("bandpass", "bandstop")
        if band != (bandwidth is not None):
            raise ValueError(
                f"expected a bandwidth for kind {kind!r}" if band else f"expected bandwidth=None for kind {kind!r}"
            )
        nyquist = sample_rate / 2
        margin = self.FREQUENCY_MARGIN
        centre = center_freq.detach().double()
        fraction = centre / nyquist
        if not bool(((fraction > margin) & (fraction < 1 - margin)).all()):
            raise ValueError(
                f"expected {margin * nyquist:g} < center_freq < {(1 - margin) * nyquist:g} Hz at sample_rate "
                f"{sample_rate:g}, got {center_freq.tolist()}"
            )
        dtype = dtype or torch.get_default_dtype()
        register(self, "raw_center_freq", bounded_inverse(fraction, margin, 1 - margin).to(dtype), learnable)
        if bandwidth is not None:
            check_float_tensor("bandwidth", bandwidth, 1, "(C,)")
            if bandwidth.shape != center_freq.shape:
                raise ValueError(f"expected bandwidth of shape {list(center_freq.shape)}, got {list(bandwidth.shape)}")
            room = 2 * torch.minimum(centre, nyquist - centre)
            share = bandwidth.detach().double() / room
            if not bool(((share > margin) & (share < 1 - margin)).all()):
                raise ValueError(
                    "expected every band inside (0, Nyquist) with a margin: 0 < bandwidth < "
                    f"2 min(center_freq, Nyquist - center_freq), got bandwidth {bandwidth.tolist()} "
                    f"for center_freq {center_freq.tolist()}"
                )
            register(self, "raw_bandwidth", bounded_inverse(share, margin, 1 - margin).to(dtype), learnable)
        else:
            self.register_parameter("raw_bandwidth", None)
        self.order = order
        self.sample_rate = float(sample_rate)
        self.kind = kind
        self.frequency_margin = margin

    @property
    def n_filters(self) -> int:
        return self.raw_center_freq.shape[0]

    @property
    def n_sections(self) -> int:
        return self.order if self.raw_bandwidth is not None else (self.order + 1) // 2

    @property
    def center_freq(self) -> Tensor:
        """``(C,)`` centre (or cut-off) frequencies in Hz."""
        margin = self.frequency_margin
        return (self.sample_rate / 2) * bounded(wide_parameter(self.raw_center_freq), margin, 1 - margin)

    @property
    def bandwidth(self) -> Optional[Tensor]:
        """``(C,)`` bandwidths in Hz (``None`` for low- and high-pass filters)."""
        if self.raw_bandwidth is None:
            return None
        centre = self.center_freq
        room = 2 * torch.minimum(centre, self.sample_rate / 2 - centre)
        margin = self.frequency_margin
        return room * bounded(wide_parameter(self.raw_bandwidth), margin, 1 - margin)

    def sos(self) -> Tensor:
        """The current sections, ``(C, S, 6)`` (see :func:`multi_lfilter.design.butter_sos`)."""
        centre = self.center_freq
        bandwidth = self.bandwidth
        cutoff = centre if bandwidth is None else torch.stack([centre - bandwidth / 2, centre + bandwidth / 2], -1)
        return butter_sos(self.order, cutoff, self.kind, self.sample_rate)

    def frame_sos(self, center_freq: Optional[Tensor] = None, bandwidth: Optional[Tensor] = None) -> Tensor:
        """Sections designed frame by frame from frame-rate values (see :meth:`forward`):
        ``(..., C, F, S, 6)``, the broadcast of the values given and the bank's own
        (``(C, 1)``) for the others.

        Raises:
            TypeError: for a value of another dtype than the bank's.
            ValueError: for a value not of shape ``(..., C or 1, F)``, on another device,
                outside the bank's range, or a ``bandwidth`` for a low- or high-pass bank.
        """
        reference = wide_parameter(self.raw_center_freq)
        nyquist = self.sample_rate / 2
        margin = self.frequency_margin
        if bandwidth is not None and self.raw_bandwidth is None:
            raise ValueError(f"expected bandwidth=None for kind {self.kind!r}: only band filters have a bandwidth")
        named = []
        if center_freq is not None:
            center_freq = frame_rate_value("center_freq", center_freq, self.n_filters, reference, 0, "(..., C, F)")
            check_range("center_freq", center_freq, margin * nyquist, (1 - margin) * nyquist, " Hz")
            named.append(("center_freq", center_freq))
        if bandwidth is not None:
            bandwidth = frame_rate_value("bandwidth", bandwidth, self.n_filters, reference, 0, "(..., C, F)")
            named.append(("bandwidth", bandwidth))
        frame_count(named, 0)
        centre = self.center_freq.unsqueeze(-1) if center_freq is None else center_freq
        if self.raw_bandwidth is None:
            return butter_sos(self.order, centre, self.kind, self.sample_rate)
        room = 2 * torch.minimum(centre, nyquist - centre)
        if bandwidth is None:
            # The bank's own parameter is its share of the room the centre leaves: at a
            # moving centre it keeps every band edge inside (0, Nyquist).
            share = bounded(wide_parameter(self.raw_bandwidth), margin, 1 - margin).unsqueeze(-1)
        else:
            share = bandwidth / room
            check_range("bandwidth / (2 min(center_freq, Nyquist - center_freq))", share, margin, 1 - margin)
        half_width = room * share / 2
        low, high = torch.broadcast_tensors(centre - half_width, centre + half_width)
        return butter_sos(self.order, torch.stack([low, high], -1), self.kind, self.sample_rate)

    def forward(
        self,
        waveform: Tensor,
        center_freq: Optional[Tensor] = None,
        bandwidth: Optional[Tensor] = None,
        hop_length: Optional[int] = None,
    ) -> Tensor:
        """Filter ``(..., T)`` from rest through every filter: ``(..., C, T)``.

        Without frame-rate values the filters are the bank's own (time-invariant).
        With ``center_freq`` and/or ``bandwidth`` (Hz, band filters only), each
        ``(..., C, F)`` (``C`` or ``F`` may be 1), every frame gets its own Butterworth
        design at sample ``f * hop_length``, its sections interpolated linearly in
        between (see :func:`multi_lfilter.sosfilt_varying`). A centre not given is the
        bank's own; a bandwidth not given is the bank's own *share* of the room the
        frame's centre leaves, ``2 min(centre, Nyquist - centre)`` (its parameter), so
        the band edges stay inside ``(0, Nyquist)`` as the centre moves. Every frame's
        sections, and so every interpolated step, are stable when the values lie in the
        bank's ranges (checked in eager on CPU): ``center_freq`` within
        ``FREQUENCY_MARGIN`` of 0 and Nyquist, ``bandwidth`` a share of that room
        between ``FREQUENCY_MARGIN`` and ``1 - FREQUENCY_MARGIN``.
        """
        y, _ = self.forward_with_state(waveform, None, center_freq, bandwidth, hop_length)
        return y

    def forward_with_state(
        self,
        waveform: Tensor,
        zi: Optional[Tensor] = None,
        center_freq: Optional[Tensor] = None,
        bandwidth: Optional[Tensor] = None,
        hop_length: Optional[int] = None,
    ) -> Tuple[Tensor, Tensor]:
        """Filter ``(..., T)`` from state ``zi`` (``(..., C, S, 2)``, ``None`` is zeros);
        returns ``(y, zf)``, ``(..., C, T)`` and ``(..., C, S, 2)``. Frame-rate values
        as for :meth:`forward`, streamed as
        :meth:`BiquadFilterBank.forward_with_state` streams its values."""
        if center_freq is None and bandwidth is None:
            check_no_hop(hop_length, "center_freq, bandwidth")
            return self.filter_sections(waveform, zi, None, None)
        sections = self.frame_sos(center_freq, bandwidth)
        bank_input(waveform, sections.dtype)  # its checks first
        given = (("center_freq", center_freq), ("bandwidth", bandwidth))
        named = [(name, value) for name, value in given if value is not None]
        check_frames(named, sections, 2, waveform, hop_length)
        return self.filter_sections(waveform, zi, sections, hop_length)

    def extra_repr(self) -> str:
        backend = "" if self.backend == "auto" else f", backend={self.backend!r}"
        return (
            f"order={self.order}, n_filters={self.n_filters}, sample_rate={self.sample_rate}, "
            f"kind={self.kind!r}, learnable={self.learnable}{backend}"
        )
