"""The differentiable filtering op, registered once with ``torch.library``.

``multi_lfilter::filter(waveform, a, b, zi, backend) -> (y, zf)`` takes normalised
coefficients of one length ``K`` and inputs whose leading dims broadcast; it never
expands the waveform. It has

- a fake (meta) implementation, so ``torch.compile`` sees one opaque node;
- an autograd formula, the analytic adjoint (``_adjoint.py``): no autograd through
  the time loop.

Backward runs the backend's own adjoint kernel (``multi_lfilter::filter_adjoint``, an
opaque op too, so ``torch.compile`` traces backward without looking inside) when no
graph is being built. When one is (``create_graph=True``, double backward), it runs
the composite adjoint over this same op instead, so every higher derivative is again
made of differentiable pieces.

A graph (``torch.compile``, ``torch.jit.trace``) records :func:`graph_filter`: this
op, or, where the call runs the Triton kernels on a GPU, the Triton op
(``multi_lfilter::triton_filter``, a ``torch.library.triton_op``) with the same
autograd formula, so the compiler sees the kernels themselves.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ._adjoint import filter_adjoint
from ._call_mode import backward_builds_graph
from ._shapes import filter_batch_shape
from .backends import native, triton as triton_backend
from .backends.dispatch import backend_for_call, backend_module, traces_triton


@torch.library.custom_op("multi_lfilter::filter", mutates_args=())
def filter_op(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], backend: str
) -> Tuple[Tensor, Tensor]:
    """``(y, zf)`` of ``(..., T)`` through normalised ``(..., K)`` filters; see module doc.

    ``backend`` is the name asked for (``"auto"`` by default), resolved here, when the
    op runs, from the tensors it receives.
    """
    name = backend_for_call(backend, waveform, a_coeffs, b_coeffs, zi)
    return backend_module(name).forward(waveform, a_coeffs, b_coeffs, zi)


@filter_op.register_fake
def _filter_op_fake(waveform, a_coeffs, b_coeffs, zi, backend):
    batch = filter_batch_shape(waveform, a_coeffs, b_coeffs, zi)
    order = a_coeffs.shape[-1] - 1
    y = waveform.new_empty(batch + [waveform.shape[-1]])
    zf = waveform.new_empty(batch + [order])
    return y, zf


@torch.library.custom_op("multi_lfilter::filter_adjoint", mutates_args=())
def filter_adjoint_op(
    grad_y: Optional[Tensor],
    grad_zf: Optional[Tensor],
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    y: Tensor,
    zi_shape: List[int],
    needs_input_grad: List[bool],
    backend: str,
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """The backend's adjoint kernel as an opaque op, so ``torch.compile`` can trace backward.

    Returns the gradients of ``(waveform, a, b, zi)``; one not asked for (or ``zi``
    where ``zi_shape`` is empty: there was none) comes back as an empty tensor.
    """
    name = backend_for_call(backend, waveform, a_coeffs, b_coeffs, None)
    gradients = backend_module(name).adjoint(
        grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape or None, tuple(needs_input_grad)
    )
    return tuple(g if g is not None else waveform.new_empty(0) for g in gradients)


@filter_adjoint_op.register_fake
def _filter_adjoint_op_fake(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs_input_grad, backend):
    need_waveform, need_a, need_b, need_zi = needs_input_grad
    return (
        waveform.new_empty(waveform.shape if need_waveform else [0]),
        a_coeffs.new_empty(a_coeffs.shape if need_a else [0]),
        b_coeffs.new_empty(b_coeffs.shape if need_b else [0]),
        waveform.new_empty(zi_shape if need_zi and zi_shape else [0]),
    )


def graph_filter(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], backend: str
) -> Tuple[Tensor, Tensor]:
    """The op a graph records for one filter call: the Triton op where the call runs
    the Triton kernels on tensors they compile for (``dispatch.traces_triton``), else
    this module's op with the backend as asked for (resolved when it runs)."""
    if traces_triton(backend, waveform, a_coeffs, b_coeffs, zi):
        return triton_backend.filter_op(waveform, a_coeffs, b_coeffs, zi)
    return filter_op(waveform, a_coeffs, b_coeffs, zi, backend)


def _setup_context(ctx, inputs, output):
    waveform, a_coeffs, b_coeffs, zi, backend = inputs
    y, _ = output
    ctx.save_for_backward(waveform, a_coeffs, b_coeffs, y)
    ctx.zi_shape = None if zi is None else list(zi.shape)
    ctx.backend = backend
    ctx.kernels = None  # the op resolves its backend: its own adjoint op does too


def kernel_op_context(setup_context, kernels, name: str):
    """``setup_context`` for an op that is one backend's kernels (the Triton or the
    native op): its first four inputs are the generic op's, its backend is ``name``
    (any further input, such as the native op's thread grain, is not differentiable),
    and backward calls that backend's adjoint op directly."""

    def setup(ctx, inputs, output):
        setup_context(ctx, tuple(inputs[:4]) + (name,), output)
        ctx.kernels = kernels

    return setup


