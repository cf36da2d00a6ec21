"""The one place that chooses a kernel.

Every backend is a module with the same two functions:

- ``forward(waveform, a, b, zi) -> (y, zf)`` with normalised float64 coefficients of
  one length ``K`` and inputs whose leading dims broadcast;
- ``adjoint(grad_y, grad_zf, waveform, a, b, y, zi_shape, needs_input_grad)`` returning
  the four input gradients, each summed to its input's shape.

``"auto"`` picks the native C kernels for CPU tensors where they are built, and the
block algorithm otherwise (CUDA and other devices, or a CPU without the kernels).
"""
from types import ModuleType
from typing import List

from torch import Tensor

from . import block, loop, native

_BACKENDS = {"native": native, "block": block, "loop": loop}
# What the ``backend=`` keyword accepts (availability is checked per call).
BACKEND_CHOICES = ("auto",) + tuple(_BACKENDS)


def available_backends() -> List[str]:
    """Names of the backends that can run in this process, in ``"auto"``'s preference.

    ``"native"`` (fused C kernels, CPU) is listed only where its library was built and
    loads; ``"block"`` (batched matmuls, any device) and ``"loop"`` (the TorchScript
    reference) are always there.

    Example:
        >>> import multi_lfilter
        >>> {"block", "loop"} <= set(multi_lfilter.available_backends())
        True
    """
    return [name for name, module in _BACKENDS.items() if module is not native or native.available()]


def resolve_backend(name: str, waveform: Tensor, order: int, batch_ndim: int) -> str:
    """The concrete backend for a requested name and problem.

    Raises:
        ValueError: for an unknown name, one not available in this process, or
            ``"native"`` for a problem it cannot run (non-CPU tensors, an order above
            its limit, too many batch dims), naming the available ones.
    """
    if name == "auto":
        if native.supports(waveform, order, batch_ndim):
            return "native"
        return "block"
    available = available_backends()
    if name not in available:
        raise ValueError(f"expected backend to be 'auto' or one of {available}, got {name!r}")
    if name == "native" and not native.supports(waveform, order, batch_ndim):
        raise ValueError(
            "expected a problem the native backend supports (CPU tensors, order <= "
            f"{native.max_order()}, at most {native.MAX_DIMS} batch dims), got "
            f"{waveform.device.type} tensors of order {order} with {batch_ndim} batch dims; "
            f"available backends: {available}"
        )
    return name


def backend_module(name: str) -> ModuleType:
    """The module implementing a concrete backend name."""
    return _BACKENDS[name]
