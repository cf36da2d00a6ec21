"""The ``"triton"`` backend: fused GPU kernels written in Triton (``triton.kernels``).

Every chain (one row of the broadcast batch) is owned by one GPU thread, which marches
through time with the chain's state in registers. Where there are too few chains to
fill a GPU and the signal is long, time is split into chunks run in parallel: every
chunk from its start (zero, or the user's state in the first chunk), then the state
entering each chunk carried across the chunks (``carry_kernel``, sequential in chunks
with the exact one-chunk transition), then every chunk again from its true state,
writing the output: four launches whatever ``T``. The adjoint is the same in reversed
time; it fuses the backward recurrence with every gradient's reduction, so backward
allocates nothing the size of the output except the waveform's gradient per chain
(summed over the filters that share the waveform). Cascades of sections run in one
pass forward; their adjoint recomputes each segment of the signal from checkpointed
states instead of keeping every section's output. Deterministic: no atomics, and
per-chunk sums are added in a fixed order.

The kernels are launched from ``torch.library.triton_op`` ops
(``multi_lfilter::triton_filter``, ``triton_filter_adjoint``, ``triton_sosfilt``,
``triton_sosfilt_adjoint``) through ``wrap_triton``: in eager they run directly;
``torch.compile`` and ``torch.export`` trace into them, so Inductor and AOTInductor
compile the kernels themselves into a CUDA graph or package. The host code reads no
tensor values (no host-device sync), so a forward and backward can be captured in a
CUDA graph; launches run under the tensors' device guard; element offsets are 64-bit.

Triton ships with the CUDA builds of torch and is imported on first use. The kernels
run on CUDA tensors, and on CPU tensors where ``TRITON_INTERPRET=1`` was set before
the first use (Triton's interpreter: slow, for tests of the kernels' logic; the ops
cannot be traced there).
"""
import contextlib
import functools
import importlib.util
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import Tensor
from torch.library import triton_op, wrap_triton

from ..._shapes import cascade_batch_shape, filter_batch_shape, sum_to_shape
from . import launch

# The state lives in registers: orders above this go to the block algorithm.
MAX_ORDER = 8
# The most sections of a cascade run in one pass (each section's state and
# coefficients are registers too).
MAX_SECTIONS = 8
MAX_BATCH_DIMS = launch.MAX_BATCH_DIMS
# One chain per thread: BLOCK chains per program of NUM_WARPS warps.
NUM_WARPS = 2
BLOCK = 32 * NUM_WARPS
# Samples per tile moved through shared memory at once (a power of two): 8 costs the
# same instructions per step as 16 and about 40% fewer registers (no spills;
# benchmarks/triton_report.py).
TILE = 8
# Time is split into chunks while fewer than this many (chain, chunk) pairs would run,
# with chunks of at least MIN_CHUNK_LENGTH samples. Untuned: to be set from a GPU run
# of benchmarks/gpu_check.sh.
PARALLEL_CHAINS = 1 << 16
MIN_CHUNK_LENGTH = 512
# Chunk lengths are multiples of this (tiles and checkpoints then stay aligned).
CHUNK_ALIGNMENT = 64
# The cascade adjoint recomputes segments of this many samples from checkpoints (a
# multiple of TILE): checkpoints cost 2S doubles per segment, its scratch S doubles
# per sample of a segment per (chain, chunk).
CHECKPOINT = 32


# Looked up once, without importing Triton (slow); a constant torch.compile can read.
_AVAILABLE = importlib.util.find_spec("triton") is not None


def available() -> bool:
    """Whether Triton can be imported in this process."""
    return _AVAILABLE


