"""A drop-in for ``torchaudio.functional.lfilter``: same signature, defaults and shapes."""
import torch
from torch import Tensor

from ._precision import is_complex_call
from ._validation import check_is_tensor
from .functional import lfilter_bank


def lfilter(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, clamp: bool = True, batching: bool = True
) -> Tensor:
    r"""IIR filter with ``torchaudio.functional.lfilter``'s interface, on the bank kernels.

    Switching from torchaudio is one import; the difference from :func:`lfilter_bank`
    is only in the shape conventions and the optional clamp.

    Args:
        waveform: ``(..., T)``.
        a_coeffs: ``(K,)`` or ``(C, K)`` denominator coefficients ``[a0, a1, ...]``.
        b_coeffs: the numerator, the same shape as ``a_coeffs``.
        clamp: clamp the output to ``[-1, 1]`` (torchaudio's default); must be
            ``False`` for complex inputs (see :func:`lfilter_bank` for complex filters).
        batching: with ``(C, K)`` coefficients, ``True`` filters channel ``i`` of a
            ``(..., C, T)`` waveform with filter ``i``; ``False`` runs every filter over
            the whole ``(..., T)`` waveform (the input is not copied per filter).

    Returns:
        ``(..., T)`` for 1-D coefficients, ``(..., C, T)`` for 2-D ones.

    Raises:
        ValueError: for coefficient shapes that differ or are not 1-D/2-D, a
            waveform whose channel dim does not match ``C`` with ``batching=True``, or
            ``clamp=True`` with complex inputs; and everything :func:`lfilter_bank`
            raises.

    Example:
        >>> import torch
        >>> from multi_lfilter import lfilter
        >>> a = torch.tensor([[1.0, -0.5], [1.0, 0.3]])
        >>> b = torch.tensor([[0.5, 0.0], [1.0, 0.2]])
        >>> lfilter(torch.rand(4, 100) - 0.5, a, b, batching=False).shape
        torch.Size([4, 2, 100])
    """
    if not torch.jit.is_scripting():
        for name, value in (("waveform", waveform), ("a_coeffs", a_coeffs), ("b_coeffs", b_coeffs)):
            check_is_tensor(name, value)
    if a_coeffs.shape != b_coeffs.shape:
        raise ValueError(
            "expected a_coeffs and b_coeffs of the same shape (pad with zeros as necessary), "
            f"got a_coeffs {list(a_coeffs.shape)} and b_coeffs {list(b_coeffs.shape)}"
        )
    if a_coeffs.dim() not in (1, 2):
        raise ValueError(
            f"expected 1-D (K,) or 2-D (C, K) coefficients, got shape {list(a_coeffs.shape)}"
        )
    if a_coeffs.dim() == 2:
        if batching:
            if waveform.dim() < 2 or waveform.shape[-2] != a_coeffs.shape[0]:
                raise ValueError(
                    f"expected waveform of shape (..., {a_coeffs.shape[0]}, T) with batching=True "
                    f"and {a_coeffs.shape[0]} filters, got waveform {list(waveform.shape)}"
                )
        else:
            waveform = waveform.unsqueeze(-2)
    if clamp and is_complex_call(waveform, a_coeffs, b_coeffs, None):
        raise ValueError("expected clamp=False for complex inputs (a complex output has no [-1, 1] range), got clamp=True")
    output = lfilter_bank(waveform, a_coeffs, b_coeffs)
    if clamp:
        output = torch.clamp(output, min=-1.0, max=1.0)
    return output
