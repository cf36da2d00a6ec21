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
from .design import BIQUAD_KINDS, FilterCoefficients, center_frequencies, cookbook_biquad, frequency_responses
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
