"""``nn.Module`` front-ends: banks of filters that drop into a model.

Each Module applies ``C`` filters to every input signal, ``(..., T) -> (..., C, T)``,
by calling the functional API (so every backend, the adjoint, TorchScript and
``torch.compile`` work the same way). ``forward_with_state`` takes and returns the
filters' state, so a long signal can be filtered chunk by chunk.
"""
import math
from typing import Optional, Tuple, Union

import torch
from torch import Tensor, nn

from ._parametrize import (
    bounded,
    bounded_inverse,
    inside_stable_triangle,
    log_bounded,
    log_bounded_inverse,
    stable_denominator,
    stable_denominator_inverse,
)
from ._validation import check_is_tensor, dtype_name, is_half
from .backends.dispatch import BACKEND_CHOICES
from .cascades import sosfilt_bank_with_state
from .design import BIQUAD_KINDS, FilterCoefficients, butter_sos, center_frequencies, cookbook_biquad, frequency_responses
from .functional import lfilter_bank_with_state

GAIN_KINDS = ("peaking", "lowshelf", "highshelf")


def _wide(values: Tensor) -> Tensor:
    """Half-precision parameters (a ``.half()`` or ``.bfloat16()`` bank) in float32, so
    the coefficients, their stability margins included, are computed in float32."""
    return values.float() if is_half(values.dtype) else values


def _bank_input(waveform: Tensor, bank_dtype: torch.dtype) -> Tensor:
    """``(..., T)`` to ``(..., 1, T)``, so it broadcasts against ``C`` filters.

    Checks the dtype here, where the message can name the Module rather than the
    coefficients it computes (which the user never passed). A half-precision waveform
    goes with any bank (it is filtered in the bank's wider type, as under autocast).
    """
    if waveform.dim() == 0:
        raise ValueError("expected waveform of shape (..., T), got a 0-dim tensor")
    if waveform.dtype != bank_dtype and not is_half(waveform.dtype):
        raise TypeError(
            f"expected a waveform of the bank's dtype {dtype_name(bank_dtype)}, got {dtype_name(waveform.dtype)}; "
            "convert the bank (bank.double(), bank.float()) or the waveform (waveform.to(dtype))"
        )
    return waveform.unsqueeze(-2)


def _check_backend(backend: str) -> None:
    if backend not in BACKEND_CHOICES:
        raise ValueError(f"expected backend to be one of {list(BACKEND_CHOICES)}, got {backend!r}")


def _check_float_tensor(name: str, value, ndim: int, layout: str) -> None:
    check_is_tensor(name, value)
    if value.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"expected {name} to be float32 or float64, got {value.dtype}")
    if value.dim() != ndim:
        raise ValueError(f"expected {name} of shape {layout}, got {list(value.shape)}")


def _register(module: nn.Module, name: str, value: Tensor, learnable: bool) -> None:
    """A parameter if ``learnable``, else a buffer: either way it is in the ``state_dict``."""
    value = value.detach().clone()
    if learnable:
        module.register_parameter(name, nn.Parameter(value))
    else:
        module.register_buffer(name, value)


