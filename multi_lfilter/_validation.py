"""Input checks and coefficient normalisation for the functional API.

TorchScript-compatible, so the scripted path raises the same errors. Every message
reads "expected ..., got ..." and names the offending shapes, dtypes or devices.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ._precision import is_half, real_dtype
from ._shapes import broadcast_batch_shape


def _named_inputs(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]
) -> List[Tuple[str, Tensor]]:
    named = [("waveform", waveform), ("a_coeffs", a_coeffs), ("b_coeffs", b_coeffs)]
    if zi is not None:
        named.append(("zi", zi))
    return named


def dtype_name(dtype: torch.dtype) -> str:
    """``"torch.float32"`` and so on, also under TorchScript (which formats a dtype as
    its enum number)."""
    if dtype == torch.float32:
        return "torch.float32"
    if dtype == torch.float64:
        return "torch.float64"
    if dtype == torch.float16:
        return "torch.float16"
    if dtype == torch.bfloat16:
        return "torch.bfloat16"
    if dtype == torch.int64:
        return "torch.int64"
    if dtype == torch.int32:
        return "torch.int32"
    if dtype == torch.int16:
        return "torch.int16"
    if dtype == torch.int8:
        return "torch.int8"
    if dtype == torch.uint8:
        return "torch.uint8"
    if dtype == torch.bool:
        return "torch.bool"
    if dtype == torch.complex64:
        return "torch.complex64"
    if dtype == torch.complex128:
        return "torch.complex128"
    return str(dtype)


def check_is_tensor(name: str, value, optional: bool = False) -> None:
    """``TypeError`` unless ``value`` is a tensor (or ``None`` where ``optional``).

    Eager-only: under TorchScript the type annotations already enforce this (callers
    guard with ``torch.jit.is_scripting()``).
    """
    if optional and value is None:
        return
    if not isinstance(value, Tensor):
        wanted = "a torch.Tensor or None" if optional else "a torch.Tensor"
        raise TypeError(f"expected {name} to be {wanted}, got {type(value).__name__}")


def check_filter_inputs_are_tensors(waveform, a_coeffs, b_coeffs, zi) -> None:
    """Eager-only: ``TypeError`` for any input that is not a tensor."""
    for name, value in (("waveform", waveform), ("a_coeffs", a_coeffs), ("b_coeffs", b_coeffs)):
        check_is_tensor(name, value)
    check_is_tensor("zi", zi, optional=True)


def check_coefficients(a_coeffs: Tensor, b_coeffs: Tensor) -> None:
    """Raise ``TypeError``/``ValueError`` for a filter bank no function can use: the
    checks of :func:`check_filter_inputs` that concern the coefficients alone."""
    if not torch.jit.is_scripting():
        check_is_tensor("a_coeffs", a_coeffs)
        check_is_tensor("b_coeffs", b_coeffs)
    named = [("a_coeffs", a_coeffs), ("b_coeffs", b_coeffs)]
    check_kinds_and_sizes(named, a_coeffs, b_coeffs, allow_complex=True)
    if broadcast_batch_shape([list(a_coeffs.shape[:-1]), list(b_coeffs.shape[:-1])]) is None:
        raise ValueError(f"expected the leading dims of the inputs to broadcast, got {_describe(named, 'shape')}")


def check_kinds_and_sizes(
    named: List[Tuple[str, Tensor]], a_coeffs: Tensor, b_coeffs: Tensor, allow_complex: bool = False
) -> None:
    """Dtypes, one device, no scalars, no empty coefficient lists: the checks every
    caller shares.

    The dtypes are float32 or float64, one for all; with ``allow_complex`` (the
    functions that filter complex signals) complex64 and complex128 too, all of one
    precision (float32 with complex64, float64 with complex128: ``_precision``).
    """
    for name, tensor in named:
        if not _accepted_dtype(tensor.dtype, allow_complex):
            if allow_complex:
                raise TypeError(
                    f"expected {name} to be float32 or float64, got {dtype_name(tensor.dtype)} "
                    "(complex64 and complex128 are accepted too; convert integer inputs with .float() or .double())"
                )
            raise TypeError(
                f"expected {name} to be float32 or float64, got {dtype_name(tensor.dtype)} "
                "(integer and complex inputs are not supported; convert with .float() or .double())"
            )
    first = named[0][1]
    any_complex = False
    for name, tensor in named:
        any_complex = any_complex or tensor.is_complex()
    for name, tensor in named:
        if real_dtype(tensor.dtype) != real_dtype(first.dtype):
            if any_complex:
                raise TypeError(
                    "expected one precision for all inputs (float32 with complex64, float64 with complex128), "
                    f"got {_describe(named, 'dtype')}"
                )
            raise TypeError(f"expected one dtype for all inputs, got {_describe(named, 'dtype')}")
    for name, tensor in named:
        if tensor.device != first.device:
            raise ValueError(f"expected one device for all inputs, got {_describe(named, 'device')}")
    for name, tensor in named:
        if tensor.dim() == 0:
            raise ValueError(f"expected {name} to have at least one dimension, got a scalar")
    if a_coeffs.shape[-1] == 0 or b_coeffs.shape[-1] == 0:
        raise ValueError(
            f"expected at least one coefficient in a_coeffs and b_coeffs, got {_describe(named, 'shape')}"
        )


def _accepted_dtype(dtype: torch.dtype, allow_complex: bool) -> bool:
    if dtype == torch.float32 or dtype == torch.float64:
        return True
    return allow_complex and (dtype == torch.complex64 or dtype == torch.complex128)


def _describe(named: List[Tuple[str, Tensor]], what: str) -> str:
    parts: List[str] = []
    for name, tensor in named:
        if what == "shape":
            parts.append(f"{name} {list(tensor.shape)}")
        elif what == "dtype":
            parts.append(f"{name} {dtype_name(tensor.dtype)}")
        else:
            parts.append(f"{name} {tensor.device}")
    return ", ".join(parts)


def check_filter_inputs(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]
) -> None:
    """Raise ``TypeError``/``ValueError`` for anything ``lfilter_bank`` cannot filter."""
    if not torch.jit.is_scripting():
        check_filter_inputs_are_tensors(waveform, a_coeffs, b_coeffs, zi)
    named = _named_inputs(waveform, a_coeffs, b_coeffs, zi)
    check_kinds_and_sizes(named, a_coeffs, b_coeffs, allow_complex=True)

    order = max(a_coeffs.shape[-1], b_coeffs.shape[-1]) - 1
    length = waveform.shape[-1]
    if length > 0 and order > 1024 and order > 64 * length:
        # What scipy's argument order, lfilter_bank(b, a, x), looks like here.
        raise ValueError(
            f"expected a filter order at most 64 times the signal's length (or at most 1024), got "
            f"order {order} for a signal of {length} samples; the arguments are (waveform, a_coeffs, "
            "b_coeffs), torchaudio's order, while scipy's lfilter(b, a, x) puts the signal last"
        )
    if zi is not None and zi.shape[-1] != order:
        raise ValueError(
            f"expected zi of shape (..., {order}) for filters of order {order} "
            f"(max(Ka, Kb) - 1), got zi {list(zi.shape)}"
        )

    leading = [list(tensor.shape[:-1]) for _, tensor in named]
    if broadcast_batch_shape(leading) is None:
        message = (
            "expected the leading dims of the inputs to broadcast, got "
            f"{_describe(named, 'shape')}"
        )
        if waveform.dim() >= 2 and a_coeffs.dim() >= 2 and waveform.dim() == a_coeffs.dim():
            message += (
                "; to run every filter over every signal, insert a filter dim: "
                "waveform.unsqueeze(-2) has shape (..., 1, T)"
            )
        raise ValueError(message)


def data_checks_allowed() -> bool:
    """Whether checks that read the data (like a zero ``a0``) may run: everywhere but
    inside a ``torch.compile`` graph, which they would break, a ``torch.jit.trace``,
    which would record their outcome as a constant, and under ``torch.func``
    transforms (``vmap`` cannot branch on values)."""
    if torch.jit.is_scripting():
        return True
    return not (torch.compiler.is_compiling() or torch.jit.is_tracing() or _functorch_active())


def value_checks_allowed(tensor: Tensor) -> bool:
    """Whether a filter call checks values (a zero ``a0``; the block algorithm's test
    for non-finite inputs): where :func:`data_checks_allowed` and for CPU tensors.

    On a GPU, reading a value makes the host wait for the device (a sync per call,
    which also breaks CUDA-graph capture), so CUDA calls skip these checks: a zero
    ``a0`` gives non-finite outputs for its filter instead of an error, and the block
    algorithm lets a non-finite input spoil its whole block (``docs/errors.rst``).
    Meta tensors have no values to check.
    """
    return tensor.device.type == "cpu" and data_checks_allowed()


@torch.jit.unused
def _functorch_active() -> bool:
    return torch._C._are_functorch_transforms_active()


@torch.jit.unused
def transforms_active() -> bool:
    """Whether a ``torch.func`` transform (``vmap``, ``grad``, ``jvp``...) or a
    ``torch.autograd.forward_ad`` dual level is active: such calls need the op's
    ``autograd.Function`` (``_op.FilterFunction``)."""
    return _functorch_active() or torch.autograd.forward_ad._current_level >= 0


def normalize_coefficients(
    a_coeffs: Tensor, b_coeffs: Tensor, check_leading: bool = True, complex_result: bool = False
) -> Tuple[Tensor, Tensor]:
    """Zero-pad ``a`` and ``b`` to one length ``K`` and divide both by ``a[..., 0]``, in
    float64, or complex128 where either is complex or ``complex_result`` (a complex
    signal through real coefficients): the kernels' compute dtype (``_precision``).

    Raises ``ValueError`` where any ``a[..., 0]`` is zero (the filter is undefined),
    unless ``check_leading`` is False: that check reads the data, which a
    ``torch.compile`` graph cannot do without breaking and a GPU cannot do without a
    sync (callers pass :func:`value_checks_allowed`).

    Filters with poles near the unit circle are very sensitive to their coefficients:
    rounding ``a / a0`` to float32 alone moves a float32 result by up to 1e-3 of max|y|.
    So the kernels receive double-precision coefficients whatever the waveform's dtype
    (they are tiny next to the signal), and gradients flow back through the cast.
    """
    if complex_result or a_coeffs.is_complex() or b_coeffs.is_complex():
        a_coeffs = a_coeffs.to(torch.complex128)
        b_coeffs = b_coeffs.to(torch.complex128)
    else:
        a_coeffs = a_coeffs.double()
        b_coeffs = b_coeffs.double()
    length = max(a_coeffs.shape[-1], b_coeffs.shape[-1])
    if a_coeffs.shape[-1] < length:
        a_coeffs = torch.nn.functional.pad(a_coeffs, [0, length - a_coeffs.shape[-1]])
    if b_coeffs.shape[-1] < length:
        b_coeffs = torch.nn.functional.pad(b_coeffs, [0, length - b_coeffs.shape[-1]])
    leading = a_coeffs[..., :1]
    if check_leading and bool((leading == 0).any()):
        raise ValueError(
            "expected a_coeffs[..., 0] != 0 (coefficients are normalised by it), got a zero "
            f"in a_coeffs of shape {list(a_coeffs.shape)}"
        )
    return a_coeffs / leading, b_coeffs / leading


def check_sections(sos: Tensor, allow_half: bool = False) -> None:
    """The dtype (float32, float64, complex64 or complex128; float16/bfloat16 too where
    ``allow_half``: the caller widens them) and the ``(..., S, 6)`` shape of sections."""
    if not _accepted_dtype(sos.dtype, True) and not (allow_half and is_half(sos.dtype)):
        raise TypeError(f"expected sos to be float32 or float64, got {dtype_name(sos.dtype)} (complex64 and complex128 are accepted too)")
    if sos.dim() < 2 or sos.shape[-1] != 6 or sos.shape[-2] == 0:
        raise ValueError(f"expected sos of shape (..., S, 6) with S >= 1 sections, got {list(sos.shape)}")


def check_sos_inputs(waveform: Tensor, sos: Tensor, zi: Optional[Tensor]) -> None:
    """What every cascade function checks first: tensors, and sections it can take
    (half precision included: the cascade widens it)."""
    if not torch.jit.is_scripting():
        check_is_tensor("waveform", waveform)
        check_is_tensor("sos", sos)
        check_is_tensor("zi", zi, optional=True)
    check_sections(sos, allow_half=True)
