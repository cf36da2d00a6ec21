"""The native CPU backend: fused C kernels (``csrc/lfilter_kernels.c``) called with ctypes.

Each tensor is handed over as a data pointer plus its strides over the broadcast batch
(zero where broadcast), so a broadcast waveform is read in place and never expanded.
The forward kernel writes ``y`` and ``zf`` once; the adjoint kernel fuses the
backward recurrence with the reductions for every gradient, so backward allocates
nothing the size of the output.

The compiled library is optional: ``available()`` is False where the build had no
compiler, on non-CPU tensors' behalf (see ``supports``), or when the environment
variable ``MULTI_LFILTER_DISABLE_NATIVE=1`` is set.
"""
import ctypes
import importlib.machinery
import os
from pathlib import Path
from typing import List, Optional

import torch
from torch import Tensor

from .._shapes import cascade_batch_shape, filter_batch_shape, sum_to_shape

MAX_DIMS = 8
DISABLE_VARIABLE = "MULTI_LFILTER_DISABLE_NATIVE"
# Below this many output samples per thread, starting a thread costs more than it saves.
SAMPLES_PER_THREAD = 1 << 17
# Outputs from this size on are backed by huge pages where the OS allows it (see
# mlf_advise_huge_pages in the C source): their first write is mostly page faults.
HUGE_PAGE_OUTPUT_BYTES = 8 << 20


class _View(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("strides", ctypes.c_int64 * MAX_DIMS),
        ("step", ctypes.c_int64),
        ("section_step", ctypes.c_int64),
    ]


class _Problem(ctypes.Structure):
    _fields_ = [
        ("ndim", ctypes.c_int64),
        ("sizes", ctypes.c_int64 * MAX_DIMS),
        ("rows", ctypes.c_int64),
        ("length", ctypes.c_int64),
        ("order", ctypes.c_int64),
        ("sections", ctypes.c_int64),
        ("is_double", ctypes.c_int64),
        ("n_threads", ctypes.c_int64),
        ("waveform", _View),
        ("a", _View),
        ("b", _View),
        ("zi", _View),
        ("grad_y", _View),
        ("grad_zf", _View),
        ("grad_waveform", _View),
        ("row_order", ctypes.c_void_p),
        ("y", ctypes.c_void_p),
        ("zf", ctypes.c_void_p),
        ("grad_a", ctypes.c_void_p),
        ("grad_b", ctypes.c_void_p),
        ("grad_zi", ctypes.c_void_p),
    ]


def _library_path() -> Optional[Path]:
    package = Path(__file__).resolve().parent.parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = package / f"_lfilter_kernels{suffix}"
        if candidate.exists():
            return candidate
    return None


def _load_library():
    """``(library, why_missing)``: the loaded kernels, or ``None`` and the reason (they
    are disabled, not built, or built from another version of the kernels)."""
    if os.environ.get(DISABLE_VARIABLE, "") not in ("", "0"):
        return None, "disabled"
    path = _library_path()
    if path is None:
        return None, "not built"
    try:
        library = ctypes.CDLL(str(path))
    except OSError:
        return None, "not loadable"
    library.mlf_problem_size.restype = ctypes.c_int64
    library.mlf_max_order.restype = ctypes.c_int64
    library.mlf_max_sections.restype = ctypes.c_int64
    if library.mlf_problem_size() != ctypes.sizeof(_Problem):
        return None, "built from another version"  # refuse rather than crash
    library.mlf_advise_huge_pages.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    library.mlf_advise_huge_pages.restype = ctypes.c_int
    for name in ("mlf_forward", "mlf_adjoint"):
        function = getattr(library, name)
        function.argtypes = [ctypes.POINTER(_Problem)]
        function.restype = ctypes.c_int
    return library, ""


# Loaded once at import: plain module constants are what torch.compile can see through
# when the dispatcher asks whether this backend is there.
_LIBRARY, _WHY_MISSING = _load_library()
_MAX_ORDER = _LIBRARY.mlf_max_order() if _LIBRARY is not None else 0
_MAX_SECTIONS = _LIBRARY.mlf_max_sections() if _LIBRARY is not None else 0


def available() -> bool:
    """Whether the compiled kernels are loaded in this process."""
    return _LIBRARY is not None


def why_missing() -> str:
    """Why the kernels are not loaded (``""`` where they are): ``"disabled"`` (by
    ``MULTI_LFILTER_DISABLE_NATIVE``), ``"not built"``, ``"not loadable"`` or
    ``"built from another version"``."""
    return _WHY_MISSING


def max_order() -> int:
    """The highest filter order the compiled kernels take (0 where they are not loaded)."""
    return _MAX_ORDER


def max_sections() -> int:
    """The most sections of a cascade the one-pass kernels take (0 where not loaded)."""
    return _MAX_SECTIONS


def supports(waveform: Tensor, order: int, batch_ndim: int) -> bool:
    """Whether these kernels can run a problem (CPU, order and batch dims within limits)."""
    return (
        available()
        and waveform.device.type == "cpu"
        and order <= max_order()
        and batch_ndim <= MAX_DIMS
    )


