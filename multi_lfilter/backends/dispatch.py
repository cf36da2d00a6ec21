"""The one place that chooses a kernel: a registry of backends and what each supports.

Every backend is a module with the same two functions:

- ``forward(waveform, a, b, zi) -> (y, zf)`` with normalised float64 coefficients of
  one length ``K`` (complex128, with a complex waveform and state, for a complex call)
  and inputs whose leading dims broadcast;
- ``adjoint(grad_y, grad_zf, waveform, a, b, y, zi_shape, needs_input_grad)`` returning
  the four input gradients, each summed to its input's shape (for complex calls under
  PyTorch's convention: ``_adjoint.conjugated_for_adjoint``).

Each registered ``Backend`` declares the devices it runs on, the highest order and
number of batch dims it takes, whether TorchScript can compile it, and whether
``"auto"`` may pick it. Eager and ``torch.compile`` calls resolve a name with
``resolve_backend``; TorchScript calls go through ``scripted_filter``, which may only
run the scriptable ones: the native op (where its library is loaded, unless scripts
are made portable) and the block and loop algorithms; ``scripted_cascade`` serves
cascades. Cascades run in one pass on the backends that declare ``max_sections``
(``cascade_dispatch``).

``"auto"`` takes the first backend in ``AUTO_ORDER`` that supports the problem:
the native C kernels for CPU tensors where they are built, else the block algorithm
(CUDA and other devices). The Triton kernels are not in ``AUTO_ORDER`` until a GPU
run has measured them against the block algorithm; ``backend="triton"`` selects them.

Complex calls (any input complex: ``_precision.result_dtype``) run only on backends
that declare ``runs_complex`` (the block and loop algorithms, with complex128
coefficients): ``"auto"`` skips the others, naming one is a ``ValueError`` that lists
the complex-capable ones, TorchScript keeps them off the native op, and
``torch.export`` refuses them (ONNX has no complex type).
"""
import os
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor

from .._fir import filter_fir
from .._varying_op import native_varying_filter
from .._precision import compute_dtype, is_complex_call, result_dtype
from .._validation import dtype_name, value_checks_allowed
from . import block, export_graph, loop, native, varying_loop, varying_scan
from . import triton as triton_backend
from .triton import varying as triton_varying
from .block import filter_block
from .loop import filter_loop


@dataclass(frozen=True)
class Backend:
    """A kernel module and what it supports.

    Attributes:
        name: what ``backend=`` accepts.
        module: the module with ``forward`` and ``adjoint``.
        is_available: whether it can run in this process at all.
        devices: device types it runs on (``None``: any).
        max_order: the highest filter order (``None``: any).
        max_batch_dims: the most batch dims (``None``: any).
        scriptable: whether TorchScript compiles it: its ops are built-in (the model then
            loads without this package) or the op library's (loaded with
            ``torch.ops.load_library(multi_lfilter.library_path())``).
        max_sections: the most sections of a cascade its ``cascade_forward`` and
            ``cascade_adjoint`` run in one pass (``None``: it has no fused cascade, and
            cascades run section by section).
        varying_forms: the forms of time-varying filters it runs (``varying.py``).
        varying: its time-varying filter, ``(waveform, a_coeffs, b_coeffs, zi, batch,
            form, hop) -> (y, zf)`` with the caller's coefficients (``a0`` included,
            ``Ka`` and ``Kb`` as given), differentiable in every input.
        varying_in_graphs: whether its time-varying filter is built-in tensor ops that
            ``torch.func`` transforms and ``torch.export`` can see through.
        extra_support: a further check on the waveform (``None``: none).
        runs_complex: whether its filter (single and cascade, forward and adjoint) runs
            complex calls (``_precision.result_dtype`` complex); ``"auto"`` skips the
            backends that do not, and naming one for a complex call is an error.
    """

    name: str
    module: ModuleType
    is_available: Callable[[], bool]
    devices: Optional[Tuple[str, ...]] = None
    max_order: Optional[Callable[[], int]] = None
    max_batch_dims: Optional[int] = None
    scriptable: bool = False
    max_sections: Optional[Callable[[], int]] = None
    varying_forms: Tuple[str, ...] = ()
    varying: Optional[Callable[..., Tuple[Tensor, Tensor]]] = None
    varying_in_graphs: bool = False
    extra_support: Optional[Callable[[Tensor], bool]] = None
    runs_complex: bool = False

    def supports(self, waveform: Tensor, order: int, batch_ndim: int, dtype: Optional[torch.dtype] = None) -> bool:
        """Whether this backend can run a problem (availability included); ``dtype`` is
        the call's result dtype (``None``: the waveform's)."""
        if not self.is_available():
            return False
        if not self.runs_complex and (dtype if dtype is not None else waveform.dtype).is_complex:
            return False
        if self.devices is not None and waveform.device.type not in self.devices:
            return False
        if self.max_order is not None and order > self.max_order():
            return False
        if self.max_batch_dims is not None and batch_ndim > self.max_batch_dims:
            return False
        return self.extra_support is None or self.extra_support(waveform)

    def fuses(self, sections: int) -> bool:
        """Whether a cascade of this many sections runs in one pass (one section is a
        plain filter call)."""
        return self.max_sections is not None and 1 < sections <= self.max_sections()

    def limits(self) -> str:
        """The declared limits, in words, for error messages."""
        parts = []
        if self.devices is not None:
            parts.append(" or ".join(self.devices) + " tensors")
        if self.max_order is not None:
            parts.append(f"order <= {self.max_order()}")
        if self.max_batch_dims is not None:
            parts.append(f"at most {self.max_batch_dims} batch dims")
        return ", ".join(parts)


