"""Time-varying filters (transposed direct form II) on the Triton backend's GPU kernels.

:func:`varying_filter` is the registry's entry (``backends/dispatch.py``,
``Backend.varying``); it runs ``triton.varying_kernels``: one chain per thread, the
raw ``(..., steps, K)`` coefficients read in place and broadcast through strides
(never copied per chain), frames interpolated in registers, each step normalised by
its own ``a0``. Arithmetic is float64 for float32 and float64 signals alike, as in
the LTI Triton kernels and the native C kernel (``y`` is rounded once to the
waveform's dtype; ``zf`` is returned in float64).

Differentiable with respect to the waveform, both coefficient tensors and ``zi``: the
autograd formula of ``multi_lfilter::triton_varying_filter`` calls the analytic
adjoint kernel (backwards in time, coefficient gradients per sample or accumulated
per frame in registers) and sums each per-chain gradient to its input's shape. Where
the backward pass is itself recorded (double backward, ``create_graph=True``) it
differentiates the reference loop (``backends/varying_loop.py``) instead.

Time runs in one pass per chain (no chunks of time: a few chains over a long signal
use few GPU threads). Launches run under the tensors' device guard, read no tensor
values on the host, and use int64 element offsets. On CPU tensors the kernels run in
Triton's interpreter where ``TRITON_INTERPRET=1`` was set before Triton's first use.
"""
import functools
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import Tensor
from torch.library import triton_op, wrap_triton

from ..._varying_op import recorded_loop_gradients
from ..._call_mode import backward_builds_graph
from ..._shapes import sum_to_shape
from . import BLOCK, MAX_BATCH_DIMS, MAX_ORDER, NUM_WARPS, _device_guard, available, interpreting, launch

# Where each step's coefficients come from (the kernels' constexprs of the same names,
# ``varying_kernels.CONSTANT`` ...): one row, a row per sample, or frames.
CONSTANT, SAMPLES, FRAMES = 0, 1, 2
# Samples per tile (a power of two) for up to this many moving taps (a's and b's that
# are not constant): 8 as in the LTI kernels where every tap is constant; fewer where
# taps move, whose values for a whole tile are registers too (measured for sm_90 by
# benchmarks/triton_varying_report.py: for a moving biquad 4 costs the same
# instructions per step as 8 and a third fewer registers; 2 keeps order 8 from spilling).
TILES = ((0, 8), (10, 4))
SMALLEST_TILE = 2
# CUDA's limit on grid dim 0.
MAX_PROGRAMS = 2**31 - 1
_FLOATS = (torch.float32, torch.float64)


@functools.lru_cache(maxsize=None)
def _kernels():
    from . import varying_kernels

    return varying_kernels


def _launch(kernel: str, grid: Tuple[int, ...], *args, **constants) -> None:
    """Every launch goes through here (``wrap_triton``: visible to ``torch.compile``;
    ``benchmarks/triton_varying_report.py`` records launches by replacing this)."""
    wrap_triton(getattr(_kernels(), kernel))[grid](*args, num_warps=NUM_WARPS, **constants)


def coefficient_mode(steps: int, hop: int) -> int:
    """How a tensor with ``steps`` time rows is read: ``CONSTANT`` (one row),
    ``SAMPLES`` (``hop == 0``: a row per sample) or ``FRAMES``."""
    if steps == 1:
        return CONSTANT
    return SAMPLES if hop == 0 else FRAMES


def tile_for(moving_taps: int) -> int:
    """Samples per tile for this many moving taps (``TILES``)."""
    for most, tile in TILES:
        if moving_taps <= most:
            return tile
    return SMALLEST_TILE