def _view(tensor: Optional[Tensor], batch: List[int]) -> _View:
    """Pointer and batch strides of ``tensor`` broadcast to ``batch`` (no copy).

    The strides ``tensor.expand(...)`` would have, computed in Python: this runs on
    every call, and streaming calls are short enough for a view's cost to show.
    """
    view = _View()
    if tensor is None:
        return view
    shape = tensor.shape
    strides = tensor.stride()
    missing = len(batch) - (len(shape) - 1)  # leading batch dims the tensor lacks
    for dim in range(len(batch)):
        own = dim - missing
        if own >= 0 and shape[own] != 1:
            view.strides[dim] = strides[own]
    view.data = tensor.data_ptr()
    view.step = strides[-1]
    return view


def _section_view(tensor: Optional[Tensor], batch: List[int]) -> _View:
    """:func:`_view` for ``(..., S, K)`` tensors: their batch dims are all but the last two."""
    if tensor is None:
        return _View()
    view = _view(tensor[..., 0, :], batch)
    view.section_step = tensor.stride()[-2]
    return view


def _problem(batch: List[int], length: int, order: int, dtype: torch.dtype, sections: int = 1) -> _Problem:
    problem = _Problem()
    problem.sections = sections
    problem.ndim = len(batch)
    rows = 1
    for dim, size in enumerate(batch):
        problem.sizes[dim] = size
        rows *= size
    problem.rows = rows
    problem.length = length
    problem.order = order
    problem.is_double = int(dtype == torch.float64)
    wanted = max(1, rows * length // SAMPLES_PER_THREAD)
    problem.n_threads = min(torch.get_num_threads(), wanted)
    return problem


# The C kernels' failure codes (they check what Python hands them; each is a bug here,
# except running out of memory).
_FAILURES = {
    -2: "an order above the kernels' limit",
    -3: "more batch dims than the kernels take",
    -4: "sizes that do not match the batch shape",
    -5: "a missing tensor",
}


def _check(status: int) -> None:
    if status == 0:
        return
    if status == -1:
        raise MemoryError("multi_lfilter native kernel: out of memory for its work buffers")
    reason = _FAILURES.get(status, f"an unknown failure (code {status})")
    raise RuntimeError(f"multi_lfilter native kernel refused the problem: {reason} (code {status})")


def forward(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]):
    """The backend contract's forward kernel; coefficients are float64 and normalised."""
    batch = filter_batch_shape(waveform, a_coeffs, b_coeffs, zi)
    order = a_coeffs.shape[-1] - 1
    length = waveform.shape[-1]
    y = torch.empty(batch + [length], dtype=waveform.dtype)
    output_bytes = y.numel() * y.element_size()
    if output_bytes >= HUGE_PAGE_OUTPUT_BYTES:
        _LIBRARY.mlf_advise_huge_pages(y.data_ptr(), output_bytes)
    zf = torch.empty(batch + [order], dtype=waveform.dtype)
    zi_double = zi.double() if zi is not None else None  # tiny; keeps one dtype in C

    problem = _problem(batch, length, order, waveform.dtype)
    problem.waveform = _view(waveform, batch)
    problem.a = _view(a_coeffs, batch)
    problem.b = _view(b_coeffs, batch)
    problem.zi = _view(zi_double, batch)
    problem.y = y.data_ptr()
    problem.zf = zf.data_ptr()
    if problem.rows > 0:
        _check(_LIBRARY.mlf_forward(ctypes.byref(problem)))
    return y, zf


def _sorted_rows(view: _View, batch: List[int]) -> Tensor:
    """Row indices sorted by where each row's waveform gradient goes (groups rows that
    add into the same waveform row, so threads can own them)."""
    offsets = torch.zeros(batch, dtype=torch.int64)
    for dim, size in enumerate(batch):
        shape = [1] * len(batch)
        shape[dim] = size
        offsets = offsets + torch.arange(size).reshape(shape) * view.strides[dim]
    return torch.argsort(offsets.reshape(-1), stable=True)


def adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs_input_grad):
    """The backend contract's adjoint kernel, fused: see ``csrc/lfilter_kernels.c``."""
    batch = list(y.shape[:-1])
    order = a_coeffs.shape[-1] - 1
    y = y.contiguous()  # our own output: already contiguous, so no copy
    grad_zf_double = grad_zf.double() if grad_zf is not None else None  # kept: read by pointer
    problem = _problem(batch, y.shape[-1], order, y.dtype)
    problem.waveform = _view(waveform, batch)
    problem.a = _view(a_coeffs, batch)
    problem.b = _view(b_coeffs, batch)
    problem.grad_y = _view(grad_y, batch)
    problem.grad_zf = _view(grad_zf_double, batch)
    problem.y = y.data_ptr()
    return _run_adjoint(problem, batch, waveform, a_coeffs, b_coeffs, zi_shape, [order + 1], [order], needs_input_grad)


