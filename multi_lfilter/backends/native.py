"""The native CPU backend: the fused C kernels, as PyTorch operators.

The op library (``multi_lfilter/_ops.abi3.so``, built from ``csrc/lfilter_kernels.c``
and ``csrc/native_ops.cpp`` on the LibTorch stable ABI) registers four operators with
the dispatcher::

    multi_lfilter::native_filter(waveform, a, b, zi?, samples_per_thread) -> (y, zf)
    multi_lfilter::native_filter_adjoint(grad_y?, grad_zf?, waveform, a, b, y,
                                         need_waveform, need_zi, samples_per_thread)
        -> (grad_waveform, per-row grad_a, per-row grad_b, per-row grad_zi)
    multi_lfilter::native_sosfilt / native_sosfilt_adjoint: the same for cascades

so eager Python, TorchScript, ``torch.export``, AOTInductor and C++ programs all run
the same kernels. Each tensor is read in place through its strides over the broadcast
batch: a broadcast waveform is never expanded. The forward writes ``y`` and ``zf``
once; the adjoint fuses the backward recurrence with the reductions for every
gradient. This module loads the library, registers the ops' fake kernels and autograd
formulas (so the ops themselves are differentiable wherever they are called from), and
implements the backend contract of ``dispatch`` on top of them.

The library is optional: ``available()`` is False where the build had no compiler, or
when the environment variable ``MULTI_LFILTER_DISABLE_NATIVE=1`` is set.
"""
import importlib.machinery
import os
from pathlib import Path
from typing import List, Optional

import torch
from torch import Tensor

from .._shapes import broadcast_batch_shape, cascade_batch_shape, filter_batch_shape, sum_to_shape

# The C kernels' limits (MAX_DIMS, MAX_ORDER, MAX_SECTIONS in csrc/lfilter_kernels.h);
# the op library refuses larger problems with an error naming the limit.
MAX_DIMS = 8
MAX_ORDER = 32
MAX_SECTIONS = 32
DISABLE_VARIABLE = "MULTI_LFILTER_DISABLE_NATIVE"
# Below this many output samples per thread, starting a thread costs more than it saves
# (benchmarks/results-2026-11-27.md). Passed to every op call: tests lower it to force
# threads on small problems.
SAMPLES_PER_THREAD = 1 << 17
_OPS = (
    "native_filter", "native_filter_adjoint", "native_sosfilt", "native_sosfilt_adjoint",
    "native_varying_filter", "native_varying_filter_adjoint",
)


def library_path() -> Optional[Path]:
    """The op library's file (``multi_lfilter/_ops.abi3.so``), or ``None`` where it was
    not built.

    A process that does not import this package (a C++ program, a fresh Python
    process running a scripted model or an AOTInductor package) loads it with
    ``torch.ops.load_library(path)`` to get the ``multi_lfilter::native_*`` operators.

    Example:
        >>> import multi_lfilter
        >>> path = multi_lfilter.library_path()
        >>> path is None or path.name.startswith("_ops")
        True
    """
    package = Path(__file__).resolve().parent.parent
    for suffix in [".abi3.so"] + importlib.machinery.EXTENSION_SUFFIXES + [".pyd"]:
        candidate = package / f"_ops{suffix}"
        if candidate.exists():
            return candidate
    return None


def _ops_registered() -> bool:
    """Whether every op of the library has a CPU kernel in this process."""
    for name in _OPS:
        try:
            if not torch._C._dispatch_has_kernel_for_dispatch_key(f"multi_lfilter::{name}", "CPU"):
                return False
        except RuntimeError:  # not even defined
            return False
    return True


def _load_library() -> str:
    """Loads the op library; returns ``""``, or why the ops are missing (``"disabled"``
    by ``MULTI_LFILTER_DISABLE_NATIVE``, ``"not built"`` or ``"not loadable"``)."""
    if os.environ.get(DISABLE_VARIABLE, "") not in ("", "0"):
        return "disabled"
    if _ops_registered():  # loaded already, e.g. with torch.ops.load_library(library_path())
        return ""
    path = library_path()
    if path is None:
        return "not built"
    try:
        torch.ops.load_library(str(path))
    except (OSError, RuntimeError):
        return "not loadable"
    return "" if _ops_registered() else "not loadable"


# Loaded once at import: plain module constants are what torch.compile can see through
# when the dispatcher asks whether this backend is there.
_WHY_MISSING = _load_library()
_AVAILABLE = _WHY_MISSING == ""


def available() -> bool:
    """Whether the op library is loaded in this process."""
    return _AVAILABLE