class LFilterBank(nn.Module):
    r"""A bank of ``C`` IIR filters of any order, applied to every input signal.

    The coefficients are used as they are (normalised by ``a0`` on every call), so a
    learnt bank can become unstable; :class:`BiquadFilterBank` and
    :class:`SOSFilterBank` are parametrised to stay stable.

    Args:
        a_coeffs: ``(C, Ka)`` denominators ``[a0, a1, ...]``.
        b_coeffs: ``(C, Kb)`` numerators; a first dim of 1 in either broadcasts.
        learnable: whether the coefficients are parameters (else buffers).
        backend: passed to :func:`multi_lfilter.lfilter_bank`.

    Shape:
        - input: ``(..., T)``
        - output: ``(..., C, T)``; the state of :meth:`forward_with_state` is
          ``(..., C, N)`` with ``N = max(Ka, Kb) - 1``.

    Example:
        >>> import torch
        >>> from multi_lfilter import LFilterBank
        >>> bank = LFilterBank(torch.tensor([[1.0, -0.9], [1.0, 0.5]]), torch.tensor([[0.1, 0.0], [0.5, 0.5]]))
        >>> bank
        LFilterBank(n_filters=2, order=1, learnable=True)
        >>> bank(torch.randn(8, 4000)).shape
        torch.Size([8, 2, 4000])
    """

    def __init__(
        self, a_coeffs: Tensor, b_coeffs: Tensor, learnable: bool = True, backend: str = "auto"
    ):
        super().__init__()
        _check_float_tensor("a_coeffs", a_coeffs, 2, "(C, Ka)")
        _check_float_tensor("b_coeffs", b_coeffs, 2, "(C, Kb)")
        if a_coeffs.dtype != b_coeffs.dtype:
            raise TypeError(f"expected one dtype, got a_coeffs {a_coeffs.dtype}, b_coeffs {b_coeffs.dtype}")
        if a_coeffs.shape[0] != b_coeffs.shape[0] and 1 not in (a_coeffs.shape[0], b_coeffs.shape[0]):
            raise ValueError(
                f"expected a_coeffs and b_coeffs with the same number of filters, got "
                f"{list(a_coeffs.shape)} and {list(b_coeffs.shape)}"
            )
        _check_backend(backend)
        _register(self, "a_coeffs", a_coeffs, learnable)
        _register(self, "b_coeffs", b_coeffs, learnable)
        self.learnable = learnable
        self.backend = backend

    @property
    def n_filters(self) -> int:
        return max(self.a_coeffs.shape[0], self.b_coeffs.shape[0])

    @property
    def order(self) -> int:
        return max(self.a_coeffs.shape[-1], self.b_coeffs.shape[-1]) - 1

    def forward(self, waveform: Tensor) -> Tensor:
        """Filter ``(..., T)`` from rest through every filter: ``(..., C, T)``."""
        y, _ = self.forward_with_state(waveform, None)
        return y

    @torch.jit.export
    def forward_with_state(self, waveform: Tensor, zi: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Filter ``(..., T)`` from state ``zi`` (``(..., C, N)``, ``None`` is zeros);
        returns ``(y, zf)``, ``(..., C, T)`` and ``(..., C, N)``."""
        return lfilter_bank_with_state(
            _bank_input(waveform, _wide(self.a_coeffs).dtype), _wide(self.a_coeffs), _wide(self.b_coeffs), zi, self.backend
        )

    def extra_repr(self) -> str:
        backend = "" if self.backend == "auto" else f", backend={self.backend!r}"
        return f"n_filters={self.n_filters}, order={self.order}, learnable={self.learnable}{backend}"


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
        _check_backend(backend)
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
        _register(self, "raw_center_freq", bounded_inverse(fraction, margin, 1 - margin).to(dtype), learnable)
        _register(self, "raw_q", log_bounded_inverse(q, self.Q_MIN, self.Q_MAX).to(dtype), learnable)
        if kind in GAIN_KINDS:
            raw_gain = bounded_inverse(gain_db, -self.MAX_GAIN_DB, self.MAX_GAIN_DB)
            _register(self, "raw_gain_db", raw_gain.to(dtype), learnable)
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
        return math.pi * bounded(_wide(self.raw_center_freq), margin, 1 - margin)

    @property
    def center_freq(self) -> Tensor:
        """``(C,)`` centre (or cut-off) frequencies in Hz."""
        return self._omega() * (self.sample_rate / (2 * math.pi))

    @property
    def q(self) -> Tensor:
        """``(C,)`` quality factors."""
        return log_bounded(_wide(self.raw_q), self.q_min, self.q_max)

    @property
    def gain_db(self) -> Tensor:
        """``(C,)`` gains in dB (zeros for the kinds without a gain)."""
        raw_gain = self.raw_gain_db
        if raw_gain is None:
            return torch.zeros_like(_wide(self.raw_q))
        return bounded(_wide(raw_gain), -self.max_gain_db, self.max_gain_db)

    @torch.jit.export
    def coefficients(self) -> FilterCoefficients:
        """The filters' :class:`~multi_lfilter.design.FilterCoefficients` ``(b, a)``,
        each ``(C, 3)`` (not normalised: ``a[:, 0] != 1``)."""
        return cookbook_biquad(self.kind, self._omega(), self.q, self.gain_db)

    def forward(self, waveform: Tensor) -> Tensor:
        """Filter ``(..., T)`` from rest through every filter: ``(..., C, T)``."""
        y, _ = self.forward_with_state(waveform, None)
        return y

    @torch.jit.export
    def forward_with_state(self, waveform: Tensor, zi: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Filter ``(..., T)`` from state ``zi`` (``(..., C, 2)``, ``None`` is zeros);
        returns ``(y, zf)``, ``(..., C, T)`` and ``(..., C, 2)``."""
        b, a = self.coefficients()
        return lfilter_bank_with_state(_bank_input(waveform, a.dtype), a, b, zi, self.backend)

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


class SOSFilterBank(nn.Module):
    r"""A bank of ``C`` cascades of ``S`` second-order sections, kept stable while learnt.

    Each section's numerator is stored as given (divided by ``a0``); its denominator
    ``[1, a1, a2]`` is stored as two unconstrained values mapped into the stability
    triangle ``|a2| < 1``, ``|a1| < 1 + a2`` shrunk by ``STABILITY_MARGIN`` (so every
    pole stays inside the unit circle whatever the optimiser does). Read the current
    sections with :meth:`sos`.

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
        super().__init__()
        _check_float_tensor("sos", sos, 3, "(C, S, 6)")
        if sos.shape[-1] != 6 or sos.shape[0] == 0 or sos.shape[1] == 0:
            raise ValueError(f"expected sos of shape (C, S, 6) with C, S >= 1, got {list(sos.shape)}")
        _check_backend(backend)
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
        _register(self, "numerators", numerators.to(sos.dtype), learnable)
        _register(self, "raw_denominators", raw_denominators.to(sos.dtype), learnable)
        self.learnable = learnable
        self.backend = backend
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
        denominators = stable_denominator(_wide(self.raw_denominators), self.stability_margin)
        ones = torch.ones_like(denominators[..., :1])
        return torch.cat([_wide(self.numerators), ones, denominators], -1)

    def forward(self, waveform: Tensor) -> Tensor:
        """Filter ``(..., T)`` from rest through every filter: ``(..., C, T)``."""
        y, _ = self.forward_with_state(waveform, None)
        return y

    @torch.jit.export
    def forward_with_state(self, waveform: Tensor, zi: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Filter ``(..., T)`` from state ``zi`` (``(..., C, S, 2)``, ``None`` is zeros);
        returns ``(y, zf)``, ``(..., C, T)`` and ``(..., C, S, 2)``."""
        sections = self.sos()
        return sosfilt_bank_with_state(_bank_input(waveform, sections.dtype), sections, zi, self.backend)

    @torch.jit.export
    def frequency_response(self, n_freqs: int = 512, sample_rate: Optional[float] = None) -> Tuple[Tensor, Tensor]:
        """``(freqs, response)``: ``(F,)`` (in Hz where ``sample_rate`` is given, else
        radians per sample) and the complex ``(C, F)``, the product over sections."""
        sections = self.sos()
        freqs, responses = frequency_responses(sections[..., 3:], sections[..., :3], n_freqs, sample_rate)
        return freqs, responses.prod(-2)

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


class ButterworthFilterBank(SOSFilterBank):
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
        nn.Module.__init__(self)
        if kind not in ("bandpass", "bandstop", "lowpass", "highpass"):
            raise ValueError(f"expected kind to be 'bandpass', 'bandstop', 'lowpass' or 'highpass', got {kind!r}")
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise ValueError(f"expected order to be an int >= 1, got {order!r}")
        if not sample_rate > 0:
            raise ValueError(f"expected sample_rate > 0, got {sample_rate}")
        _check_backend(backend)
        _check_float_tensor("center_freq", center_freq, 1, "(C,)")
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
        _register(self, "raw_center_freq", bounded_inverse(fraction, margin, 1 - margin).to(dtype), learnable)
        if bandwidth is not None:
            _check_float_tensor("bandwidth", bandwidth, 1, "(C,)")
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
            _register(self, "raw_bandwidth", bounded_inverse(share, margin, 1 - margin).to(dtype), learnable)
        else:
            self.register_parameter("raw_bandwidth", None)
        self.order = order
        self.sample_rate = float(sample_rate)
        self.kind = kind
        self.learnable = learnable
        self.backend = backend
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
        return (self.sample_rate / 2) * bounded(_wide(self.raw_center_freq), margin, 1 - margin)

    @property
    def bandwidth(self) -> Optional[Tensor]:
        """``(C,)`` bandwidths in Hz (``None`` for low- and high-pass filters)."""
        if self.raw_bandwidth is None:
            return None
        centre = self.center_freq
        room = 2 * torch.minimum(centre, self.sample_rate / 2 - centre)
        margin = self.frequency_margin
        return room * bounded(_wide(self.raw_bandwidth), margin, 1 - margin)

    def sos(self) -> Tensor:
        """The current sections, ``(C, S, 6)`` (see :func:`multi_lfilter.design.butter_sos`)."""
        centre = self.center_freq
        bandwidth = self.bandwidth
        cutoff = centre if bandwidth is None else torch.stack([centre - bandwidth / 2, centre + bandwidth / 2], -1)
        return butter_sos(self.order, cutoff, self.kind, self.sample_rate)

    def extra_repr(self) -> str:
        backend = "" if self.backend == "auto" else f", backend={self.backend!r}"
        return (
            f"order={self.order}, n_filters={self.n_filters}, sample_rate={self.sample_rate}, "
            f"kind={self.kind!r}, learnable={self.learnable}{backend}"
        )
