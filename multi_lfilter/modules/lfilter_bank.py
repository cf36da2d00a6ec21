"""``LFilterBank``: a bank of IIR filters of any order, coefficients as given."""
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from .._precision import wide_parameter
from ..functional import lfilter_bank_with_state
from ._common import bank_input, check_backend, check_float_tensor, register


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
        check_float_tensor("a_coeffs", a_coeffs, 2, "(C, Ka)")
        check_float_tensor("b_coeffs", b_coeffs, 2, "(C, Kb)")
        if a_coeffs.dtype != b_coeffs.dtype:
            raise TypeError(f"expected one dtype, got a_coeffs {a_coeffs.dtype}, b_coeffs {b_coeffs.dtype}")
        if a_coeffs.shape[0] != b_coeffs.shape[0] and 1 not in (a_coeffs.shape[0], b_coeffs.shape[0]):
            raise ValueError(
                f"expected a_coeffs and b_coeffs with the same number of filters, got "
                f"{list(a_coeffs.shape)} and {list(b_coeffs.shape)}"
            )
        check_backend(backend)
        register(self, "a_coeffs", a_coeffs, learnable)
        register(self, "b_coeffs", b_coeffs, learnable)
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
            bank_input(waveform, wide_parameter(self.a_coeffs).dtype), wide_parameter(self.a_coeffs), wide_parameter(self.b_coeffs), zi, self.backend
        )

    def extra_repr(self) -> str:
        backend = "" if self.backend == "auto" else f", backend={self.backend!r}"
        return f"n_filters={self.n_filters}, order={self.order}, learnable={self.learnable}{backend}"