def _always() -> bool:
    return True


REGISTRY = (
    Backend("native", native, native.available, devices=("cpu",), max_order=native.max_order,
            max_batch_dims=native.MAX_DIMS, scriptable=True, max_sections=native.max_sections,
            varying_forms=("tdf2",), varying=native_varying_filter),
    Backend("triton", triton_backend, triton_backend.available, devices=("cuda", "cpu"),
            max_order=lambda: triton_backend.MAX_ORDER, max_batch_dims=triton_backend.MAX_BATCH_DIMS,
            max_sections=triton_backend.max_sections, varying_forms=("tdf2",), varying=triton_varying.varying_filter,
            extra_support=lambda waveform: waveform.device.type == "cuda" or triton_backend.interpreting()),
    Backend("block", block, _always, scriptable=True, max_sections=block.max_sections, runs_complex=True,
            varying_forms=varying_loop.FORMS, varying=varying_scan.varying_filter, varying_in_graphs=True),
    Backend("loop", loop, _always, scriptable=True, runs_complex=True, varying_forms=varying_loop.FORMS, varying=varying_loop.varying_filter,
            varying_in_graphs=True),
    Backend("export", export_graph, _always),
)
_BY_NAME = {backend.name: backend for backend in REGISTRY}
AUTO_ORDER = ("native", "block")
# What "auto" takes for time-varying filters, the first that runs the form and the
# problem: the native kernels (tdf2, CPU), else the parallel-in-time scan (14x faster
# than the loop on CPU: benchmarks/results-2026-12-03.md); the Triton kernel waits
# for a GPU measurement as the LTI ones do.
VARYING_AUTO_ORDER = ("native", "block", "loop")
# What the ``backend=`` keyword accepts (availability is checked per call).
BACKEND_CHOICES = ("auto",) + tuple(_BY_NAME)
# What TorchScript's ``backend=`` accepts: the scriptable backends, comma-separated
# (a string, since TorchScript takes it as a default argument).
SCRIPTABLE_CHOICES = ",".join(["auto"] + [backend.name for backend in REGISTRY if backend.scriptable])
# Under TorchScript (portable scripts, or devices the native op does not run on)
# "auto" takes the block algorithm from this many samples on and the loop below:
# the block algorithm's per-call matrices cost more than the loop's steps on short
# signals (benchmarks/results-2026-12-03.md, D1).
SCRIPTED_BLOCK_MIN_LENGTH = 128
# Set (to anything but 0) before importing the package, scripted code never calls the
# op library: the saved model then loads with torch alone (and runs the block and loop
# algorithms, 3.2x the native op's time on the bank workload:
# benchmarks/results-2026-12-03.md).
SCRIPT_PORTABLE_VARIABLE = "MULTI_LFILTER_SCRIPT_PORTABLE"
_NATIVE = _BY_NAME["native"]
SCRIPTS_CALL_NATIVE = (
    _NATIVE.scriptable
    and _NATIVE.is_available()
    and os.environ.get(SCRIPT_PORTABLE_VARIABLE, "") in ("", "0")
)
# The native op's limits as TorchScript reads them (default arguments: it cannot read
# the registry).
_SCRIPTED_NATIVE_LIMITS = (
    (_NATIVE.max_order(), _NATIVE.max_batch_dims, _NATIVE.max_sections()) if SCRIPTS_CALL_NATIVE else (0, 0, 0)
)

