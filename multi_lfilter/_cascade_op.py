"""The cascade op: ``multi_lfilter::sosfilt``, registered once with ``torch.library``.

``sosfilt(waveform, a, b, zi, backend) -> (y, zf)`` takes ``(..., S, 3)`` normalised
float64 coefficients per section and ``(..., S, 2)`` states, and runs the cascade
through ``backends.cascade_dispatch`` (one pass with the native kernels). Like the filter op
(``_op``) it has a fake implementation, so ``torch.compile`` sees one node, and an
autograd formula whose backward is a second opaque op, ``sosfilt_adjoint``: no
intermediate signal per section is kept for backward. Double backward recomputes the
cascade section by section through the differentiable filter and differentiates
that.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ._adjoint import recorded_gradients
from ._call_mode import backward_builds_graph
from ._op import kernel_op_context
from ._sections import sections_one_by_one
from ._shapes import cascade_batch_shape
from .backends import cascade_dispatch, native
from .backends import triton as triton_backend
from .backends.dispatch import backend_for_call, registered, traces_triton


def resolve_cascade_backend(name: str, waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], read_data: bool = True) -> str:
    """The concrete backend for a cascade (``backend_for_call`` on its first section's shapes)."""
    section_zi = None if zi is None else zi[..., 0, :]
    return backend_for_call(name, waveform, a_coeffs[..., 0, :], b_coeffs[..., 0, :], section_zi, read_data)


@torch.library.custom_op("multi_lfilter::sosfilt", mutates_args=())
def sosfilt_op(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], backend: str
) -> Tuple[Tensor, Tensor]:
    """``(y, zf)`` of a cascade; the backend is resolved here, from the tensors received."""
    name = resolve_cascade_backend(backend, waveform, a_coeffs, b_coeffs, zi)
    return cascade_dispatch.forward(name, waveform, a_coeffs, b_coeffs, zi)


@sosfilt_op.register_fake
def _sosfilt_fake(waveform, a_coeffs, b_coeffs, zi, backend):
    batch = cascade_batch_shape(waveform, a_coeffs, b_coeffs, zi)
    return waveform.new_empty(batch + [waveform.shape[-1]]), waveform.new_empty(batch + [a_coeffs.shape[-2], 2])


@torch.library.custom_op("multi_lfilter::sosfilt_adjoint", mutates_args=())
def sosfilt_adjoint_op(
    grad_y: Optional[Tensor],
    grad_zf: Optional[Tensor],
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor],
    needs_input_grad: List[bool],
    backend: str,
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """The cascade's adjoint as an opaque op; gradients not asked for come back empty."""
    name = resolve_cascade_backend(backend, waveform, a_coeffs, b_coeffs, zi)
    gradients = cascade_dispatch.adjoint(name, grad_y, grad_zf, waveform, a_coeffs, b_coeffs, zi, tuple(needs_input_grad))
    return tuple(g if g is not None else waveform.new_empty(0) for g in gradients)


@sosfilt_adjoint_op.register_fake
def _sosfilt_adjoint_fake(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, zi, needs_input_grad, backend):
    need_waveform, need_a, need_b, need_zi = needs_input_grad
    return (
        waveform.new_empty(waveform.shape if need_waveform else [0]),
        a_coeffs.new_empty(a_coeffs.shape if need_a else [0]),
        b_coeffs.new_empty(b_coeffs.shape if need_b else [0]),
        waveform.new_empty(zi.shape if need_zi and zi is not None else [0]),
    )


def graph_sosfilt(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], backend: str
) -> Tuple[Tensor, Tensor]:
    """The op a graph records for a cascade: the Triton op where the call runs the
    Triton kernels in one pass on a GPU (as ``_op.graph_filter``), else ``sosfilt``."""
    section_zi = None if zi is None else zi[..., 0, :]
    one_pass = a_coeffs.shape[-2] <= registered("triton").max_sections()
    if one_pass and traces_triton(backend, waveform, a_coeffs[..., 0, :], b_coeffs[..., 0, :], section_zi):
        return triton_backend.sosfilt_op(waveform, a_coeffs, b_coeffs, zi)
    return sosfilt_op(waveform, a_coeffs, b_coeffs, zi, backend)


def _setup_context(ctx, inputs, output):
    waveform, a_coeffs, b_coeffs, zi, backend = inputs
    ctx.has_zi = zi is not None
    ctx.save_for_backward(waveform, a_coeffs, b_coeffs, zi if zi is not None else waveform.new_empty(0))
    ctx.backend = backend
    ctx.kernels = None  # the op resolves its backend: its own adjoint op does too


def _backward(ctx, grad_y, grad_zf):
    waveform, a_coeffs, b_coeffs, zi = ctx.saved_tensors
    zi = zi if ctx.has_zi else None
    needs = list(ctx.needs_input_grad[:4])
    needs[3] = needs[3] and zi is not None
    inputs = (waveform, a_coeffs, b_coeffs, zi)
    building_graph = backward_builds_graph([grad_y, grad_zf, waveform, a_coeffs, b_coeffs, zi])
    if building_graph:
        # Double backward: differentiate the cascade recomputed section by section.
        with torch.enable_grad():
            y, zf = sections_one_by_one(waveform, a_coeffs, b_coeffs, zi, ctx.backend)
        gradients = recorded_gradients([y, zf], [grad_y, grad_zf], list(inputs), needs)
        return (*gradients, None)
    if ctx.kernels is not None:
        outputs = ctx.kernels.sosfilt_adjoint_op(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, zi, needs)
    else:
        outputs = sosfilt_adjoint_op(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, zi, needs, ctx.backend)
    return (*[g if need else None for g, need in zip(outputs, needs)], None)


def _triton_backward(ctx, grad_y, grad_zf):
    return _backward(ctx, grad_y, grad_zf)[:4]


sosfilt_op.register_autograd(_backward, setup_context=_setup_context)
triton_backend.sosfilt_op.register_autograd(
    _triton_backward, setup_context=kernel_op_context(_setup_context, triton_backend, "triton")
)
if native.available():
    torch.library.register_autograd(
        "multi_lfilter::native_sosfilt", _backward, setup_context=kernel_op_context(_setup_context, native, "native")
    )
