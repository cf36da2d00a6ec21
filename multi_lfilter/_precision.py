"""Compute precision: the one owner of how half-precision inputs are widened.

float16 and bfloat16 signals are accepted everywhere and filtered in a wider type,
then returned in their own dtype: float64 where the coefficients are float64 (the
policy of every backend), else float32 (what a model under ``torch.autocast`` hands
a float32 filter bank). Coefficients are normalised in float64 whatever the signal's
dtype (``_validation.normalize_coefficients``). Modules compute their coefficients
from half-precision parameters in float32 (``wide_parameter``).
"""
from typing import Optional, Tuple

import torch
from torch import Tensor


def is_half(dtype: torch.dtype) -> bool:
    """float16 or bfloat16: accepted, filtered in a wider type (see ``widen_half``)."""
    return dtype == torch.float16 or dtype == torch.bfloat16


def widen_half(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]
) -> Tuple[Tensor, Tensor, Tensor, Optional[Tensor]]:
    """The inputs with every half-precision tensor widened, where the waveform is half.

    The compute type is float64 where the coefficients are, else float32. The caller
    casts the results back to the waveform's dtype.
    """
    wide = torch.float64 if a_coeffs.dtype == torch.float64 or b_coeffs.dtype == torch.float64 else torch.float32
    if is_half(waveform.dtype):
        waveform = waveform.to(wide)
    if is_half(a_coeffs.dtype):
        a_coeffs = a_coeffs.to(wide)
    if is_half(b_coeffs.dtype):
        b_coeffs = b_coeffs.to(wide)
    if zi is not None and is_half(zi.dtype):
        zi = zi.to(wide)
    return waveform, a_coeffs, b_coeffs, zi


def wide_parameter(values: Tensor) -> Tensor:
    """A Module's half-precision parameters (a ``.half()`` or ``.bfloat16()`` bank) in
    float32, so its coefficients, stability margins included, are computed in float32."""
    return values.float() if is_half(values.dtype) else values