def _backward(ctx, grad_y, grad_zf):
    waveform, a_coeffs, b_coeffs, y = ctx.saved_tensors
    needs_input_grad = tuple(ctx.needs_input_grad[:4])
    building_graph = backward_builds_graph([grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y])
    if building_graph:
        tracing = torch.compiler.is_compiling() or torch.jit.is_tracing()

        def differentiable_filter(waveform, a_coeffs, b_coeffs, zi):
            if tracing:
                return graph_filter(waveform, a_coeffs, b_coeffs, zi, ctx.backend)
            return FilterFunction.apply(waveform, a_coeffs, b_coeffs, zi, ctx.backend)

        gradients = filter_adjoint(
            differentiable_filter, grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y,
            ctx.zi_shape, needs_input_grad,
        )
    else:
        zi_shape = ctx.zi_shape if ctx.zi_shape is not None else []
        needs = list(needs_input_grad)
        needs[3] = needs[3] and ctx.zi_shape is not None
        if ctx.kernels is not None:
            outputs = ctx.kernels.filter_adjoint_op(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs)
        else:
            outputs = filter_adjoint_op(
                grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs, ctx.backend
            )
        gradients = tuple(g if need else None for g, need in zip(outputs, needs))
    return (*gradients, None)


def _triton_backward(ctx, grad_y, grad_zf):
    return _backward(ctx, grad_y, grad_zf)[:4]


filter_op.register_autograd(_backward, setup_context=_setup_context)
triton_backend.filter_op.register_autograd(
    _triton_backward, setup_context=kernel_op_context(_setup_context, triton_backend, "triton")
)
if native.available():
    torch.library.register_autograd(
        "multi_lfilter::native_filter", _backward, setup_context=kernel_op_context(_setup_context, native, "native")
    )


def _tangent(ctx, t_waveform, t_a, t_b, t_zi, t_backend):
    """The forward-mode derivative, by linearity: with ``F(x, a, b, zi)`` the filter,

    ``dF = F(dx, a, b, dzi) + F(x, a, db, 0) + F(y, a, -da, 0)``

    (``y`` is linear in ``(x, zi)`` and in ``b``; ``A y = B x`` gives ``A dy = -dA y``
    for the part from ``a``; the final state's tail sums follow the same algebra).
    Each term is a filter call, so the tangent is differentiable again.
    """
    waveform, a_coeffs, b_coeffs, y = ctx.saved_tensors
    terms = []
    if t_waveform is not None or t_zi is not None:
        inputs = t_waveform if t_waveform is not None else torch.zeros_like(waveform)
        terms.append(FilterFunction.apply(inputs, a_coeffs, b_coeffs, t_zi, ctx.backend))
    if t_b is not None:
        terms.append(FilterFunction.apply(waveform, a_coeffs, t_b, None, ctx.backend))
    if t_a is not None:
        terms.append(FilterFunction.apply(y, a_coeffs, -t_a, None, ctx.backend))
    zf_shape = list(y.shape[:-1]) + [a_coeffs.shape[-1] - 1]
    t_y = y.new_zeros(y.shape)
    t_zf = y.new_zeros(zf_shape)
    for term_y, term_zf in terms:
        t_y = t_y + term_y
        t_zf = t_zf + term_zf
    return t_y, t_zf


def _batch_rule(info, in_dims, waveform, a_coeffs, b_coeffs, zi, backend):
    """``vmap``: the mapped dim becomes one more leading dim, which broadcasts already.

    Each input gets its mapped dim first (size 1 where it is not mapped), then ones up
    to the most leading dims any input has, so the broadcast lines up.
    """
    inputs = [waveform, a_coeffs, b_coeffs, zi]
    leading = max(
        tensor.dim() - 1 - (dim is not None) for tensor, dim in zip(inputs, in_dims) if tensor is not None
    )
    moved = []
    for tensor, dim in zip(inputs, in_dims):
        if tensor is None:
            moved.append(None)
            continue
        tensor = tensor.unsqueeze(0) if dim is None else tensor.movedim(dim, 0)
        missing = leading - (tensor.dim() - 2)
        moved.append(tensor.reshape([tensor.shape[0]] + [1] * missing + list(tensor.shape[1:])))
    return FilterFunction.apply(*moved, backend), (0, 0)


class FilterFunction(torch.autograd.Function):
    """The op as an ``autograd.Function``, for ``torch.func`` and forward-mode AD.

    ``filter_op.register_autograd`` serves eager autograd, ``torch.compile`` and
    ``torch.jit.trace``, but PyTorch cannot run such an op under ``torch.func.grad``
    or ``jacrev``, and it has no forward-mode formula. This class shares the op's
    ``setup_context`` and ``backward`` and adds a ``jvp`` (``_tangent``) and a ``vmap``
    rule (``_batch_rule``); its forward is the op, so every backend runs under every
    transform. The functional layer takes it where a transform or a dual level is
    active, and for eager autograd.
    """

    @staticmethod
    def forward(waveform, a_coeffs, b_coeffs, zi, backend):
        return filter_op(waveform, a_coeffs, b_coeffs, zi, backend)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _setup_context(ctx, inputs, output)
        waveform, a_coeffs, b_coeffs, _, _ = inputs
        ctx.save_for_forward(waveform, a_coeffs, b_coeffs, output[0])

    backward = staticmethod(_backward)
    jvp = staticmethod(_tangent)
    vmap = staticmethod(_batch_rule)
