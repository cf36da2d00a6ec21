"""Banks of IIR filters for PyTorch: exact, fast, differentiable.

Example:
    >>> import torch, multi_lfilter
    >>> a = torch.tensor([[1.0, -1.6, 0.8], [1.0, -0.2, 0.5]])   # (C, K)
    >>> b = torch.tensor([[0.1, 0.0, -0.1], [0.3, 0.3, 0.0]])
    >>> multi_lfilter.lfilter_bank(torch.randn(4, 1, 1000), a_coeffs=a, b_coeffs=b).shape
    torch.Size([4, 2, 1000])
"""
from . import design
from .backends.dispatch import available_backends, warn_if_the_op_library_is_missing
from .backends.native import library_path
from .cascades import sosfilt_bank, sosfilt_bank_with_state
from .compat import lfilter
from .design import freqz_bank
from .export_modes import export_mode, to_portable
from .functional import lfilter_bank, lfilter_bank_with_state
from .modules import BiquadFilterBank, ButterworthFilterBank, CascadeFilterBank, LFilterBank, SOSFilterBank
from .steady_state import lfilter_zi_bank, sosfilt_zi_bank
from .varying import lfilter_varying, lfilter_varying_with_state, sosfilt_varying, sosfilt_varying_with_state
from .zero_phase import filtfilt_bank, sosfiltfilt_bank

__all__ = [
    "BiquadFilterBank",
    "ButterworthFilterBank",
    "CascadeFilterBank",
    "LFilterBank",
    "SOSFilterBank",
    "available_backends",
    "design",
    "export_mode",
    "filtfilt_bank",
    "freqz_bank",
    "lfilter",
    "lfilter_bank",
    "lfilter_bank_with_state",
    "lfilter_varying",
    "lfilter_varying_with_state",
    "lfilter_zi_bank",
    "library_path",
    "sosfilt_bank",
    "sosfilt_bank_with_state",
    "sosfilt_varying",
    "sosfilt_varying_with_state",
    "sosfilt_zi_bank",
    "sosfiltfilt_bank",
    "to_portable",
]

__version__ = "0.1.0"

warn_if_the_op_library_is_missing()
