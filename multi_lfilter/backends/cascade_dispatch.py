"""Cascades of second-order sections: one pass where a backend has fused kernels for
them, section after section where it does not.

The cascade contract mirrors the single-filter one (``dispatch``), with ``(..., S, 3)``
normalised float64 coefficients per section (complex128 for complex calls) and
``(..., S, 2)`` states:

- ``forward(name, waveform, a, b, zi) -> (y, zf)``;
- ``adjoint(name, grad_y, grad_zf, waveform, a, b, zi, needs_input_grad)`` returning
  the four input gradients, each summed to its input's shape.

A backend that declares ``max_sections`` in the registry (``dispatch``) has
``cascade_forward`` and ``cascade_adjoint`` and, up to that many sections, runs the whole cascade in one pass: the native C kernels
every section per sample, the block algorithm one state space per block; both
adjoints recompute what they need instead of keeping ``S`` intermediate signals.
Otherwise the sections run one after the other with the backend's own ``forward``,
and the adjoint recomputes the intermediate signals and runs the backend's
``adjoint`` per section, last to first.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .dispatch import backend_module, registered


def _fused(name: str, sections: int):
    """The backend module where its ``cascade_forward`` and ``cascade_adjoint`` run
    this many sections in one pass (the registry's ``max_sections``), else ``None``."""
    return backend_module(name) if registered(name).fuses(sections) else None


def _section(tensor: Optional[Tensor], index: int) -> Optional[Tensor]:
    return None if tensor is None else tensor[..., index, :]


def forward(name: str, waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """``(y, zf)``: ``(*batch, T)`` and ``(*batch, S, 2)``; see the module doc."""
    sections = a_coeffs.shape[-2]
    fused = _fused(name, sections)
    if fused is not None:
        return fused.cascade_forward(waveform, a_coeffs, b_coeffs, zi)
    module = backend_module(name)
    states: List[Tensor] = []
    y = waveform
    for index in range(sections):
        y, state = module.forward(y, a_coeffs[..., index, :], b_coeffs[..., index, :], _section(zi, index))
        states.append(state)
    return y, _stack_states(states, list(y.shape[:-1]))


def _stack_states(states: List[Tensor], batch: List[int]) -> Tensor:
    return torch.stack([state.expand(batch + [2]) for state in states], -2)


def adjoint(
    name: str,
    grad_y: Optional[Tensor],
    grad_zf: Optional[Tensor],
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor],
    needs_input_grad: Tuple[bool, bool, bool, bool],
) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """Gradients of ``(waveform, a, b, zi)``; see the module doc."""
    sections = a_coeffs.shape[-2]
    fused = _fused(name, sections)
    if fused is not None:
        return fused.cascade_adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, zi, needs_input_grad)
    module = backend_module(name)
    need_waveform, need_a, need_b, need_zi = needs_input_grad
    need_zi = need_zi and zi is not None
    # The intermediate signals: each section's input and output.
    inputs: List[Tensor] = []
    outputs: List[Tensor] = []
    signal = waveform
    for index in range(sections):
        inputs.append(signal)
        signal, _ = module.forward(signal, a_coeffs[..., index, :], b_coeffs[..., index, :], _section(zi, index))
        outputs.append(signal)
    grads_a: List[Optional[Tensor]] = [None] * sections
    grads_b: List[Optional[Tensor]] = [None] * sections
    grads_zi: List[Optional[Tensor]] = [None] * sections
    upstream = grad_y
    for index in reversed(range(sections)):
        section_zi = _section(zi, index)
        needs = (index > 0 or need_waveform, need_a, need_b, need_zi)
        grad_input, grads_a[index], grads_b[index], grads_zi[index] = module.adjoint(
            upstream, _section(grad_zf, index), inputs[index], a_coeffs[..., index, :], b_coeffs[..., index, :],
            outputs[index], None if section_zi is None else list(section_zi.shape), needs,
        )
        upstream = grad_input
    grad_waveform = upstream if need_waveform else None
    grad_a = torch.stack([g for g in grads_a if g is not None], -2) if need_a else None
    grad_b = torch.stack([g for g in grads_b if g is not None], -2) if need_b else None
    grad_zi = torch.stack([g for g in grads_zi if g is not None], -2) if need_zi else None
    return grad_waveform, grad_a, grad_b, grad_zi
