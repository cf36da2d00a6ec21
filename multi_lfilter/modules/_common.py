"""What every bank Module shares: input shaping, argument checks (frame-rate values
included), parameter registration."""
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from .._precision import is_half
from .._shapes import broadcast_batch_shape
from .._validation import check_is_tensor, dtype_name, value_checks_allowed
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


# --- frame-rate values (network-controlled filters) ------------------------------------------


def frame_rate_value(name: str, value: Tensor, n_filters: int, bank: Tensor, core_ndim: int, layout: str) -> Tensor:
    """One frame-rate value, ``(..., C or 1, F, *core)``, checked against the bank and
    returned in the bank's dtype (a half-precision value is widened, as a waveform is).

    ``bank`` is any of the bank's (widened) tensors: it gives the dtype and device.
    """
    if not torch.jit.is_scripting():
        check_is_tensor(name, value)
    if is_half(value.dtype):
        value = value.to(bank.dtype)
    if value.dtype != bank.dtype:
        raise TypeError(
            f"expected {name} of the bank's dtype {dtype_name(bank.dtype)}, got {dtype_name(value.dtype)}"
        )
    if value.device != bank.device:
        raise ValueError(f"expected {name} on the bank's device {str(bank.device)}, got {str(value.device)}")
    if value.dim() < 2 + core_ndim or (value.shape[-2 - core_ndim] != n_filters and value.shape[-2 - core_ndim] != 1):
        raise ValueError(f"expected {name} of shape {layout} with C = {n_filters} (or 1), got {list(value.shape)}")
    return value


def frame_count(named: List[Tuple[str, Tensor]], core_ndim: int) -> int:
    """The number of frames ``F`` of frame-rate values given together, each
    ``(..., C, F or 1, *core)`` (checked by :func:`frame_rate_value`); ``ValueError``
    where their frames or leading dims disagree."""
    leading = [list(value.shape[: -1 - core_ndim]) for _, value in named]
    if broadcast_batch_shape(leading) is None:
        shapes = ", ".join([f"{name} {list(value.shape)}" for name, value in named])
        raise ValueError(f"expected frame-rate values whose leading dims (before F) broadcast, got {shapes}")
    frames = 1
    frames_name = ""
    for name, value in named:
        count = value.shape[-1 - core_ndim]
        if count != 1:
            if frames != 1 and count != frames:
                raise ValueError(
                    f"expected one number of frames (or 1), got {frames} in {frames_name} and {count} in {name}"
                )
            frames, frames_name = count, name
    return frames


def check_frames(
    named: List[Tuple[str, Tensor]], designed: Tensor, core_ndim: int, waveform: Tensor, hop_length: Optional[int]
) -> None:
    """Checks frame-rate values against the call: a ``hop_length``, frames that cover
    the waveform (``F >= ceil(T / hop_length)``, or one frame: constant) and leading
    dims that broadcast with the waveform's.

    ``named`` holds the values given (at least one), ``designed`` the
    ``(..., C, F, *core)`` coefficients or sections designed from them.
    """
    names = ", ".join([name for name, _ in named])
    if hop_length is None:
        raise ValueError(f"expected hop_length (samples between frames) with frame-rate {names}, got None")
    if not torch.jit.is_scripting():
        if isinstance(hop_length, bool) or not isinstance(hop_length, int):
            raise TypeError(f"expected hop_length to be an int, got {type(hop_length).__name__}")
    if hop_length < 1:
        raise ValueError(f"expected hop_length >= 1, got {hop_length}")
    shapes = ", ".join([f"{name} {list(value.shape)}" for name, value in named])
    frames = designed.shape[-1 - core_ndim]
    length = waveform.shape[-1]
    needed = max(1, -(-length // hop_length))
    if frames != 1 and frames < needed:
        raise ValueError(
            f"expected frame-rate values with at least ceil(T / hop_length) = {needed} frames for T = {length} "
            f"and hop_length = {hop_length}, got {frames} frames ({shapes})"
        )
    leading = [list(waveform.shape[:-1]) + [1], list(designed.shape[: -1 - core_ndim])]
    if broadcast_batch_shape(leading) is None:
        raise ValueError(
            f"expected the frame-rate values' leading dims (before (C, F)) to broadcast with the waveform's, "
            f"got waveform {list(waveform.shape)}, {shapes}"
        )


def check_no_hop(hop_length: Optional[int], names: str) -> None:
    """Without frame-rate values a ``hop_length`` is a mistake (values passed in the
    wrong place, or forgotten)."""
    if hop_length is not None:
        raise ValueError(f"expected hop_length=None without frame-rate values ({names}), got {hop_length}")


@torch.jit.unused
def check_range(name: str, value: Tensor, low: float, high: float, unit: str = "") -> None:
    """``ValueError`` for values outside ``[low, high]`` (eager only; skipped where
    :func:`value_checks_allowed` says reading values is not allowed).

    The bounds get a relative slack of ``1e-6``: values mapped onto the closed range in
    float32 (a sigmoid that saturates) may round just past it.
    """
    if not value_checks_allowed(value):
        return
    slack = 1e-6
    inside = (value >= low - slack * abs(low)) & (value <= high + slack * abs(high))
    if not bool(inside.all()):
        shown = value.detach()[~inside].tolist()
        raise ValueError(
            f"expected {low:g} <= {name} <= {high:g}{unit} at every frame (the bank's range), got "
            f"{shown[:5]}{' ...' if len(shown) > 5 else ''}"
        )