if SCRIPTS_CALL_NATIVE:

    def _scripted_native(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        return torch.ops.multi_lfilter.native_filter(waveform, a_coeffs, b_coeffs, zi, native.SAMPLES_PER_THREAD)

    def _scripted_native_cascade(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        return torch.ops.multi_lfilter.native_sosfilt(waveform, a_coeffs, b_coeffs, zi, native.SAMPLES_PER_THREAD)

else:

    def _scripted_native(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        raise RuntimeError("multi_lfilter: scripted without the native op library")

    def _scripted_native_cascade(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        raise RuntimeError("multi_lfilter: scripted without the native op library")


def available_backends() -> List[str]:
    """Names of the backends that can run in this process.

    ``"native"`` (fused C kernels, CPU) is listed only where its library was built and
    loads; ``"triton"`` (fused GPU kernels) where Triton can be imported (it runs
    CUDA tensors); ``"block"`` (batched matmuls, any device) and ``"loop"`` (the
    TorchScript reference) are always there. ``"auto"`` picks among them per call.

    Example:
        >>> import multi_lfilter
        >>> {"block", "loop"} <= set(multi_lfilter.available_backends())
        True
    """
    return [backend.name for backend in REGISTRY if backend.is_available()]


def complex_backends() -> List[str]:
    """Names of the backends that run complex calls in this process (``runs_complex``).

    Example:
        >>> import multi_lfilter
        >>> from multi_lfilter.backends.dispatch import complex_backends
        >>> {"block", "loop"} <= set(complex_backends())
        True
    """
    return [backend.name for backend in REGISTRY if backend.runs_complex and backend.is_available()]


def resolve_backend(
    name: str, waveform: Tensor, order: int, batch_ndim: int, dtype: Optional[torch.dtype] = None
) -> str:
    """The concrete backend for a requested name and problem; ``dtype`` is the call's
    result dtype (``_precision.result_dtype``; ``None``: the waveform's), which
    decides whether backends that run real dtypes only may take it.

    Raises:
        ValueError: for an unknown name, one not available in this process, or one
            asked for by name for a problem it cannot run (naming its limits and the
            available backends, or the backends that run complex calls).
    """
    if name == "auto":
        chosen = "block"
        for candidate in AUTO_ORDER:
            if _BY_NAME[candidate].supports(waveform, order, batch_ndim, dtype):
                chosen = candidate
                break
        return chosen
    available = available_backends()
    if name not in available:
        raise ValueError(f"expected backend to be 'auto' or one of {available}, got {name!r}")
    backend = _BY_NAME[name]
    result = dtype if dtype is not None else waveform.dtype
    if result.is_complex and not backend.runs_complex:
        raise ValueError(
            f"expected a real call for the {name} backend, which runs float32 and float64 only, got a "
            f"{dtype_name(result)} call; complex calls run on {complex_backends()} (and 'auto' picks one)"
        )
    if not backend.supports(waveform, order, batch_ndim, dtype):
        raise ValueError(
            f"expected a problem the {name} backend supports ({backend.limits()}), got "
            f"{waveform.device.type} tensors of order {order} with {batch_ndim} batch dims; "
            f"available backends: {available}"
        )
    return name


def varying_backends() -> List[str]:
    """The backends that run time-varying filters in this process."""
    return [backend.name for backend in REGISTRY if backend.varying_forms and backend.is_available()]


def _runs_varying(entry: Backend, waveform: Tensor, form: str, order: int, batch_ndim: int, in_graph: bool) -> bool:
    return (
        form in entry.varying_forms
        and entry.supports(waveform, order, batch_ndim)
        and (entry.varying_in_graphs or not in_graph)
    )


def resolve_varying_backend(
    name: str, waveform: Tensor, form: str, order: int, batch_ndim: int, in_graph: bool = False
) -> str:
    """The backend for a time-varying filter.

    ``"auto"`` takes the first in ``VARYING_AUTO_ORDER`` that runs the form and the
    problem (the native kernels for ``tdf2`` on CPU, else the block backend's scan). Where the
    call must be seen through as built-in ops (``in_graph``: a ``torch.func`` transform
    or ``torch.export``), backends that are not (``varying_in_graphs``) give way to the
    first that is, whatever the name.

    Raises:
        ValueError: for a name that runs no time-varying filters here, or one asked for
            by name for a form or problem it cannot run.
    """
    candidates = varying_backends()
    if name != "auto":
        if name not in candidates:
            raise ValueError(f"expected backend 'auto' or one of {candidates} for time-varying filters, got {name!r}")
        entry = _BY_NAME[name]
        if form not in entry.varying_forms or not entry.supports(waveform, order, batch_ndim):
            forms = ", ".join(repr(f) for f in entry.varying_forms)
            raise ValueError(
                f"expected a time-varying problem the {name} backend supports (forms {forms}; {entry.limits()}), "
                f"got form {form!r} on {waveform.device.type} tensors of order {order} with {batch_ndim} batch dims"
            )
        if entry.varying_in_graphs or not in_graph:
            return name
    for candidate in VARYING_AUTO_ORDER:
        if candidate in candidates and _runs_varying(_BY_NAME[candidate], waveform, form, order, batch_ndim, in_graph):
            return candidate
    return "loop"


def varying_filter(
    name: str, waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], batch: List[int],
    form: str, hop: int,
) -> Tuple[Tensor, Tensor]:
    """Run a resolved backend's time-varying filter: ``(y, zf)``."""
    return _BY_NAME[name].varying(waveform, a_coeffs, b_coeffs, zi, batch, form, hop)


def warn_if_the_op_library_is_missing() -> None:
    """Says once per process, when the package is imported, that CPU tensors will run
    on the block algorithm because the op library did not build or load (not when it
    was disabled on purpose), with the fix: pip hides the build's own warnings."""
    reason = native.why_missing()
    if reason in ("", "disabled"):
        return
    warnings.warn(
        f"multi_lfilter: the native op library is {reason}, so CPU tensors run on the block "
        "algorithm (about 20x slower on the bank workload). Reinstall with a C/C++ compiler "
        "present, after torch (pip install --force-reinstall --no-deps --no-build-isolation "
        "multi_lfilter, or pip install --no-build-isolation -e . in a checkout); set "
        "MULTI_LFILTER_DISABLE_NATIVE=1 to silence this.",
        RuntimeWarning,
        stacklevel=2,
    )


def all_finite(waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]) -> bool:
    """Whether every input value is finite: one sum per input and one host sync (a sum
    is non-finite when any term is; one that overflows only sends the call to the
    exact loop)."""
    total = waveform.sum(dtype=compute_dtype(waveform)) + a_coeffs.sum() + b_coeffs.sum()
    if zi is not None:
        total = total + zi.sum(dtype=compute_dtype(zi))
    return bool(torch.isfinite(total))


def exact_for_non_finite(name: str, waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]) -> str:
    """``name``, or the loop where the block algorithm would spread a non-finite value.

    The block algorithm multiplies whole blocks by matrices, so a ``nan`` or ``inf``
    sample (or coefficient) reaches outputs before it (``0 * nan``); the recurrences
    (native, Triton, loop) give scipy's pattern exactly. The check reads the data, so
    it runs only where ``value_checks_allowed``: not inside ``torch.compile`` graphs,
    not for meta tensors, not on GPUs (where the block's outputs are then non-finite
    from the block's start on).
    """
    if name != "block" or not value_checks_allowed(waveform):
        return name
    return name if all_finite(waveform, a_coeffs, b_coeffs, zi) else "loop"


def backend_for_call(
    name: str,
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor],
    read_data: bool = True,
) -> str:
    """The concrete backend that runs one call with normalised coefficients:
    ``resolve_backend``, then (where ``read_data``) ``exact_for_non_finite``.

    Called where the call runs: by the functional layer without a graph, and inside
    the op (``_op``) with one, so a graph that keeps the op carries the name asked for
    and resolves it from the tensors it receives.
    """
    batch_ndim = max(waveform.dim(), a_coeffs.dim(), b_coeffs.dim()) - 1
    if zi is not None:
        batch_ndim = max(batch_ndim, zi.dim() - 1)
    dtype = result_dtype(waveform, a_coeffs, b_coeffs, zi)
    concrete = resolve_backend(name, waveform, a_coeffs.shape[-1] - 1, batch_ndim, dtype)
    if not read_data:
        return concrete
    return exact_for_non_finite(concrete, waveform, a_coeffs, b_coeffs, zi)