@dataclass
class _Problem:
    """One call's inputs: raw ``(..., steps, Ka)``/``(..., steps, Kb)`` coefficients
    over a broadcast ``batch`` of chains, ``hop`` 0 or the frames' spacing."""

    waveform: Tensor
    a_coeffs: Tensor
    b_coeffs: Tensor
    batch: List[int]
    hop: int

    @property
    def order(self) -> int:
        return max(self.a_coeffs.shape[-1], self.b_coeffs.shape[-1]) - 1

    @property
    def n_chains(self) -> int:
        return launch.chain_count(self.batch)

    @property
    def length(self) -> int:
        return self.waveform.shape[-1]

    @property
    def device(self) -> torch.device:
        return self.waveform.device

    def grid(self) -> Tuple[int]:
        return (launch.program_count(self.n_chains, BLOCK),)

    def signal_strides(self, signal: Optional[Tensor]) -> List[int]:
        """A ``(..., T)`` (or ``(..., N)``) tensor's batch strides and last-dim step."""
        return launch.batch_strides(signal, self.batch)

    def coefficient_strides(self, coefficients: Tensor) -> List[int]:
        """Batch strides, tap step, time step."""
        return launch.batch_strides(coefficients, self.batch, tail_dims=2)

    def gradient_rows(self, coefficients: Tensor) -> Tensor:
        """Per-chain gradient rows ``(*batch, steps, K)``: in the coefficients' dtype
        (written per sample) or float64 sums, zeroed for frames (added into)."""
        steps = coefficients.shape[-2]
        mode = coefficient_mode(steps, self.hop)
        shape = self.batch + list(coefficients.shape[-2:])
        if mode == SAMPLES:
            return torch.empty(shape, dtype=coefficients.dtype, device=self.device)
        make = torch.zeros if mode == FRAMES else torch.empty
        return make(shape, dtype=torch.float64, device=self.device)

    def constants(self) -> dict:
        a_mode = coefficient_mode(self.a_coeffs.shape[-2], self.hop)
        b_mode = coefficient_mode(self.b_coeffs.shape[-2], self.hop)
        moving = sum(c.shape[-1] for c, mode in ((self.a_coeffs, a_mode), (self.b_coeffs, b_mode)) if mode != CONSTANT)
        return dict(
            ORDER=self.order, A_WIDTH=self.a_coeffs.shape[-1], B_WIDTH=self.b_coeffs.shape[-1],
            A_MODE=a_mode, B_MODE=b_mode, BLOCK=BLOCK, TILE=tile_for(moving),
        )

    def runtime(self) -> List[int]:
        """``n_chains, length, hop, a_steps, b_steps``."""
        return [self.n_chains, self.length, self.hop, self.a_coeffs.shape[-2], self.b_coeffs.shape[-2]]


def _forward(p: _Problem, zi: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """``y`` (the waveform's dtype) and ``zf`` (float64), both per chain."""
    y = torch.empty(p.batch + [p.length], dtype=p.waveform.dtype, device=p.device)
    zf = torch.empty(p.batch + [p.order], dtype=torch.float64, device=p.device)
    if p.n_chains == 0 or p.length == 0:  # nothing to filter: the state passes through
        zf.zero_()
        if zi is not None:
            zf += zi.to(torch.float64)
        return y, zf
    _launch(
        "varying_forward_kernel", p.grid(),
        p.waveform, p.a_coeffs, p.b_coeffs, zi if zi is not None else p.a_coeffs, y, zf,
        *launch.padded_batch(p.batch)[1:],
        *p.signal_strides(p.waveform), *p.coefficient_strides(p.a_coeffs), *p.coefficient_strides(p.b_coeffs),
        *p.signal_strides(zi), *p.runtime(),
        HAS_ZI=zi is not None, **p.constants(),
    )
    return y, zf


def _adjoint(p: _Problem, grad_y: Optional[Tensor], grad_zf: Optional[Tensor], y: Tensor,
             needs: Tuple[bool, bool, bool, bool]):
    """Per-chain gradients ``(gx (*batch, T), ga (*batch, steps, Ka), gb, gzi
    (*batch, N) float64)``, ``None`` where not needed."""
    need_x, need_a, need_b, need_zi = needs
    if grad_y is None:  # a zero read in place: no output-sized tensor
        grad_y = torch.zeros((), dtype=p.waveform.dtype, device=p.device).expand(p.batch + [p.length])
    grad_x = torch.empty(p.batch + [p.length], dtype=p.waveform.dtype, device=p.device) if need_x else None
    grad_a = p.gradient_rows(p.a_coeffs) if need_a else None
    grad_b = p.gradient_rows(p.b_coeffs) if need_b else None
    grad_zi = torch.empty(p.batch + [p.order], dtype=torch.float64, device=p.device)
    if p.n_chains == 0 or p.length == 0:  # nothing to run back through
        grad_zi.zero_()
        if grad_zf is not None:
            grad_zi += grad_zf.to(torch.float64)
        for rows in (grad_a, grad_b):
            if rows is not None:
                rows.zero_()
    else:
        dummy = p.a_coeffs  # for pointers a variant never touches
        _launch(
            "varying_adjoint_kernel", p.grid(),
            grad_y, grad_zf if grad_zf is not None else dummy, p.waveform, y, p.a_coeffs, p.b_coeffs,
            grad_x if grad_x is not None else dummy, grad_a if grad_a is not None else dummy,
            grad_b if grad_b is not None else dummy, grad_zi,
            *launch.padded_batch(p.batch)[1:],
            *p.signal_strides(grad_y), *p.signal_strides(grad_zf), *p.signal_strides(p.waveform),
            *p.coefficient_strides(p.a_coeffs), *p.coefficient_strides(p.b_coeffs), *p.runtime(),
            HAS_GZF=grad_zf is not None, NEED_X=need_x, NEED_A=need_a, NEED_B=need_b, **p.constants(),
        )
    return grad_x, grad_a, grad_b, grad_zi if need_zi else None


# ---------------------------------------------------------------------------------
# The ops and their autograd formula
# ---------------------------------------------------------------------------------


@triton_op("multi_lfilter::triton_varying_filter", mutates_args=())
def varying_filter_op(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], batch: List[int], hop: int
) -> Tuple[Tensor, Tensor]:
    """``(y, zf)``: ``(*batch, T)`` in the waveform's dtype, ``(*batch, N)`` float64."""
    with _device_guard(waveform.device):
        return _forward(_Problem(waveform, a_coeffs, b_coeffs, list(batch), hop), zi)