def why_missing() -> str:
    """Why the kernels are not loaded (``""`` where they are): ``"disabled"`` (by
    ``MULTI_LFILTER_DISABLE_NATIVE``), ``"not built"`` or ``"not loadable"``."""
    return _WHY_MISSING


def max_order() -> int:
    """The highest filter order the kernels take (0 where they are not loaded)."""
    return MAX_ORDER if _AVAILABLE else 0


def max_sections() -> int:
    """The most sections of a cascade the one-pass kernels take (0 where not loaded)."""
    return MAX_SECTIONS if _AVAILABLE else 0


# --- The backend contract (see dispatch) -------------------------------------------


def forward(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]):
    """``(y, zf)`` of ``(..., T)`` through normalised float64 ``(..., K)`` filters."""
    # The overload itself: a streaming call then skips the overload lookup.
    return torch.ops.multi_lfilter.native_filter.default(waveform, a_coeffs, b_coeffs, zi, SAMPLES_PER_THREAD)


def adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs_input_grad):
    """The four input gradients (``None`` where not asked for), each summed to its
    input's shape; one fused pass: see ``csrc/lfilter_kernels.c``."""
    need_waveform, need_a, need_b, need_zi = needs_input_grad
    need_zi = need_zi and zi_shape is not None
    rows = torch.ops.multi_lfilter.native_filter_adjoint(
        grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, need_waveform, need_zi, SAMPLES_PER_THREAD
    )
    return _summed(rows, a_coeffs, b_coeffs, zi_shape, waveform.dtype, (need_waveform, need_a, need_b, need_zi))


def cascade_forward(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]):
    """A cascade in one pass: every section per sample, in registers (see the C source).

    Args:
        waveform: ``(..., T)``.
        a_coeffs, b_coeffs: ``(..., S, 3)`` float64, normalised per section.
        zi: ``(..., S, 2)`` or ``None``.

    Returns:
        ``(y, zf)``: ``(*batch, T)`` and ``(*batch, S, 2)``.
    """
    return torch.ops.multi_lfilter.native_sosfilt.default(waveform, a_coeffs, b_coeffs, zi, SAMPLES_PER_THREAD)


def cascade_adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, zi, needs_input_grad):
    """The cascade's gradients in one backward pass, recomputing what it needs from
    checkpointed section states (no intermediate signal is kept): see the C source.

    Returns the gradients of ``(waveform, a, b, zi)`` (``None`` where not asked for, or
    for ``zi`` where there is none), each summed to its input's shape.
    """
    need_waveform, need_a, need_b, need_zi = needs_input_grad
    need_zi = need_zi and zi is not None
    rows = torch.ops.multi_lfilter.native_sosfilt_adjoint(
        grad_y, grad_zf, waveform, a_coeffs, b_coeffs, zi, need_waveform, need_zi, SAMPLES_PER_THREAD
    )
    zi_shape = list(zi.shape) if zi is not None else None
    return _summed(rows, a_coeffs, b_coeffs, zi_shape, waveform.dtype, (need_waveform, need_a, need_b, need_zi))


def _summed(rows, a_coeffs, b_coeffs, zi_shape, dtype, needs):
    """The adjoint ops' per-row gradients summed to their inputs' shapes."""
    grad_waveform, grad_a_rows, grad_b_rows, grad_zi_rows = rows
    need_waveform, need_a, need_b, need_zi = needs
    return (
        grad_waveform if need_waveform else None,
        sum_to_shape(grad_a_rows, list(a_coeffs.shape)) if need_a else None,
        sum_to_shape(grad_b_rows, list(b_coeffs.shape)) if need_b else None,
        sum_to_shape(grad_zi_rows, list(zi_shape)).to(dtype) if need_zi else None,
    )


# --- The ops' fake kernels and autograd formulas ------------------------------------
#
# Registered where the library loads, on the C++ ops themselves: a scripted or
# exported program that calls them directly is then traceable and differentiable in a
# process that imports this package.


def _varying_grad_dtype(coefficients: Tensor, hop: int) -> torch.dtype:
    """The dtype of ``native_varying_filter_adjoint``'s per-row coefficient gradients:
    the coefficients' own for per-sample ones (each written once), else float64."""
    return coefficients.dtype if hop == 0 and coefficients.shape[-2] > 1 else torch.float64