def traces_triton(name: str, waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]) -> bool:
    """Whether a graph (``torch.compile``, ``torch.jit.trace``, ``torch.export``) should
    record the Triton ops for this call: it resolves to the Triton kernels, on tensors
    they compile for (CUDA; the interpreter's CPU tensors run eagerly only)."""
    concrete = backend_for_call(name, waveform, a_coeffs, b_coeffs, zi, read_data=False)
    return concrete == "triton" and triton_backend.traceable(waveform)


def backend_module(name: str) -> ModuleType:
    """The module implementing a concrete backend name."""
    return _BY_NAME[name].module


def registered(name: str) -> Backend:
    """The registry's entry for a concrete backend name."""
    return _BY_NAME[name]


def _scripted_native_fits(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], max_order: int, max_batch_dims: int
) -> bool:
    """Whether the native op takes a scripted call of one filter (or a cascade's first
    section): real CPU tensors within its order and batch limits (all 0 where scripts
    do not call it)."""
    batch_ndim = max(waveform.dim(), a_coeffs.dim(), b_coeffs.dim()) - 1
    if zi is not None:
        batch_ndim = max(batch_ndim, zi.dim() - 1)
    return (
        waveform.device.type == "cpu"
        and not is_complex_call(waveform, a_coeffs, b_coeffs, zi)
        and a_coeffs.shape[-1] - 1 <= max_order
        and batch_ndim <= max_batch_dims
    )