def _run_adjoint(problem, batch, waveform, a_coeffs, b_coeffs, zi_shape, coefficient_tail, state_tail, needs_input_grad):
    """The adjoint kernel on a ``problem`` whose inputs are set: allocates the gradients
    (per row: ``coefficient_tail`` for ``a`` and ``b``, ``state_tail`` for ``zi``), runs
    the kernel and sums each gradient to its input's shape."""
    need_waveform, need_a, need_b, need_zi = needs_input_grad
    need_zi = need_zi and zi_shape is not None
    grad_a_rows = torch.empty(batch + coefficient_tail, dtype=torch.float64)
    grad_b_rows = torch.empty(batch + coefficient_tail, dtype=torch.float64)
    grad_zi_rows = torch.empty(batch + state_tail, dtype=torch.float64) if need_zi else None
    grad_waveform = torch.zeros(waveform.shape, dtype=waveform.dtype) if need_waveform else None
    problem.grad_waveform = _view(grad_waveform, batch)
    row_order = None
    if need_waveform:
        # Rows grouped by waveform row, whatever the thread count: the waveform gradient
        # then sums in the same order, bit for bit, on 1 thread or many.
        row_order = _sorted_rows(problem.grad_waveform, batch)
        problem.row_order = row_order.data_ptr()
    problem.grad_a = grad_a_rows.data_ptr()
    problem.grad_b = grad_b_rows.data_ptr()
    problem.grad_zi = grad_zi_rows.data_ptr() if grad_zi_rows is not None else None
    if problem.rows > 0:
        _check(_LIBRARY.mlf_adjoint(ctypes.byref(problem)))

    grad_a = sum_to_shape(grad_a_rows, list(a_coeffs.shape)) if need_a else None
    grad_b = sum_to_shape(grad_b_rows, list(b_coeffs.shape)) if need_b else None
    grad_zi = None
    if grad_zi_rows is not None:
        grad_zi = sum_to_shape(grad_zi_rows, list(zi_shape)).to(waveform.dtype)
    return grad_waveform, grad_a, grad_b, grad_zi


def cascade_forward(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]):
    """A cascade in one pass: every section per sample, in registers (see the C source).

    Args:
        waveform: ``(..., T)``.
        a_coeffs, b_coeffs: ``(..., S, 3)`` float64, normalised per section.
        zi: ``(..., S, 2)`` or ``None``.

    Returns:
        ``(y, zf)``: ``(*batch, T)`` and ``(*batch, S, 2)``.
    """
    sections = a_coeffs.shape[-2]
    batch = cascade_batch_shape(waveform, a_coeffs, b_coeffs, zi)
    length = waveform.shape[-1]
    y = torch.empty(batch + [length], dtype=waveform.dtype)
    output_bytes = y.numel() * y.element_size()
    if output_bytes >= HUGE_PAGE_OUTPUT_BYTES:
        _LIBRARY.mlf_advise_huge_pages(y.data_ptr(), output_bytes)
    zf = torch.empty(batch + [sections, 2], dtype=waveform.dtype)
    # Kept in locals: the kernel reads them through raw pointers.
    zi_double = zi.double() if zi is not None else None
    problem = _problem(batch, length, 2, waveform.dtype, sections)
    problem.waveform = _view(waveform, batch)
    problem.a = _section_view(a_coeffs, batch)
    problem.b = _section_view(b_coeffs, batch)
    problem.zi = _section_view(zi_double, batch)
    problem.y = y.data_ptr()
    problem.zf = zf.data_ptr()
    if problem.rows > 0:
        _check(_LIBRARY.mlf_forward(ctypes.byref(problem)))
    return y, zf


def cascade_adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, zi, needs_input_grad):
    """The cascade's gradients in one backward pass, recomputing what it needs from
    checkpointed section states (no intermediate signal is kept): see the C source.

    Returns the gradients of ``(waveform, a, b, zi)`` (``None`` where not asked for, or
    for ``zi`` where there is none), each summed to its input's shape.
    """
    sections = a_coeffs.shape[-2]
    batch = cascade_batch_shape(waveform, a_coeffs, b_coeffs, zi)
    # Kept in locals: the kernel reads them through raw pointers.
    zi_double = zi.double() if zi is not None else None
    grad_zf_double = grad_zf.double() if grad_zf is not None else None
    problem = _problem(batch, waveform.shape[-1], 2, waveform.dtype, sections)
    problem.waveform = _view(waveform, batch)
    problem.a = _section_view(a_coeffs, batch)
    problem.b = _section_view(b_coeffs, batch)
    problem.zi = _section_view(zi_double, batch)
    problem.grad_y = _view(grad_y, batch)
    problem.grad_zf = _section_view(grad_zf_double, batch)
    zi_shape = list(zi.shape) if zi is not None else None
    return _run_adjoint(
        problem, batch, waveform, a_coeffs, b_coeffs, zi_shape, [sections, 3], [sections, 2], needs_input_grad
    )