def interpreting() -> bool:
    """Whether Triton's interpreter is on (kernels then run on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "") == "1"


def max_sections() -> int:
    """The most sections of a cascade the one-pass kernels take."""
    return MAX_SECTIONS


def traceable(waveform: Tensor) -> bool:
    """Whether ``torch.compile``/``torch.export`` can trace into the kernels for this
    waveform: CUDA tensors (the interpreter's CPU tensors run eagerly only)."""
    return waveform.device.type == "cuda"


@functools.lru_cache(maxsize=None)
def _kernels():
    from . import kernels

    return kernels


def _launch(kernel: str, grid: Tuple[int, ...], *args, **constants) -> None:
    """Every launch goes through here: ``wrap_triton`` makes it visible to
    ``torch.compile``/``torch.export`` (and is a plain launch in eager);
    ``benchmarks/triton_report.py`` records the launches by replacing this."""
    wrap_triton(getattr(_kernels(), kernel))[grid](*args, num_warps=NUM_WARPS, **constants)


def _device_guard(device: torch.device):
    """Launches go to the tensors' device, not the current one."""
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.device(device)
    return contextlib.nullcontext()


def time_chunks(n_chains: int, length: int, order: int) -> int:
    """How many chunks of time a pass over these chains runs in parallel (1: one launch)."""
    return _chunking(n_chains, length, order)[0]


def _chunking(n_chains: int, length: int, state_size: int) -> Tuple[int, int]:
    return launch.chunking(n_chains, length, state_size, PARALLEL_CHAINS, MIN_CHUNK_LENGTH, CHUNK_ALIGNMENT)


@dataclass
class _Problem:
    """One call's tensors and layout: a filter (``(..., K)`` float64 coefficients) or a
    cascade (``cascade``: ``(..., S, K)``), over a broadcast ``batch`` of chains."""

    waveform: Tensor
    a_coeffs: Tensor
    b_coeffs: Tensor
    batch: List[int]
    cascade: bool

    @property
    def sections(self) -> int:
        return self.a_coeffs.shape[-2] if self.cascade else 1

    @property
    def order(self) -> int:
        return self.a_coeffs.shape[-1] - 1

    @property
    def dim(self) -> int:
        """The state's size: every section's slots."""
        return self.sections * self.order

    @property
    def n_chains(self) -> int:
        return launch.chain_count(self.batch)

    @property
    def length(self) -> int:
        return self.waveform.shape[-1]

    @property
    def device(self) -> torch.device:
        return self.waveform.device

    def sizes(self) -> List[int]:
        """``size1, size2, size3`` of the kernels' four batch dims."""
        return launch.padded_batch(self.batch)[1:]

    def signal_strides(self, signal: Optional[Tensor]) -> List[int]:
        """A ``(..., T)`` tensor's batch strides and time step."""
        return launch.batch_strides(signal, self.batch)

    def tap_strides(self, tensor: Optional[Tensor]) -> List[int]:
        """Coefficients or a state (``(..., K)`` or ``(..., S, K)``): batch strides, tap
        step and section step (0 for a filter)."""
        if self.cascade:
            return launch.batch_strides(tensor, self.batch, tail_dims=2)
        return launch.batch_strides(tensor, self.batch) + [0]

    def flat_state(self, state: Tensor) -> Tensor:
        """A user's state as ``(..., DIM)``: a cascade's ``(..., S, 2)`` flattened."""
        leading = list(state.shape[: state.dim() - (2 if self.cascade else 1)])
        return state.reshape(leading + [self.dim])


def _problem(waveform, a_coeffs, b_coeffs, zi, cascade: bool, batch: Optional[List[int]] = None) -> _Problem:
    if batch is None:
        shape = cascade_batch_shape if cascade else filter_batch_shape
        batch = shape(waveform, a_coeffs, b_coeffs, zi)
    return _Problem(waveform, a_coeffs, b_coeffs, batch, cascade)


def _float64(device, *shape) -> Tensor:
    return torch.empty(shape, dtype=torch.float64, device=device)


def _launch_forward(p: _Problem, *, n_chunks, chunk_length, n_lanes, states, zi=None, entering=None, y=None,
                    checkpoints=None, unit_states=False):
    dummy = p.a_coeffs  # for pointers a variant never touches
    _launch(
        "forward_kernel", (launch.program_count(n_lanes, BLOCK), n_chunks),
        p.waveform, p.a_coeffs, p.b_coeffs,
        zi if zi is not None else dummy, entering if entering is not None else dummy,
        y if y is not None else dummy, states, checkpoints if checkpoints is not None else dummy,
        *p.sizes(),
        *p.signal_strides(p.waveform), *p.tap_strides(p.a_coeffs), *p.tap_strides(p.b_coeffs),
        *p.tap_strides(zi),
        n_lanes, p.length, chunk_length,
        SECTIONS=p.sections, ORDER=p.order, HAS_ZI=zi is not None, HAS_ENTERING=entering is not None,
        UNIT_STATES=unit_states, WRITE_Y=y is not None, CHECKPOINT=CHECKPOINT if checkpoints is not None else 0,
        BLOCK=BLOCK, TILE=TILE,
    )


def _carry(p: _Problem, local: Tensor, transition: Tensor, n_chunks: int, reverse: bool) -> Tensor:
    entering = _float64(p.device, n_chunks * p.n_chains, p.dim)
    _launch(
        "carry_kernel", (launch.program_count(p.n_chains, BLOCK),),
        local, transition, entering, p.n_chains, n_chunks,
        DIM=p.dim, REVERSE=reverse, BLOCK=BLOCK,
    )
    return entering


def _entering_states(p: _Problem, launch_pass, n_chunks: int, chunk_length: int, reverse: bool, **inputs):
    """The state entering every chunk (``(chunks, chains, DIM)`` float64; the first
    chunk's, or with ``reverse`` the last's, is the user's and reads as zero here), or
    ``None`` for a single chunk: the one-chunk transition from unit states, every
    chunk from its start, then the carry. ``launch_pass`` is ``_launch_forward`` or
    (``reverse``) ``_launch_adjoint`` with its ``inputs``."""
    if n_chunks == 1:
        return None
    transition = _float64(p.device, p.n_chains * p.dim, p.dim)
    launch_pass(p, n_chunks=1, chunk_length=chunk_length, n_lanes=p.n_chains * p.dim, states=transition,
                unit_states=True)
    local = _float64(p.device, n_chunks * p.n_chains, p.dim)
    launch_pass(p, n_chunks=n_chunks, chunk_length=chunk_length, n_lanes=p.n_chains, states=local, **inputs)
    return _carry(p, local, transition, n_chunks, reverse)


def _forward(p: _Problem, zi: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """``(y, zf)`` with ``zf`` as ``(*batch, DIM)`` in the waveform's dtype."""
    dtype = p.waveform.dtype
    y = torch.empty(p.batch + [p.length], dtype=dtype, device=p.device)
    if p.n_chains == 0 or p.length == 0:  # nothing to filter: the state passes through
        zf = torch.zeros(p.batch + [p.dim], dtype=dtype, device=p.device)
        if zi is not None:
            zf = zf + p.flat_state(zi).to(dtype)
        return y, zf
    n_chunks, chunk_length = _chunking(p.n_chains, p.length, p.dim)
    entering = _entering_states(p, _launch_forward, n_chunks, chunk_length, False, zi=zi)
    finals = _float64(p.device, n_chunks * p.n_chains, p.dim)
    _launch_forward(p, n_chunks=n_chunks, chunk_length=chunk_length, n_lanes=p.n_chains, states=finals, zi=zi,
                    entering=entering, y=y)
    zf = finals[(n_chunks - 1) * p.n_chains:].view(p.batch + [p.dim]).to(dtype)
    return y, zf


def _launch_adjoint(p: _Problem, *, n_chunks, chunk_length, n_lanes, states, grad_y=None, grad_zf=None,
                    entering=None, y=None, grad_x=None, grad_a=None, grad_b=None, unit_states=False):
    dummy = p.a_coeffs
    upstream = grad_y if grad_y is not None else dummy
    _launch(
        "adjoint_kernel", (launch.program_count(n_lanes, BLOCK), n_chunks),
        upstream, p.waveform, y if y is not None else dummy, p.a_coeffs, p.b_coeffs,
        grad_zf if grad_zf is not None else dummy, entering if entering is not None else dummy,
        grad_x if grad_x is not None else dummy, grad_a if grad_a is not None else dummy,
        grad_b if grad_b is not None else dummy, states,
        *p.sizes(),
        *p.signal_strides(grad_y), *p.signal_strides(p.waveform),
        *p.tap_strides(p.a_coeffs), *p.tap_strides(p.b_coeffs), *p.tap_strides(grad_zf),
        n_lanes, p.length, chunk_length,
        SECTIONS=p.sections, ORDER=p.order, HAS_GZF=grad_zf is not None, HAS_ENTERING=entering is not None,
        UNIT_STATES=unit_states, NEED_X=grad_x is not None, NEED_A=grad_a is not None, NEED_B=grad_b is not None,
        BLOCK=BLOCK, TILE=TILE,
    )


def _adjoint(p: _Problem, grad_y, grad_zf, zi, y, needs_input_grad):
    """Gradients of ``(waveform, a, b, zi)`` per chain: ``gx (*batch, T)``, ``ga`` and
    ``gb`` ``(chunks, *batch, [S,] K)`` float64 (summed over chunks by the caller),
    ``gzi (*batch, DIM)`` float64. ``y`` (a filter's saved output) is read for
    ``dL/da``; a cascade recomputes what it needs from ``zi``."""
    need_x, need_a, need_b, need_zi = needs_input_grad
    if grad_y is None:  # a zero read in place: no output-sized tensor
        grad_y = torch.zeros((), dtype=p.waveform.dtype, device=p.device).expand(p.batch + [p.length])
    n_chunks, chunk_length = _chunking(p.n_chains, p.length, p.dim)
    rows = n_chunks * p.n_chains
    coefficient_tail = ([p.sections] if p.cascade else []) + [p.order + 1]
    grad_x = torch.empty(p.batch + [p.length], dtype=p.waveform.dtype, device=p.device) if need_x else None
    recompute = p.cascade and (need_a or need_b)
    make = torch.zeros if recompute else torch.empty  # the cascade kernel adds into its rows
    grad_a = make([rows] + coefficient_tail, dtype=torch.float64, device=p.device) if need_a else None
    grad_b = make([rows] + coefficient_tail, dtype=torch.float64, device=p.device) if need_b else None
    history = _float64(p.device, rows, p.dim)
    if p.n_chains > 0 and p.length > 0:
        entering = _entering_states(p, _launch_adjoint, n_chunks, chunk_length, True, grad_y=grad_y, grad_zf=grad_zf)
        if recompute:
            _cascade_adjoint(p, grad_y, grad_zf, zi, entering, n_chunks, chunk_length, grad_x, grad_a, grad_b,
                             history)
        else:
            _launch_adjoint(p, n_chunks=n_chunks, chunk_length=chunk_length, n_lanes=p.n_chains, states=history,
                            grad_y=grad_y, grad_zf=grad_zf, entering=entering, y=y, grad_x=grad_x,
                            grad_a=grad_a, grad_b=grad_b)
    else:  # nothing to run back through: the state's gradient passes through
        history.zero_()
        if grad_zf is not None:
            history += p.flat_state(grad_zf).expand(p.batch + [p.dim]).reshape(rows, p.dim)
        for rows_tensor in (grad_a, grad_b):
            if rows_tensor is not None:
                rows_tensor.zero_()
    grad_zi = history[: p.n_chains].view(p.batch + [p.dim]) if need_zi else None
    per_chunk = [n_chunks] + p.batch + coefficient_tail
    return (
        grad_x,
        grad_a.view(per_chunk).sum(0) if grad_a is not None else None,
        grad_b.view(per_chunk).sum(0) if grad_b is not None else None,
        grad_zi,
    )


def _cascade_adjoint(p, grad_y, grad_zf, zi, entering, n_chunks, chunk_length, grad_x, grad_a, grad_b, history):
    """The cascade's final adjoint pass with coefficient gradients: checkpoints from a
    forward pass over the same chunks, then ``cascade_adjoint_kernel``."""
    rows = n_chunks * p.n_chains
    forward_entering = _entering_states(p, _launch_forward, n_chunks, chunk_length, False, zi=zi)
    segments = -(-chunk_length // CHECKPOINT)
    checkpoints = _float64(p.device, segments, p.dim, rows)
    _launch_forward(p, n_chunks=n_chunks, chunk_length=chunk_length, n_lanes=p.n_chains,
                    states=_float64(p.device, rows, p.dim), zi=zi, entering=forward_entering,
                    checkpoints=checkpoints)
    signals = _float64(p.device, p.sections, CHECKPOINT, rows)
    upstream = _float64(p.device, CHECKPOINT, rows)
    dummy = p.a_coeffs
    _launch(
        "cascade_adjoint_kernel", (launch.program_count(p.n_chains, BLOCK), n_chunks),
        grad_y, p.waveform, p.a_coeffs, p.b_coeffs, grad_zf if grad_zf is not None else dummy,
        entering if entering is not None else dummy, checkpoints, signals, upstream,
        grad_x if grad_x is not None else dummy, grad_a if grad_a is not None else dummy,
        grad_b if grad_b is not None else dummy, history,
        *p.sizes(),
        *p.signal_strides(grad_y), *p.signal_strides(p.waveform),
        *p.tap_strides(p.a_coeffs), *p.tap_strides(p.b_coeffs), *p.tap_strides(grad_zf),
        p.n_chains, p.length, chunk_length,
        SECTIONS=p.sections, ORDER=p.order, HAS_GZF=grad_zf is not None, HAS_ENTERING=entering is not None,
        NEED_X=grad_x is not None, NEED_A=grad_a is not None, NEED_B=grad_b is not None,
        BLOCK=BLOCK, SEGMENT=CHECKPOINT,
    )


# ---------------------------------------------------------------------------------
# The ops, and the backend contract (``dispatch``, ``cascade``) on top of them
# ---------------------------------------------------------------------------------


def _empty_unless(gradient: Optional[Tensor], like: Tensor) -> Tensor:
    return gradient if gradient is not None else like.new_empty(0)


def _summed_gradients(p: _Problem, gradients, a_shape, b_shape, zi_shape: List[int]):
    """Per-chain gradients summed to their inputs' shapes (empty where not computed)."""
    grad_x, grad_a, grad_b, grad_zi = gradients
    waveform = p.waveform
    if grad_zi is not None:
        grad_zi = sum_to_shape(grad_zi.reshape(p.batch + zi_shape[len(zi_shape) - (2 if p.cascade else 1):]),
                               zi_shape).to(waveform.dtype)
    return (
        _empty_unless(sum_to_shape(grad_x, list(waveform.shape)) if grad_x is not None else None, waveform),
        _empty_unless(sum_to_shape(grad_a, a_shape) if grad_a is not None else None, waveform),
        _empty_unless(sum_to_shape(grad_b, b_shape) if grad_b is not None else None, waveform),
        _empty_unless(grad_zi, waveform),
    )


@triton_op("multi_lfilter::triton_filter", mutates_args=())
def filter_op(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """``(y, zf)`` of ``(..., T)`` through normalised float64 ``(..., K)`` filters."""
    with _device_guard(waveform.device):
        return _forward(_problem(waveform, a_coeffs, b_coeffs, zi, cascade=False), zi)


@triton_op("multi_lfilter::triton_filter_adjoint", mutates_args=())
def filter_adjoint_op(
    grad_y: Optional[Tensor], grad_zf: Optional[Tensor], waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor,
    y: Tensor, zi_shape: List[int], needs_input_grad: List[bool],
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients of ``(waveform, a, b, zi)`` (empty where not asked for; ``zi_shape``
    empty: there was no ``zi``)."""
    need_x, need_a, need_b, need_zi = needs_input_grad
    y = y.contiguous()  # the forward's own output: contiguous already, so no copy
    p = _problem(waveform, a_coeffs, b_coeffs, None, cascade=False, batch=list(y.shape[:-1]))
    with _device_guard(waveform.device):
        gradients = _adjoint(p, grad_y, grad_zf, None, y, (need_x, need_a, need_b, need_zi and len(zi_shape) > 0))
    return _summed_gradients(p, gradients, list(a_coeffs.shape), list(b_coeffs.shape), zi_shape)


@triton_op("multi_lfilter::triton_sosfilt", mutates_args=())
def sosfilt_op(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """``(y, zf)`` of a cascade: ``(..., S, K)`` float64 normalised sections, ``zf (..., S, N)``."""
    p = _problem(waveform, a_coeffs, b_coeffs, zi, cascade=True)
    with _device_guard(waveform.device):
        y, zf = _forward(p, zi)
    return y, zf.view(p.batch + [p.sections, p.order])


@triton_op("multi_lfilter::triton_sosfilt_adjoint", mutates_args=())
def sosfilt_adjoint_op(
    grad_y: Optional[Tensor], grad_zf: Optional[Tensor], waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor,
    zi: Optional[Tensor], needs_input_grad: List[bool],
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """The cascade's gradients of ``(waveform, a, b, zi)`` (empty where not asked for)."""
    need_x, need_a, need_b, need_zi = needs_input_grad
    p = _problem(waveform, a_coeffs, b_coeffs, zi, cascade=True)
    with _device_guard(waveform.device):
        gradients = _adjoint(p, grad_y, grad_zf, zi, None, (need_x, need_a, need_b, need_zi and zi is not None))
    zi_shape = list(zi.shape) if zi is not None else []
    return _summed_gradients(p, gradients, list(a_coeffs.shape), list(b_coeffs.shape), zi_shape)


def forward(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]):
    """The backend contract's forward kernel; coefficients are float64 and normalised."""
    return filter_op(waveform, a_coeffs, b_coeffs, zi)


def adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs_input_grad):
    """The backend contract's adjoint kernel, fused: see ``adjoint_kernel``."""
    needs = list(needs_input_grad)
    needs[3] = needs[3] and zi_shape is not None
    gradients = filter_adjoint_op(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, list(zi_shape or []), needs)
    return tuple(g if need else None for g, need in zip(gradients, needs))


def cascade_forward(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]):
    """A cascade in one pass (``backends.cascade``'s contract): ``(y, zf)``."""
    return sosfilt_op(waveform, a_coeffs, b_coeffs, zi)


def cascade_adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, zi, needs_input_grad):
    """The cascade's gradients in one backward pass (``backends.cascade``'s contract)."""
    needs = list(needs_input_grad)
    needs[3] = needs[3] and zi is not None
    gradients = sosfilt_adjoint_op(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, zi, needs)
    return tuple(g if need else None for g, need in zip(gradients, needs))