def _check_scripted_backend(backend: str, choices: str) -> None:
    names = choices.split(",")
    if backend not in names:
        words = "'" + "', '".join(names[:-1]) + "' or '" + names[-1] + "'"
        raise ValueError(f"expected backend {words} under TorchScript, got {backend}")


def scripted_filter(
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor],
    backend: str,
    has_feedback: bool = True,
    block_min_length: int = SCRIPTED_BLOCK_MIN_LENGTH,
    choices: str = SCRIPTABLE_CHOICES,
    native_max_order: int = _SCRIPTED_NATIVE_LIMITS[0],
    native_max_batch_dims: int = _SCRIPTED_NATIVE_LIMITS[1],
) -> Tuple[Tensor, Tensor]:
    """The TorchScript door: the backends the registry declares ``scriptable``.

    Where scripts call the native op (the library is loaded and
    ``MULTI_LFILTER_SCRIPT_PORTABLE`` is not set when the package is imported), CPU
    calls within its limits run ``multi_lfilter::native_filter``, as eager does, and
    the saved model needs the op library where it loads. Otherwise, and on other
    devices, the graph holds built-in ops only: ``"auto"`` is the loop below
    ``block_min_length`` samples and the block algorithm from there on, and non-finite
    inputs go to the loop where values are read (see ``exact_for_non_finite``).
    Filters without feedback take the convolution path (``_fir``), as in eager. (The
    registry's values come in as default arguments: TorchScript cannot read globals.)
    """
    _check_scripted_backend(backend, choices)
    if not has_feedback:
        return filter_fir(waveform, b_coeffs, zi)
    if backend == "auto" or backend == "native":
        if _scripted_native_fits(waveform, a_coeffs, b_coeffs, zi, native_max_order, native_max_batch_dims):
            return _scripted_native(waveform, a_coeffs, b_coeffs, zi)
        if backend == "native":
            raise ValueError(
                "expected a problem the native backend supports under TorchScript (the op library "
                f"loaded when scripting, real cpu tensors, order <= {native_max_order}, at most "
                f"{native_max_batch_dims} batch dims)"
            )
    short = backend == "auto" and waveform.shape[-1] < block_min_length
    non_finite = value_checks_allowed(waveform) and not all_finite(waveform, a_coeffs, b_coeffs, zi)
    if backend == "loop" or short or non_finite:
        return filter_loop(waveform, a_coeffs, b_coeffs, zi)
    return filter_block(waveform, a_coeffs, b_coeffs, zi)


