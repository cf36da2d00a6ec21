"""The native time-varying kernels as a differentiable op.

``multi_lfilter::native_varying_filter`` (C++, ``csrc/varying_kernels.c``) runs
transposed direct form II with the caller's raw ``(..., steps, Ka)`` and
``(..., steps, Kb)`` coefficients (``a0`` included, float32 or float64, read in place),
interpolating frames inside the kernel. Its autograd formula, registered
here, calls the adjoint kernel (``native_varying_filter_adjoint``) and sums its per-row
gradients to the inputs' shapes. Where the backward pass is itself recorded (double
backward, ``create_graph=True``), it differentiates the reference loop instead, so
every higher derivative is exact too.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ._adjoint import recorded_gradients
from ._call_mode import backward_builds_graph
from ._shapes import sum_to_shape
from .backends import native
from .backends import varying_loop


def native_varying(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], hop: int
) -> Tuple[Tensor, Tensor]:
    """``(y, zf)`` through the native kernel: ``zf`` in float64."""
    return torch.ops.multi_lfilter.native_varying_filter.default(
        waveform, a_coeffs, b_coeffs, zi, hop, native.SAMPLES_PER_THREAD
    )


def native_varying_filter(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], batch: List[int], form: str, hop: int
) -> Tuple[Tensor, Tensor]:
    """The registry's entry (``backends/dispatch.py``): ``form`` is ``"tdf2"`` and the
    op broadcasts the batch itself."""
    return native_varying(waveform, a_coeffs, b_coeffs, zi, hop)


def _setup_context(ctx, inputs, output):
    waveform, a_coeffs, b_coeffs, zi, hop, _ = inputs
    y, _ = output
    ctx.save_for_backward(waveform, a_coeffs, b_coeffs, zi if zi is not None else waveform.new_empty(0), y)
    ctx.has_zi = zi is not None
    ctx.hop = hop


def recorded_loop_gradients(
    grad_y: Tensor, grad_zf: Tensor, inputs: List[Optional[Tensor]], needs: List[bool], batch: List[int], hop: int
):
    """Double backward of a tdf2 kernel (native or Triton): the gradients of the
    reference loop, recorded."""
    waveform, a_coeffs, b_coeffs, zi = inputs
    with torch.enable_grad():
        y, zf = varying_loop.varying_filter(waveform, a_coeffs, b_coeffs, zi, batch, "tdf2", hop)
    return recorded_gradients([y, zf], [grad_y, grad_zf], inputs, needs)


def _backward(ctx, grad_y, grad_zf):
    waveform, a_coeffs, b_coeffs, zi, y = ctx.saved_tensors
    zi = zi if ctx.has_zi else None
    needs = list(ctx.needs_input_grad[:4])
    needs[3] = needs[3] and zi is not None
    inputs = [waveform, a_coeffs, b_coeffs, zi]
    if backward_builds_graph([grad_y, grad_zf, waveform, a_coeffs, b_coeffs, zi]):
        batch = list(y.shape[:-1])
        return (*recorded_loop_gradients(grad_y, grad_zf, inputs, needs, batch, ctx.hop), None, None)
    gx, ga, gb, gzi = torch.ops.multi_lfilter.native_varying_filter_adjoint.default(
        grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, ctx.hop, needs[0], needs[3], native.SAMPLES_PER_THREAD
    )
    gradients = [
        sum_to_shape(gx, list(waveform.shape)) if needs[0] else None,
        sum_to_shape(ga, list(a_coeffs.shape)).to(a_coeffs.dtype) if needs[1] else None,
        sum_to_shape(gb, list(b_coeffs.shape)).to(b_coeffs.dtype) if needs[2] else None,
        sum_to_shape(gzi, list(zi.shape)).to(zi.dtype) if needs[3] and zi is not None else None,
    ]
    return (*gradients, None, None)


if native.available():
    torch.library.register_autograd("multi_lfilter::native_varying_filter", _backward, setup_context=_setup_context)
