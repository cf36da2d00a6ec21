"""Compute precision and result dtype: the one owner of the dtype rules.

- A call's inputs share one precision: single (float32, complex64) or double
  (float64, complex128); mixing them is refused (``_validation.check_kinds_and_sizes``
  words the error).
- Its result is complex where any input is (a real waveform through complex
  coefficients, or a complex waveform through real ones), else real, in that precision
  (:func:`result_dtype`): float32 with complex64 gives complex64.
- The kernels compute in double precision whatever the signal's (:func:`compute_dtype`):
  coefficients are normalised in float64, or complex128 for a complex call
  (``_validation.normalize_coefficients``), and results are rounded once.
- float16 and bfloat16 signals are accepted everywhere and filtered in a wider type,
  then returned in their own dtype: float64 where the coefficients are float64 (the
  policy of every backend), else float32 (what a model under ``torch.autocast`` hands
  a float32 filter bank). Their results are real, so their coefficients and state must
  be too. Modules compute their coefficients from half-precision parameters in float32
  (``wide_parameter``).
"""
from typing import Optional, Tuple

import torch
from torch import Tensor


def is_half(dtype: torch.dtype) -> bool:
    """float16 or bfloat16: accepted, filtered in a wider type (see ``widen_half``)."""
    return dtype == torch.float16 or dtype == torch.bfloat16


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    """The precision of a dtype: float32 for complex64, float64 for complex128, else itself."""
    if dtype == torch.complex64:
        return torch.float32
    if dtype == torch.complex128:
        return torch.float64
    return dtype


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """complex64 for float32, complex128 for float64; complex dtypes stay themselves."""
    if dtype == torch.float32:
        return torch.complex64
    if dtype == torch.float64:
        return torch.complex128
    return dtype


def is_complex_call(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]) -> bool:
    """Whether a call's result is complex: whether any of its inputs is."""
    return waveform.is_complex() or a_coeffs.is_complex() or b_coeffs.is_complex() or (
        zi is not None and zi.is_complex()
    )


def result_dtype(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]) -> torch.dtype:
    """The dtype of a call's output for checked inputs (one precision): the waveform's,
    made complex where any input is complex.

    Example:
        >>> import torch
        >>> from multi_lfilter._precision import result_dtype
        >>> result_dtype(torch.zeros(3), torch.ones(2, dtype=torch.complex64), torch.ones(1), None)
        torch.complex64
    """
    if is_complex_call(waveform, a_coeffs, b_coeffs, zi):
        return complex_dtype(waveform.dtype)
    return waveform.dtype


def compute_dtype(tensor: Tensor) -> torch.dtype:
    """The dtype the kernels compute in for a call whose result is like ``tensor``:
    complex128 for complex results, float64 otherwise (the normalised coefficients'
    dtype, so a kernel reads it from them)."""
    return torch.complex128 if tensor.is_complex() else torch.float64


def to_result_dtype(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]
) -> Tuple[Tensor, Optional[Tensor]]:
    """The waveform and ``zi`` in the call's result dtype (unchanged for real calls;
    a real waveform through complex coefficients is copied once, as complex, never once
    per filter). Gradients flow back through the cast (their real part, for a real
    input), as PyTorch's complex autograd convention has it."""
    dtype = result_dtype(waveform, a_coeffs, b_coeffs, zi)
    if waveform.dtype != dtype:
        waveform = waveform.to(dtype)
    if zi is not None and zi.dtype != dtype:
        zi = zi.to(dtype)
    return waveform, zi


def widen_half(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]
) -> Tuple[Tensor, Tensor, Tensor, Optional[Tensor]]:
    """The inputs with every half-precision tensor widened, where the waveform is half.

    The compute type is float64 where the coefficients are, else float32. The caller
    casts the results back to the waveform's dtype, so they must be real: complex
    coefficients or state with a half-precision waveform are a ``TypeError``.
    """
    if is_half(waveform.dtype):
        if a_coeffs.is_complex() or b_coeffs.is_complex() or (zi is not None and zi.is_complex()):
            raise TypeError(
                "expected real a_coeffs, b_coeffs and zi with a float16 or bfloat16 waveform (whose result is "
                "real), got complex ones; convert the waveform with .float() or .double() for a complex result"
            )
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
