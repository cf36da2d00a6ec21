"""The ``"triton"`` backend: fused GPU kernels written in Triton (``_triton_kernels``).

Each chain (one row of the broadcast batch) marches through time with its state in
registers, many chains per program. Where there are too few chains to fill a GPU and
the signal is long, the forward also splits time into chunks run in parallel: every
chunk from a zero state, then the state entering each chunk carried across the
chunks (``state_carry_kernel``, sequential in chunks with the exact one-chunk
transition), then every chunk again from its true state, writing ``y``: four
launches whatever ``T``. Otherwise (and for short signals) the forward is one launch.
The adjoint fuses the backward recurrence with every gradient's reduction (and
splits time into chunks the same way, backwards), so backward allocates nothing the
size of the output except the waveform's gradient per chain where the waveform needs
one (then summed over the filters that share it). Deterministic: no atomics; the
per-chunk sums are added in a fixed order.

Triton ships with the CUDA builds of torch and is imported on first use. The kernels
run on CUDA tensors, and on CPU tensors where ``TRITON_INTERPRET=1`` was set before
the first use (Triton's interpreter: slow, for tests of the kernels' logic).
"""
import functools
import importlib.util
import os
from typing import List, Optional

import torch
from torch import Tensor

from .._shapes import filter_batch_shape, sum_to_shape

# The state lives in registers: orders above this go to the block algorithm.
MAX_ORDER = 8
BLOCK_CHAINS = 32
TIME_TILE = 16
# The forward splits time into chunks while fewer than this many (chain, chunk) pairs
# would run, with chunks of at least MIN_CHUNK_LENGTH samples. Untuned: to be set
# from a GPU run of benchmarks/bench_lfilter.py --device cuda.
PARALLEL_CHAINS = 1 << 16
MIN_CHUNK_LENGTH = 512


# Looked up once, without importing Triton (slow); a constant torch.compile can read.
_AVAILABLE = importlib.util.find_spec("triton") is not None


def available() -> bool:
    """Whether Triton can be imported in this process."""
    return _AVAILABLE