def scripted_cascade(
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor],
    backend: str,
    choices: str = SCRIPTABLE_CHOICES,
    native_max_order: int = _SCRIPTED_NATIVE_LIMITS[0],
    native_max_batch_dims: int = _SCRIPTED_NATIVE_LIMITS[1],
    native_max_sections: int = _SCRIPTED_NATIVE_LIMITS[2],
) -> Tuple[Tensor, Tensor]:
    """The TorchScript door for cascades (``(..., S, 3)`` normalised coefficients,
    ``(..., S, 2)`` states): ``multi_lfilter::native_sosfilt``, every section in one
    pass, where the native op takes it; else :func:`scripted_filter` section by section."""
    _check_scripted_backend(backend, choices)
    sections = a_coeffs.shape[-2]
    first_zi = zi[..., 0, :] if zi is not None else None
    if (
        (backend == "auto" or backend == "native")
        and 1 < sections <= native_max_sections
        and _scripted_native_fits(waveform, a_coeffs[..., 0, :], b_coeffs[..., 0, :], first_zi, native_max_order, native_max_batch_dims)
    ):
        return _scripted_native_cascade(waveform, a_coeffs, b_coeffs, zi)
    states: List[Tensor] = []
    y = waveform
    for section in range(sections):
        section_zi = zi[..., section, :] if zi is not None else None
        y, state = scripted_filter(y, a_coeffs[..., section, :], b_coeffs[..., section, :], section_zi, backend)
        states.append(state)
    batch = list(y.shape[:-1])
    return y, torch.stack([state.expand(batch + [2]) for state in states], -2)


def exported_filter(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], backend: str, mode: str = "portable"
) -> Tuple[Tensor, Tensor]:
    """The ``torch.export`` door: the export backend, the native op (``mode``
    ``"native"``, CPU tensors within its limits: see ``export_modes``), or the Triton
    op on a GPU.

    An exported program (and the ONNX model or AOTInductor package made from it) then
    holds standard ops only, the same ones at every length and batch size, and runs
    where this package is not installed. The name asked for is still checked (an
    unknown one fails at export, as it would in eager). Filters without feedback take
    the same graph (``a`` padded with zeros), not the convolution of ``_fir``, whose
    slicing depends on ``T``.

    Where the call runs the Triton kernels on a GPU (``traces_triton``), the program
    holds ``multi_lfilter::triton_filter`` instead: AOTInductor compiles the kernels
    into its package, which then runs them without this package; the program itself
    needs the package to run.

    Complex calls are refused (``TypeError``): ONNX has no complex type, so a program
    meant to travel as standard ops cannot hold one.
    """
    if is_complex_call(waveform, a_coeffs, b_coeffs, zi):
        raise TypeError(
            f"expected real inputs under torch.export, got a {dtype_name(result_dtype(waveform, a_coeffs, b_coeffs, zi))} "
            "call: ONNX has no complex type, so exported filters run float32 and float64 only (a complex "
            "signal through real filters exports as its real and imaginary parts, torch.view_as_real, "
            "filtered as two real signals)"
        )
    if traces_triton(backend, waveform, a_coeffs, b_coeffs, zi):
        return triton_backend.filter_op(waveform, a_coeffs, b_coeffs, zi)
    if mode == "native":
        name = backend_for_call(backend, waveform, a_coeffs, b_coeffs, zi, read_data=False)
        if name == "native":
            return torch.ops.multi_lfilter.native_filter(waveform, a_coeffs, b_coeffs, zi, native.SAMPLES_PER_THREAD)
    return export_graph.forward(waveform, a_coeffs, b_coeffs, zi)
