"""What every bank Module shares: input shaping, argument checks, parameter registration."""
import torch
from torch import Tensor, nn

from .._precision import is_half
from .._validation import check_is_tensor, dtype_name
from ..backends.dispatch import BACKEND_CHOICES


def bank_input(waveform: Tensor, bank_dtype: torch.dtype) -> Tensor:
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


def check_backend(backend: str) -> None:
    if backend not in BACKEND_CHOICES:
        raise ValueError(f"expected backend to be one of {list(BACKEND_CHOICES)}, got {backend!r}")


def check_float_tensor(name: str, value, ndim: int, layout: str) -> None:
    check_is_tensor(name, value)
    if value.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"expected {name} to be float32 or float64, got {value.dtype}")
    if value.dim() != ndim:
        raise ValueError(f"expected {name} of shape {layout}, got {list(value.shape)}")


def register(module: nn.Module, name: str, value: Tensor, learnable: bool) -> None:
    """A parameter if ``learnable``, else a buffer: either way it is in the ``state_dict``."""
    value = value.detach().clone()
    if learnable:
        module.register_parameter(name, nn.Parameter(value))
    else:
        module.register_buffer(name, value)