@triton_op("multi_lfilter::triton_varying_filter_adjoint", mutates_args=())
def varying_filter_adjoint_op(
    grad_y: Optional[Tensor], grad_zf: Optional[Tensor], waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor,
    y: Tensor, zi_shape: List[int], hop: int, needs_input_grad: List[bool],
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients of ``(waveform, a, b, zi)`` summed to their shapes (``zi``'s in
    float64), empty where not asked for (``zi_shape`` empty: there was no ``zi``)."""
    need_x, need_a, need_b, need_zi = needs_input_grad
    p = _Problem(waveform, a_coeffs, b_coeffs, list(y.shape[:-1]), hop)
    with _device_guard(waveform.device):
        grad_x, grad_a, grad_b, grad_zi = _adjoint(
            p, grad_y, grad_zf, y.contiguous(), (need_x, need_a, need_b, need_zi and len(zi_shape) > 0)
        )
    return (
        sum_to_shape(grad_x, list(waveform.shape)) if grad_x is not None else waveform.new_empty(0),
        sum_to_shape(grad_a, list(a_coeffs.shape)).to(a_coeffs.dtype) if grad_a is not None else waveform.new_empty(0),
        sum_to_shape(grad_b, list(b_coeffs.shape)).to(b_coeffs.dtype) if grad_b is not None else waveform.new_empty(0),
        sum_to_shape(grad_zi, zi_shape) if grad_zi is not None else waveform.new_empty(0),
    )


def _setup_context(ctx, inputs, output):
    waveform, a_coeffs, b_coeffs, zi, batch, hop = inputs
    y, _ = output
    ctx.save_for_backward(waveform, a_coeffs, b_coeffs, zi if zi is not None else waveform.new_empty(0), y)
    ctx.has_zi = zi is not None
    ctx.batch = list(batch)
    ctx.hop = hop


def _backward(ctx, grad_y, grad_zf):
    waveform, a_coeffs, b_coeffs, zi, y = ctx.saved_tensors
    zi = zi if ctx.has_zi else None
    needs = list(ctx.needs_input_grad[:4])
    needs[3] = needs[3] and zi is not None
    inputs = [waveform, a_coeffs, b_coeffs, zi]
    if backward_builds_graph([grad_y, grad_zf, waveform, a_coeffs, b_coeffs, zi]):
        return (*recorded_loop_gradients(grad_y, grad_zf, inputs, needs, ctx.batch, ctx.hop), None, None)
    zi_shape = list(zi.shape) if zi is not None else []
    gradients = varying_filter_adjoint_op(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, ctx.hop, needs)
    gradients = [g if need else None for g, need in zip(gradients, needs)]
    if gradients[3] is not None:
        gradients[3] = gradients[3].to(zi.dtype)
    return (*gradients, None, None)


varying_filter_op.register_autograd(_backward, setup_context=_setup_context)


# ---------------------------------------------------------------------------------
# The registry's entry
# ---------------------------------------------------------------------------------


def _check_supported(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], batch: List[int],
                     form: str, hop: int) -> None:
    """Raises ``ValueError`` for what the kernels do not run (the front-end has
    already checked the arguments themselves)."""
    if not available():
        raise ValueError("expected Triton for the triton backend (it ships with CUDA builds of torch), got none")
    if form != "tdf2":
        raise ValueError(f"expected form 'tdf2' for the triton backend's time-varying filters, got {form!r}")
    device = waveform.device.type
    if device != "cuda" and not (device == "cpu" and interpreting()):
        raise ValueError(
            f"expected CUDA tensors for the triton backend (CPU tensors only under TRITON_INTERPRET=1), got {device}"
        )
    for name, tensor in (("waveform", waveform), ("a_coeffs", a_coeffs), ("b_coeffs", b_coeffs), ("zi", zi)):
        if tensor is not None and tensor.dtype not in _FLOATS:
            raise ValueError(f"expected {name} in float32 or float64 for the triton backend, got {tensor.dtype}")
    for name, tensor in (("a_coeffs", a_coeffs), ("b_coeffs", b_coeffs)):
        if tensor.dim() < 2 or tensor.shape[-1] < 1:
            raise ValueError(f"expected {name} of shape (..., steps, K) with K >= 1, got {list(tensor.shape)}")
        steps, length = tensor.shape[-2], waveform.shape[-1]
        fits = steps == 1 or (steps == length if hop == 0 else steps >= max(1, -(-length // hop)))
        if not fits:
            raise ValueError(
                f"expected {name} with 1, T = {length} or (with a hop) at least ceil(T / hop) time rows, "
                f"got {steps} (hop {hop})"
            )
    order = max(a_coeffs.shape[-1], b_coeffs.shape[-1]) - 1
    if order > MAX_ORDER:
        raise ValueError(f"expected order <= {MAX_ORDER} for the triton backend (state in registers), got {order}")
    if len(batch) > MAX_BATCH_DIMS:
        raise ValueError(f"expected at most {MAX_BATCH_DIMS} batch dims for the triton backend, got {batch}")
    if zi is not None and (zi.dim() == 0 or zi.shape[-1] != order):
        raise ValueError(f"expected zi of shape (..., {order}), got {list(zi.shape)}")
    if launch.program_count(launch.chain_count(batch), BLOCK) > MAX_PROGRAMS:
        raise ValueError(f"expected at most {MAX_PROGRAMS * BLOCK} chains for the triton backend, got batch {batch}")


def varying_filter(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], batch: List[int], form: str, hop: int
) -> Tuple[Tensor, Tensor]:
    """Time-varying filters on the Triton kernels (``backends/dispatch.py``'s
    ``Backend.varying``).

    Args:
        waveform: ``(..., T)``, float32 or float64.
        a_coeffs: ``(..., steps, Ka)``, ``a0`` included; ``steps`` is ``T`` (per
            sample), 1 (constant) or, with ``hop > 0``, ``F >= ceil(T / hop)`` frames.
        b_coeffs: ``(..., steps', Kb)``; ``Ka`` and ``Kb`` may differ (the shorter is
            zero-padded), and so may the two time axes' kinds.
        zi: ``(..., N)`` with ``N = max(Ka, Kb) - 1``, or ``None``.
        batch: the broadcast leading shape (at most four dims).
        form: ``"tdf2"``.
        hop: 0 (per-sample or constant coefficients) or the frames' spacing.

    Returns:
        ``(y, zf)``: ``(*batch, T)`` in the waveform's dtype and ``(*batch, N)`` in
        float64, computed in float64.

    Supports CUDA tensors (CPU tensors in Triton's interpreter); autograd with respect
    to every tensor (the analytic adjoint kernel; double backward through the
    reference loop). Not TorchScript. ``torch.compile`` can trace into the
    ``triton_op`` on CUDA (not tested without a GPU).

    Raises:
        ValueError: for what the kernels do not run: another form, devices other than
            CUDA (CPU only in Triton's interpreter), dtypes other than float32/float64,
            order above ``MAX_ORDER``, more than four batch dims, a time axis that is
            not 1, ``T`` or enough frames.
    """
    _check_supported(waveform, a_coeffs, b_coeffs, zi, batch, form, hop)
    return varying_filter_op(waveform, a_coeffs, b_coeffs, zi, list(batch), hop)
