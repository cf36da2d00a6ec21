"""The one place that chooses a kernel.

Every backend is a module with the same two functions:

- ``forward(waveform, a, b, zi) -> (y, zf)`` with normalised coefficients of one
  length ``K`` and inputs whose leading dims broadcast;
- ``adjoint(grad_y, grad_zf, waveform, a, b, y, zi_shape, needs_input_grad)`` returning
  the four input gradients, each summed to its input's shape.
"""
from types import ModuleType
from typing import List

from . import loop

_BACKENDS = {"loop": loop}


def available_backends() -> List[str]:
    """Names of the backends that can run in this process, fastest first.

    Example:
        >>> import multi_lfilter
        >>> "loop" in multi_lfilter.available_backends()
        True
    """
    return [name for name in _BACKENDS]


def resolve_backend(name: str) -> str:
    """The concrete backend for a requested name (``"auto"`` picks one).

    Raises:
        ValueError: for an unknown or unavailable name, listing the available ones.
    """
    available = available_backends()
    if name == "auto":
        return available[0]
    if name not in available:
        raise ValueError(
            f"expected backend to be 'auto' or one of {available}, got {name!r}"
        )
    return name


def backend_module(name: str) -> ModuleType:
    """The module implementing a concrete backend name."""
    return _BACKENDS[name]
