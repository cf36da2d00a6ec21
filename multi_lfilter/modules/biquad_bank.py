"""``BiquadFilterBank``: cookbook biquads learnt through frequency, ``Q`` and gain."""
import math
from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from .._parametrize import bounded, bounded_inverse, log_bounded, log_bounded_inverse
from .._precision import wide_parameter
from ..design import BIQUAD_KINDS, FilterCoefficients, center_frequencies, cookbook_biquad, frequency_responses
from ..functional import lfilter_bank_with_state
from ..varying import lfilter_varying_with_state
from ._common import (
    bank_input,
    check_backend,
    check_frames,
    check_no_hop,
    check_range,
    frame_count,
    frame_rate_value,
    register,
)

GAIN_KINDS = ("peaking", "lowshelf", "highshelf")


class BiquadFilterBank(nn.Module):
    r"""A bank of ``C`` cookbook biquads, learnt through centre frequency, ``Q`` and gain.

    The parameters live in an unconstrained space and are mapped into ranges where
    every filter is stable, whatever values an optimiser gives them (float32
    included): the centre frequency into
    ``[FREQUENCY_MARGIN, 1 - FREQUENCY_MARGIN]`` times Nyquist (a logistic map, which
    moves low frequencies in proportion to themselves), ``Q`` into
    ``[Q_MIN, Q_MAX]`` (logistic on a log scale) and, for the kinds with a gain
    (``"peaking"`` and the shelves), the gain into ``[-MAX_GAIN_DB, MAX_GAIN_DB]``.
    Read the mapped values with :attr:`center_freq`, :attr:`q` and :attr:`gain_db`.

    Network-controlled: :meth:`forward` and :meth:`forward_with_state` also take
    frame-rate values of the same three parameters, ``(..., C, F)`` each with a
    ``hop_length``, in Hz, as ``Q`` and in dB, inside the ranges above (a network maps
    its outputs there, e.g. with a sigmoid). The bank then designs a cookbook biquad
    per frame (:meth:`frame_coefficients`, differentiable) and filters with
    :func:`multi_lfilter.lfilter_varying`, interpolating the coefficients linearly
    between frames; every frame's biquad is stable and so is every step in between
    (the biquads' stable region is convex). A parameter not given is the bank's own
    at every frame, so gradients reach both. Runs in eager, under
    ``torch.compile`` and TorchScript (scripted, the time-varying path runs the
    reference loop).

    Args:
        n_filters: ``C``.
        sample_rate: in Hz.
        kind: one of :data:`multi_lfilter.design.BIQUAD_KINDS` (see
            :func:`multi_lfilter.design.biquad_coeffs`).
        f_min, f_max: the initial centre frequencies are spaced from ``f_min`` to
            ``f_max`` on ``scale`` (``f_max=None`` is 90% of Nyquist); both must lie
            inside the range above.
        scale: ``"linear"``, ``"log"``, ``"mel"`` or ``"erb"``
            (see :func:`multi_lfilter.design.center_frequencies`).
        q: initial ``Q``, a number or a ``(C,)`` tensor.
        gain_db: initial gain for ``"peaking"`` and the shelves, a number or ``(C,)``;
            must be 0 for the other kinds.
        learnable: whether the raw parameters are parameters (else buffers).
        backend: passed to :func:`multi_lfilter.lfilter_bank`.
        dtype: of the parameters (default dtype if ``None``); they are computed in
            float64 and rounded once.
        center_freq: ``(C,)`` initial centre frequencies in Hz, instead of the
            spacing from ``f_min`` to ``f_max``; each inside the range above.

    Shape:
        - input: ``(..., T)``
        - output: ``(..., C, T)``; the state of :meth:`forward_with_state` is
          ``(..., C, 2)``.
        - frame-rate values: ``(..., C, F)`` (``C`` or ``F`` may be 1), with
          ``F >= ceil(T / hop_length)``; their leading dims broadcast with the input's.

    Example:
        >>> import torch
        >>> from multi_lfilter import BiquadFilterBank
        >>> bank = BiquadFilterBank(64, sample_rate=16000, f_min=50.0, f_max=7000.0, q=4.0)
        >>> bank
        BiquadFilterBank(n_filters=64, sample_rate=16000.0, kind='bandpass', learnable=True)
        >>> bank(torch.randn(8, 16000)).shape
        torch.Size([8, 64, 16000])
        >>> bank.center_freq[[0, -1]]
        tensor([  50.0000, 7000.0000], grad_fn=<IndexBackward0>)

        A sweep: one ``Q`` per frame for every filter, 126 frames of 128 samples.

        >>> q = torch.linspace(1.0, 20.0, 126).expand(1, 126)       # (C=1, F)
        >>> bank(torch.randn(2, 16000), q=q, hop_length=128).shape
        torch.Size([2, 64, 16000])
    """

    FREQUENCY_MARGIN = 5e-4
    Q_MIN = 0.05
    Q_MAX = 100.0
    MAX_GAIN_DB = 30.0

    # Why these bounds: a cookbook denominator [1 + alpha, -2 cos w, 1 - alpha] with
    # alpha = sin(w) / (2 Q) (divided by the peaking filter's amplitude up to
    # 10 ** (30 / 40)) is stable iff alpha > 0 and |cos w| < 1. In float32 both need
    # margins well above the rounding error (6e-8): at the lowest frequency
    # 1 - cos w = 1.2e-6 and the smallest alpha is 1.4e-6.

    def __init__(
        self,
        n_filters: int,
        sample_rate: float,
        kind: str = "bandpass",
        f_min: float = 40.0,
        f_max: Optional[float] = None,
        scale: str = "mel",
        q: Union[float, Tensor] = 0.7071,
        gain_db: Union[float, Tensor] = 0.0,
        learnable: bool = True,
        backend: str = "auto",
        dtype: Optional[torch.dtype] = None,
        center_freq: Optional[Tensor] = None,
    ):
        super().__init__()
        if kind not in BIQUAD_KINDS:
            raise ValueError(f"expected kind to be one of {list(BIQUAD_KINDS)}, got {kind!r}")
        if n_filters < 1:
            raise ValueError(f"expected n_filters >= 1, got {n_filters}")
        if not sample_rate > 0:
            raise ValueError(f"expected sample_rate > 0, got {sample_rate}")
        check_backend(backend)
        nyquist = sample_rate / 2
        f_max = 0.9 * nyquist if f_max is None else f_max
        lowest, highest = self.FREQUENCY_MARGIN * nyquist, (1 - self.FREQUENCY_MARGIN) * nyquist
        if center_freq is None:
            if not lowest < f_min < f_max < highest:
                raise ValueError(
                    f"expected {lowest:g} < f_min < f_max < {highest:g} Hz at sample_rate {sample_rate:g}, "
                    f"got f_min={f_min}, f_max={f_max}"
                )
            center_freq = center_frequencies(n_filters, f_min, f_max, scale, dtype=torch.float64)
        else:
            center_freq = self._initial_values("center_freq", center_freq, n_filters, lowest, highest)
        dtype = dtype or torch.get_default_dtype()
        fraction = center_freq / nyquist
        q = self._initial_values("q", q, n_filters, self.Q_MIN, self.Q_MAX)
        gain_db = self._initial_values("gain_db", gain_db, n_filters, -self.MAX_GAIN_DB, self.MAX_GAIN_DB)
        if kind not in GAIN_KINDS and bool((gain_db != 0).any()):
            raise ValueError(f"expected gain_db = 0 for kind {kind!r}: only {list(GAIN_KINDS)} have a gain")

        margin = self.FREQUENCY_MARGIN
        register(self, "raw_center_freq", bounded_inverse(fraction, margin, 1 - margin).to(dtype), learnable)
        register(self, "raw_q", log_bounded_inverse(q, self.Q_MIN, self.Q_MAX).to(dtype), learnable)
        if kind in GAIN_KINDS:
            raw_gain = bounded_inverse(gain_db, -self.MAX_GAIN_DB, self.MAX_GAIN_DB)
            register(self, "raw_gain_db", raw_gain.to(dtype), learnable)
        else:
            self.register_parameter("raw_gain_db", None)
        self.n_filters = n_filters
        self.sample_rate = float(sample_rate)
        self.kind = kind
        self.learnable = learnable
        self.backend = backend
        # TorchScript reads instance attributes, not class constants.
        self.frequency_margin = self.FREQUENCY_MARGIN
        self.q_min, self.q_max, self.max_gain_db = self.Q_MIN, self.Q_MAX, self.MAX_GAIN_DB

    @staticmethod
    def _initial_values(name: str, value, n_filters: int, low: float, high: float) -> Tensor:
        values = torch.as_tensor(value, dtype=torch.float64).detach()
        if values.dim() > 1 or values.numel() not in (1, n_filters):
            raise ValueError(f"expected {name} to be a number or of shape ({n_filters},), got {list(values.shape)}")
        outside = ~((values > low) & (values < high))
        if bool(outside.any()):
            shown = values[outside].tolist() if values.dim() else [values.item()]
            raise ValueError(f"expected {low:g} < {name} < {high:g}, got {shown[:5]}{' ...' if len(shown) > 5 else ''}")
        return values.expand(n_filters)

    def _omega(self) -> Tensor:
        """``(C,)`` centre frequencies in radians per sample."""
        margin = self.frequency_margin
        return math.pi * bounded(wide_parameter(self.raw_center_freq), margin, 1 - margin)

    @property
    def center_freq(self) -> Tensor:
        """``(C,)`` centre (or cut-off) frequencies in Hz."""
        return self._omega() * (self.sample_rate / (2 * math.pi))

    @property
    def q(self) -> Tensor:
        """``(C,)`` quality factors."""
        return log_bounded(wide_parameter(self.raw_q), self.q_min, self.q_max)

    @property
    def gain_db(self) -> Tensor:
        """``(C,)`` gains in dB (zeros for the kinds without a gain)."""
        raw_gain = self.raw_gain_db
        if raw_gain is None:
            return torch.zeros_like(wide_parameter(self.raw_q))
        return bounded(wide_parameter(raw_gain), -self.max_gain_db, self.max_gain_db)

    @torch.jit.export
    def coefficients(self) -> FilterCoefficients:
        """The filters' :class:`~multi_lfilter.design.FilterCoefficients` ``(b, a)``,
        each ``(C, 3)`` (not normalised: ``a[:, 0] != 1``)."""
        return cookbook_biquad(self.kind, self._omega(), self.q, self.gain_db)

    @torch.jit.export
    def frame_coefficients(
        self, center_freq: Optional[Tensor] = None, q: Optional[Tensor] = None, gain_db: Optional[Tensor] = None
    ) -> FilterCoefficients:
        """The coefficients designed frame by frame from frame-rate values (see
        :meth:`forward`): :class:`~multi_lfilter.design.FilterCoefficients` ``(b, a)``,
        each ``(..., C, F, 3)``, the broadcast of the values given and the bank's own
        parameters (``(C, 1)``) for the others. Not normalised (``a[..., 0] != 1``).

        Raises:
            TypeError: for a value of another dtype than the bank's.
            ValueError: for a value not of shape ``(..., C or 1, F)``, on another
                device, outside the bank's range, or a ``gain_db`` for a kind without
                a gain.
        """
        reference = wide_parameter(self.raw_q)  # the dtype and device the coefficients are computed in
        named: List[Tuple[str, Tensor]] = []
        if center_freq is not None:
            center_freq = frame_rate_value("center_freq", center_freq, self.n_filters, reference, 0, "(..., C, F)")
            named.append(("center_freq", center_freq))
        if q is not None:
            q = frame_rate_value("q", q, self.n_filters, reference, 0, "(..., C, F)")
            named.append(("q", q))
        if gain_db is not None:
            if self.raw_gain_db is None:
                raise ValueError(
                    f"expected gain_db=None for kind '{self.kind}': "
                    "only 'peaking', 'lowshelf' and 'highshelf' have a gain"
                )
            gain_db = frame_rate_value("gain_db", gain_db, self.n_filters, reference, 0, "(..., C, F)")
            named.append(("gain_db", gain_db))
        frame_count(named, 0)
        if not torch.jit.is_scripting():
            self._check_ranges(center_freq, q, gain_db)
        omega = self._omega().unsqueeze(-1) if center_freq is None else center_freq * (2 * math.pi / self.sample_rate)
        q_values = self.q.unsqueeze(-1) if q is None else q
        gains = self.gain_db.unsqueeze(-1) if gain_db is None else gain_db
        return cookbook_biquad(self.kind, omega, q_values, gains)

    @torch.jit.unused
    def _check_ranges(self, center_freq: Optional[Tensor], q: Optional[Tensor], gain_db: Optional[Tensor]) -> None:
        nyquist = self.sample_rate / 2
        margin = self.frequency_margin
        if center_freq is not None:
            check_range("center_freq", center_freq, margin * nyquist, (1 - margin) * nyquist, " Hz")
        if q is not None:
            check_range("q", q, self.q_min, self.q_max)
        if gain_db is not None:
            check_range("gain_db", gain_db, -self.max_gain_db, self.max_gain_db, " dB")

    def forward(
        self,
        waveform: Tensor,
        center_freq: Optional[Tensor] = None,
        q: Optional[Tensor] = None,
        gain_db: Optional[Tensor] = None,
        hop_length: Optional[int] = None,
    ) -> Tensor:
        """Filter ``(..., T)`` from rest through every filter: ``(..., C, T)``.

        Without frame-rate values the filters are the bank's own (time-invariant).
        With any of ``center_freq`` (Hz), ``q`` and ``gain_db`` (dB), each
        ``(..., C, F)`` (``C`` or ``F`` may be 1), the filters change every frame:
        frame ``f`` is the cookbook biquad of those values at sample
        ``f * hop_length``, the samples in between interpolate its coefficients
        linearly (see :func:`multi_lfilter.lfilter_varying`), and a value not given is
        the bank's own parameter at every frame. Every frame's biquad is stable when
        its values lie in the bank's ranges (checked in eager on CPU), and so is every
        interpolated step. Gradients reach the frame-rate values and the parameters.
        """
        y, _ = self.forward_with_state(waveform, None, center_freq, q, gain_db, hop_length)
        return y

    @torch.jit.export
    def forward_with_state(
        self,
        waveform: Tensor,
        zi: Optional[Tensor] = None,
        center_freq: Optional[Tensor] = None,
        q: Optional[Tensor] = None,
        gain_db: Optional[Tensor] = None,
        hop_length: Optional[int] = None,
    ) -> Tuple[Tensor, Tensor]:
        """Filter ``(..., T)`` from state ``zi`` (``(..., C, 2)``, ``None`` is zeros);
        returns ``(y, zf)``, ``(..., C, T)`` and ``(..., C, 2)``.

        Frame-rate values as for :meth:`forward`. To stream, cut the signal at
        multiples of ``hop_length`` and give a chunk covering samples ``[s, e)`` the
        frames ``s / hop_length`` through ``ceil(e / hop_length)``: the chunks then
        equal one call. The state is the same with and without frame-rate values.
        """
        if center_freq is None and q is None and gain_db is None:
            check_no_hop(hop_length, "center_freq, q, gain_db")
            b, a = self.coefficients()
            return lfilter_bank_with_state(bank_input(waveform, a.dtype), a, b, zi, self.backend)
        b, a = self.frame_coefficients(center_freq, q, gain_db)
        signal = bank_input(waveform, a.dtype)
        named: List[Tuple[str, Tensor]] = []
        if center_freq is not None:
            named.append(("center_freq", center_freq))
        if q is not None:
            named.append(("q", q))
        if gain_db is not None:
            named.append(("gain_db", gain_db))
        check_frames(named, a, 1, waveform, hop_length)
        return lfilter_varying_with_state(signal, a, b, zi, "tdf2", hop_length, self.backend)

    @torch.jit.export
    def frequency_response(self, n_freqs: int = 512) -> Tuple[Tensor, Tensor]:
        """``(freqs, response)``: ``(F,)`` in Hz and the complex ``(C, F)``
        (see :func:`multi_lfilter.freqz_bank`)."""
        b, a = self.coefficients()
        return frequency_responses(a, b, n_freqs, self.sample_rate)

    def extra_repr(self) -> str:
        backend = "" if self.backend == "auto" else f", backend={self.backend!r}"
        return (
            f"n_filters={self.n_filters}, sample_rate={self.sample_rate}, kind={self.kind!r}, "
            f"learnable={self.learnable}{backend}"
        )