def _register_fake_kernels() -> None:
    @torch.library.register_fake("multi_lfilter::native_filter")
    def _filter_fake(waveform, a_coeffs, b_coeffs, zi, samples_per_thread=SAMPLES_PER_THREAD):
        batch = filter_batch_shape(waveform, a_coeffs, b_coeffs, zi)
        order = a_coeffs.shape[-1] - 1
        return waveform.new_empty(batch + [waveform.shape[-1]]), waveform.new_empty(batch + [order])

    @torch.library.register_fake("multi_lfilter::native_sosfilt")
    def _sosfilt_fake(waveform, a_coeffs, b_coeffs, zi, samples_per_thread=SAMPLES_PER_THREAD):
        batch = cascade_batch_shape(waveform, a_coeffs, b_coeffs, zi)
        sections = a_coeffs.shape[-2]
        return waveform.new_empty(batch + [waveform.shape[-1]]), waveform.new_empty(batch + [sections, 2])

    def adjoint_fake(batch, tail, state_tail, waveform, need_waveform, need_zi):
        return (
            waveform.new_empty(waveform.shape if need_waveform else [0]),
            waveform.new_empty(batch + tail, dtype=torch.float64),
            waveform.new_empty(batch + tail, dtype=torch.float64),
            waveform.new_empty(batch + state_tail if need_zi else [0], dtype=torch.float64),
        )

    @torch.library.register_fake("multi_lfilter::native_filter_adjoint")
    def _filter_adjoint_fake(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, need_waveform, need_zi,
                             samples_per_thread=SAMPLES_PER_THREAD):
        order = a_coeffs.shape[-1] - 1
        return adjoint_fake(list(y.shape[:-1]), [order + 1], [order], waveform, need_waveform, need_zi)

    @torch.library.register_fake("multi_lfilter::native_sosfilt_adjoint")
    def _sosfilt_adjoint_fake(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, zi, need_waveform, need_zi,
                              samples_per_thread=SAMPLES_PER_THREAD):
        batch = cascade_batch_shape(waveform, a_coeffs, b_coeffs, zi)
        sections = a_coeffs.shape[-2]
        return adjoint_fake(batch, [sections, 3], [sections, 2], waveform, need_waveform, need_zi)

    def varying_batch(waveform, a_coeffs, b_coeffs, zi):
        shapes = [list(waveform.shape[:-1]), list(a_coeffs.shape[:-2]), list(b_coeffs.shape[:-2])]
        if zi is not None:
            shapes.append(list(zi.shape[:-1]))
        return broadcast_batch_shape(shapes)

    @torch.library.register_fake("multi_lfilter::native_varying_filter")
    def _varying_fake(waveform, a_coeffs, b_coeffs, zi, hop, samples_per_thread=SAMPLES_PER_THREAD):
        batch = varying_batch(waveform, a_coeffs, b_coeffs, zi)
        order = max(a_coeffs.shape[-1], b_coeffs.shape[-1]) - 1
        return waveform.new_empty(batch + [waveform.shape[-1]]), waveform.new_empty(batch + [order], dtype=torch.float64)

    @torch.library.register_fake("multi_lfilter::native_varying_filter_adjoint")
    def _varying_adjoint_fake(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, hop, need_waveform, need_zi,
                              samples_per_thread=SAMPLES_PER_THREAD):
        batch = list(y.shape[:-1])
        order = max(a_coeffs.shape[-1], b_coeffs.shape[-1]) - 1
        return (
            waveform.new_empty(batch + [waveform.shape[-1]] if need_waveform else [0]),
            waveform.new_empty(batch + list(a_coeffs.shape[-2:]), dtype=_varying_grad_dtype(a_coeffs, hop)),
            waveform.new_empty(batch + list(b_coeffs.shape[-2:]), dtype=_varying_grad_dtype(b_coeffs, hop)),
            waveform.new_empty(batch + [order] if need_zi else [0], dtype=torch.float64),
        )


if _AVAILABLE:
    _register_fake_kernels()


# --- The adjoints as the autograd formulas call them (see _op and _cascade_op) -----


def filter_adjoint_op(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape: List[int], needs: List[bool]):
    """:func:`adjoint` with ``triton_backend.filter_adjoint_op``'s conventions: ``zi_shape``
    empty where there was no state; a gradient not asked for comes back empty."""
    gradients = adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape or None, tuple(needs))
    return tuple(g if g is not None else waveform.new_empty(0) for g in gradients)


def sosfilt_adjoint_op(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, zi, needs: List[bool]):
    """:func:`cascade_adjoint` with ``triton_backend.sosfilt_adjoint_op``'s conventions."""
    gradients = cascade_adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, zi, tuple(needs))
    return tuple(g if g is not None else waveform.new_empty(0) for g in gradients)
