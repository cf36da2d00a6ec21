"""What ``torch.export`` records for a filter call: standard ops or the native op.

``"portable"`` (the default): the export backend's graph of standard ``aten`` ops
(``backends/export_graph.py``), which ONNX, AOTInductor and any runtime take without
this package, at 14-24x the eager native time on CPU.

``"native"``: one ``multi_lfilter::native_filter`` node per filter call on CPU tensors
(within the kernels' limits; other calls stay portable). An AOTInductor package of such a
program calls the op library through the dispatcher, so it runs at the kernels' speed
wherever the library is loaded (``torch.ops.load_library(multi_lfilter.library_path())``),
from Python or C++. :func:`to_portable` turns such a program into the portable one.
"""
from contextlib import contextmanager
from typing import Iterator

import torch

from .backends import export_graph, native

MODES = ("portable", "native")
_current = ["portable"]


def current_export_mode() -> str:
    """The mode ``torch.export`` records filter calls in now (see :func:`export_mode`)."""
    return _current[-1]


@contextmanager
def export_mode(mode: str) -> Iterator[None]:
    """Within the block, ``torch.export`` records filter calls in ``mode``.

    Args:
        mode: ``"portable"`` (standard ops; the default outside any block) or
            ``"native"`` (the op library's operator, on CPU tensors).

    Raises:
        ValueError: for another mode, or ``"native"`` where the op library is not loaded.

    Example:
        >>> import torch, multi_lfilter
        >>> bank = multi_lfilter.BiquadFilterBank(4, 16000)
        >>> with multi_lfilter.export_mode("native"):                 # doctest: +SKIP
        ...     program = torch.export.export(bank, (torch.randn(2, 800),))
        >>> portable = multi_lfilter.to_portable(program)              # doctest: +SKIP
    """
    if mode not in MODES:
        raise ValueError(f"expected an export mode in {MODES}, got {mode!r}")
    if mode == "native" and not native.available():
        raise ValueError(f"expected the op library for export mode 'native'; it is {native.why_missing()}")
    _current.append(mode)
    try:
        yield
    finally:
        _current.pop()


def _portable_filter(waveform, a_coeffs, b_coeffs, zi, samples_per_thread=native.SAMPLES_PER_THREAD):
    return export_graph.forward(waveform, a_coeffs, b_coeffs, zi)


def to_portable(program: "torch.export.ExportedProgram") -> "torch.export.ExportedProgram":
    """The program with every ``multi_lfilter::native_filter`` node replaced by the
    export backend's standard ops (what ``export_mode("portable")`` records): for ONNX,
    or a runtime without the op library. Other nodes are left as they are.

    Example:
        >>> import torch, multi_lfilter
        >>> bank = multi_lfilter.BiquadFilterBank(4, 16000)
        >>> program = torch.export.export(bank, (torch.randn(2, 800),))
        >>> portable = multi_lfilter.to_portable(program)             # no native node: unchanged
        >>> "native_filter" in str(portable.graph)
        False
    """
    if not native.available():  # no native node can be in a program made here
        return program
    return program.run_decompositions({torch.ops.multi_lfilter.native_filter.default: _portable_filter})