def interpreting() -> bool:
    """Whether Triton's interpreter is on (kernels then run on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "") == "1"


@functools.lru_cache(maxsize=None)
def _kernels():
    from . import _triton_kernels

    return _triton_kernels


def _chain_offsets(tensor: Optional[Tensor], batch: List[int]) -> Tensor:
    """Element offset of each chain's first value in ``tensor`` broadcast to ``batch``:
    ``(prod(batch),)`` int64 (zeros for ``None``)."""
    count = 1
    for size in batch:
        count *= size
    if tensor is None:
        return torch.zeros(count, dtype=torch.int64)
    strides = tensor.expand(batch + [tensor.shape[-1]]).stride()
    offsets = torch.zeros(batch, dtype=torch.int64, device=tensor.device)
    for dim, size in enumerate(batch):
        shape = [1] * len(batch)
        shape[dim] = size
        offsets = offsets + torch.arange(size, device=tensor.device).reshape(shape) * strides[dim]
    return offsets.reshape(-1)


def _time_step(tensor: Optional[Tensor]) -> int:
    return 0 if tensor is None else tensor.stride(-1)


def _grid(n_chains: int):
    return (max(1, (n_chains + BLOCK_CHAINS - 1) // BLOCK_CHAINS),)


def time_chunks(n_chains: int, length: int, order: int) -> int:
    """How many chunks of time the forward runs in parallel (1: a single launch)."""
    if order == 0:
        return 1
    wanted = PARALLEL_CHAINS // max(n_chains, 1)
    return max(1, min(wanted, length // MIN_CHUNK_LENGTH))


def _chunking(n_chains: int, length: int, order: int):
    """``(n_chunks, chunk_length)``: ``time_chunks`` chunks of equal length (the last,
    or the first where chunks are aligned to the end, may be shorter)."""
    if n_chains == 0 or length == 0:
        return 1, length
    n_chunks = time_chunks(n_chains, length, order)
    chunk_length = (length + n_chunks - 1) // n_chunks
    return (length + chunk_length - 1) // chunk_length, chunk_length


def _unit_states(n_chains: int, order: int, device):
    """``ORDER`` unit states per chain, ``(n_chains ORDER, ORDER)`` float64, and their
    row offsets: the starts from which a kernel computes the one-chunk transition."""
    units = torch.eye(order, dtype=torch.float64, device=device).repeat(n_chains, 1)
    return units, torch.arange(n_chains * order, device=device) * order


def forward(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]):
    """The backend contract's forward kernel; coefficients are float64 and normalised."""
    batch = filter_batch_shape(waveform, a_coeffs, b_coeffs, zi)
    order = a_coeffs.shape[-1] - 1
    length = waveform.shape[-1]
    device = waveform.device
    y = torch.empty(batch + [length], dtype=waveform.dtype, device=device)
    zf = torch.empty(batch + [order], dtype=waveform.dtype, device=device)
    n_chains = _count(batch)
    if n_chains == 0:
        return y, zf
    if length == 0:  # nothing to filter: the state passes through
        zf.copy_(zi.expand(batch + [order]) if zi is not None else torch.zeros_like(zf))
        return y, zf
    kernel = _kernels().lfilter_forward_kernel
    signal = (waveform, _chain_offsets(waveform, batch).to(device), _time_step(waveform))
    a_offsets = _chain_offsets(a_coeffs, batch).to(device)
    b_offsets = _chain_offsets(b_coeffs, batch).to(device)
    shapes = dict(ORDER=order, ORDER_PAD=_padded(order), BLOCK_CHAINS=BLOCK_CHAINS, TIME_TILE=TIME_TILE)
    n_chunks, chunk_length = _chunking(n_chains, length, order)
    if n_chunks == 1:
        zi_double = zi.double() if zi is not None else None
        kernel[_grid(n_chains)](
            *signal,
            a_coeffs, a_offsets, _time_step(a_coeffs),
            b_coeffs, b_offsets, _time_step(b_coeffs),
            zi_double if zi_double is not None else a_coeffs, _chain_offsets(zi_double, batch).to(device),
            _time_step(zi_double),
            y, zf,
            n_chains, length, length,
            HAS_ZI=zi is not None, WRITE_Y=True, ZERO_INPUT=False, **shapes,
        )
        return y, zf

    float64 = dict(dtype=torch.float64, device=device)
    # The exact one-chunk transition: ORDER extra chains per chain, each from a unit
    # state with no input, for one chunk.
    units, unit_rows = _unit_states(n_chains, order, device)
    transition = torch.empty(n_chains * order, order, **float64)
    kernel[_grid(n_chains * order)](
        units, unit_rows, 0,
        a_coeffs, a_offsets.repeat_interleave(order), _time_step(a_coeffs),
        b_coeffs, b_offsets.repeat_interleave(order), _time_step(b_coeffs),
        units, unit_rows, 1,
        units, transition,
        n_chains * order, chunk_length, chunk_length,
        HAS_ZI=True, WRITE_Y=False, ZERO_INPUT=True, **shapes,
    )
    # Every chunk from a zero state: its own contribution to the state after it.
    local = torch.empty(n_chunks * n_chains, order, **float64)
    chunked_grid = (_grid(n_chains)[0], n_chunks)
    kernel[chunked_grid](
        *signal,
        a_coeffs, a_offsets, _time_step(a_coeffs),
        b_coeffs, b_offsets, _time_step(b_coeffs),
        local, unit_rows, 1,
        y, local,
        n_chains, length, chunk_length,
        HAS_ZI=False, WRITE_Y=False, ZERO_INPUT=False, **shapes,
    )
    if zi is not None:
        first = zi.double().expand(batch + [order]).reshape(n_chains, order).contiguous()
    else:
        first = torch.zeros(n_chains, order, **float64)
    entering = torch.empty(n_chunks * n_chains, order, **float64)
    _kernels().state_carry_kernel[_grid(n_chains)](
        first, local, transition, entering, n_chains, n_chunks,
        ORDER=order, ORDER_PAD=_padded(order), BLOCK_CHAINS=BLOCK_CHAINS,
    )
    # Every chunk again, from the state that enters it.
    finals = torch.empty(n_chunks * n_chains, order, **float64)
    kernel[chunked_grid](
        *signal,
        a_coeffs, a_offsets, _time_step(a_coeffs),
        b_coeffs, b_offsets, _time_step(b_coeffs),
        entering, torch.arange(n_chunks * n_chains, device=device) * order, 1,
        y, finals,
        n_chains, length, chunk_length,
        HAS_ZI=True, WRITE_Y=True, ZERO_INPUT=False, **shapes,
    )
    zf.copy_(finals[(n_chunks - 1) * n_chains :].view(batch + [order]))
    return y, zf


def adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs_input_grad):
    """The backend contract's adjoint kernel, fused: see ``lfilter_adjoint_kernel``.

    With time in chunks (as in ``forward``) the history entering each chunk is carried
    backwards across them first, the same way: a pass that gives every chunk's own
    final history, the one-chunk transition, ``state_carry_kernel`` over the chunks in
    reversed order; then every chunk's reductions, summed over the chunks. Chunks are
    aligned to the end here, so the partial one is the last in (reversed) time.
    """
    need_waveform, need_a, need_b, need_zi = needs_input_grad
    need_zi = need_zi and zi_shape is not None
    batch = list(y.shape[:-1])
    order = a_coeffs.shape[-1] - 1
    length = y.shape[-1]
    device = y.device
    n_chains = _count(batch)
    y = y.contiguous()  # our own output: already contiguous, so no copy
    if grad_y is None:
        grad_y = torch.zeros_like(y)
    float64 = dict(dtype=torch.float64, device=device)
    grad_waveform_chains = torch.zeros(batch + [length], dtype=waveform.dtype, device=device) if need_waveform else None
    grad_zf_double = grad_zf.double() if grad_zf is not None else None
    n_chunks, chunk_length = _chunking(n_chains, length, order)
    rows = n_chunks * n_chains
    grad_a_rows = torch.zeros(rows, order + 1, **float64)
    grad_b_rows = torch.zeros(rows, order + 1, **float64)
    histories = torch.zeros(rows, order, **float64)

    if n_chains > 0 and length > 0:
        kernel = _kernels().lfilter_adjoint_kernel
        upstream = (grad_y, _chain_offsets(grad_y, batch).to(device), _time_step(grad_y))
        signal = (waveform, _chain_offsets(waveform, batch).to(device), _time_step(waveform))
        a_offsets = _chain_offsets(a_coeffs, batch).to(device)
        b_offsets = _chain_offsets(b_coeffs, batch).to(device)
        coefficients = (
            a_coeffs, a_offsets, _time_step(a_coeffs),
            b_coeffs, b_offsets, _time_step(b_coeffs),
        )
        shapes = dict(ORDER=order, ORDER_PAD=_padded(order), BLOCK_CHAINS=BLOCK_CHAINS, TIME_TILE=TIME_TILE)
        offset = n_chunks * chunk_length - length  # the first chunk is the partial one
        if n_chunks == 1:
            entering = grad_zf_double
            entering_offsets = _chain_offsets(grad_zf_double, batch).to(device)
            entering_step = _time_step(grad_zf_double)
        else:
            # The exact one-chunk transition of the history, from unit histories.
            units, unit_rows = _unit_states(n_chains, order, device)
            transition = torch.empty(n_chains * order, order, **float64)
            kernel[_grid(n_chains * order)](
                units, unit_rows, 0, units, unit_rows, 0, units,
                a_coeffs, a_offsets.repeat_interleave(order), _time_step(a_coeffs),
                b_coeffs, b_offsets.repeat_interleave(order), _time_step(b_coeffs),
                units, unit_rows, 1,
                units, units, units, transition,
                n_chains * order, chunk_length, chunk_length, 0,
                HAS_GZF=True, ZERO_INPUT=True, NEED_X=False, NEED_A=False, NEED_B=False, **shapes,
            )
            # Every chunk from a zero history: its own part of the history before it.
            local = torch.empty(rows, order, **float64)
            kernel[(_grid(n_chains)[0], n_chunks)](
                *upstream, *signal, y, *coefficients,
                local, unit_rows, 1,
                local, local, local, local,
                n_chains, length, chunk_length, offset,
                HAS_GZF=False, ZERO_INPUT=False, NEED_X=False, NEED_A=False, NEED_B=False, **shapes,
            )
            # Carried backwards: the carry kernel runs forwards over the chunks reversed.
            if grad_zf_double is not None:
                last = grad_zf_double.expand(batch + [order]).reshape(n_chains, order).contiguous()
            else:
                last = torch.zeros(n_chains, order, **float64)
            reversed_local = local.view(n_chunks, n_chains, order).flip(0).contiguous()
            reversed_entering = torch.empty(rows, order, **float64)
            _kernels().state_carry_kernel[_grid(n_chains)](
                last, reversed_local, transition, reversed_entering, n_chains, n_chunks,
                ORDER=order, ORDER_PAD=_padded(order), BLOCK_CHAINS=BLOCK_CHAINS,
            )
            entering = reversed_entering.view(n_chunks, n_chains, order).flip(0).contiguous()
            entering_offsets = torch.arange(rows, device=device) * order
            entering_step = 1
        kernel[(_grid(n_chains)[0], n_chunks)](
            *upstream, *signal, y, *coefficients,
            entering if entering is not None else a_coeffs, entering_offsets, entering_step,
            grad_waveform_chains if grad_waveform_chains is not None else y,
            grad_a_rows, grad_b_rows, histories,
            n_chains, length, chunk_length, offset,
            HAS_GZF=entering is not None, ZERO_INPUT=False,
            NEED_X=need_waveform, NEED_A=need_a, NEED_B=need_b, **shapes,
        )
    elif grad_zf_double is not None:  # T == 0: the state's gradient passes through
        histories.copy_(grad_zf_double.expand(batch + [order]).reshape(n_chains, order))

    grad_waveform = None
    if grad_waveform_chains is not None:
        grad_waveform = sum_to_shape(grad_waveform_chains, list(waveform.shape))
    per_chain = [n_chunks] + batch + [order + 1]
    grad_a = sum_to_shape(grad_a_rows.view(per_chain).sum(0), list(a_coeffs.shape)) if need_a else None
    grad_b = sum_to_shape(grad_b_rows.view(per_chain).sum(0), list(b_coeffs.shape)) if need_b else None
    grad_zi = None
    if need_zi:  # the history after the first chunk: g_v[:N]
        grad_zi = sum_to_shape(histories[:n_chains].view(batch + [order]), zi_shape).to(waveform.dtype)
    return grad_waveform, grad_a, grad_b, grad_zi


def _count(batch: List[int]) -> int:
    count = 1
    for size in batch:
        count *= size
    return count


def _padded(order: int) -> int:
    """The state tile's width: a power of two, at least 1."""
    width = 1
    while width < order:
        width *= 2
    return width
