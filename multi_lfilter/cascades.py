"""Second-order-section cascades: ``sosfilt_bank`` and ``sosfilt_bank_with_state``.

Each call goes through the door its mode picks (``_call_mode``): eager calls and
graphs run the cascade op (``_cascade_op``: one pass through every section with the
native kernels, no intermediate signal kept for backward); TorchScript runs the native
cascade op where it fits and the scripted filter section by section elsewhere;
``torch.export`` and ``torch.func`` transforms compose the sections through
:func:`multi_lfilter.lfilter_bank_with_state` (``_sections``). ``S`` is the number of
sections.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ._call_mode import EAGER, EXPORT, TRANSFORM, call_mode
from ._cascade_op import graph_sosfilt, resolve_cascade_backend
from ._precision import is_half, to_result_dtype, widen_half
from ._sections import sections_one_by_one
from ._validation import check_filter_inputs, check_sos_inputs, normalize_coefficients, value_checks_allowed
from .backends import cascade_dispatch
from .backends.dispatch import scripted_cascade


def sosfilt_bank_with_state(
    waveform: Tensor, sos: Tensor, zi: Optional[Tensor] = None, backend: str = "auto"
) -> Tuple[Tensor, Tensor]:
    """Filter through cascades of second-order sections, like :func:`scipy.signal.sosfilt`.

    Each section is a biquad, ``sos[..., s, :] = [b0, b1, b2, a0, a1, a2]``; section
    ``s`` filters the output of section ``s - 1``. Cascades keep high-order filters
    accurate where one long direct form would not (its coefficients are ill-conditioned).
    With the native kernels the cascade runs in one pass, every section per sample, and
    its backward keeps no intermediate signal (it recomputes them block by block);
    the sections and states are differentiable like ``lfilter_bank``'s inputs.

    Complex waveforms, sections and states follow :func:`multi_lfilter.lfilter_bank`'s
    dtype rules: the result is complex where any input is, of the inputs' one
    precision.

    Args:
        waveform: ``(..., T)``, real or complex.
        sos: ``(..., S, 6)``; leading dims broadcast with the waveform's.
        zi: ``(..., S, 2)`` initial states (scipy's layout), or ``None`` for zeros.
        backend: as for :func:`multi_lfilter.lfilter_bank`.

    Returns:
        ``(y, zf)``: ``(*batch, T)`` and the final states ``(*batch, S, 2)``.

    Raises:
        ValueError: for an ``sos`` that is not ``(..., S, 6)``, and everything
            :func:`multi_lfilter.lfilter_bank` raises.

    Example:
        >>> import torch
        >>> from multi_lfilter import sosfilt_bank_with_state
        >>> sos = torch.tensor([[0.2, 0.4, 0.2, 1.0, -0.6, 0.3], [1.0, -1.0, 0.0, 1.0, -0.9, 0.0]])
        >>> y, zf = sosfilt_bank_with_state(torch.randn(4, 100), sos)
        >>> y.shape, zf.shape
        (torch.Size([4, 100]), torch.Size([4, 2, 2]))
    """
    check_sos_inputs(waveform, sos, zi)
    if is_half(waveform.dtype):  # every section in a wider type, rounded once at the end
        wide_waveform, wide_sos, _, wide_zi = widen_half(waveform, sos, sos, zi)
        y, states = _cascade(wide_waveform, wide_sos, wide_zi, backend)
        return y.to(waveform.dtype), states.to(waveform.dtype)
    return _cascade(waveform, sos, zi, backend)


def _cascade(waveform: Tensor, sos: Tensor, zi: Optional[Tensor], backend: str) -> Tuple[Tensor, Tensor]:
    """:func:`sosfilt_bank_with_state` on checked float32/float64 (or complex) inputs; see the module doc."""
    n_sections = sos.shape[-2]
    if zi is not None and (zi.dim() < 2 or zi.shape[-2] != n_sections or zi.shape[-1] != 2):
        raise ValueError(
            f"expected zi of shape (..., {n_sections}, 2) for {n_sections} sections, got {list(zi.shape)}"
        )
    if torch.jit.is_scripting():
        first_zi = zi[..., 0, :] if zi is not None else None
        check_filter_inputs(waveform, sos[..., 0, 3:], sos[..., 0, :3], first_zi)
        waveform, zi = to_result_dtype(waveform, sos, sos, zi)
        a_coeffs, b_coeffs = normalize_coefficients(
            sos[..., 3:], sos[..., :3], value_checks_allowed(waveform), waveform.is_complex()
        )
        return scripted_cascade(waveform, a_coeffs, b_coeffs, zi, backend)
    return _cascade_outside_script(waveform, sos, zi, backend)


@torch.jit.unused
def _cascade_outside_script(waveform: Tensor, sos: Tensor, zi: Optional[Tensor], backend: str) -> Tuple[Tensor, Tensor]:
    """Every mode but TorchScript's: the sections one by one where a graph must see
    each filter call (export, transforms), else the cascade op (or, in ``eager`` mode,
    straight ``backends.cascade_dispatch``), with the checks the composed path makes."""
    mode = call_mode([waveform, sos, zi])
    if mode == EXPORT or mode == TRANSFORM:
        return sections_one_by_one(waveform, sos[..., 3:], sos[..., :3], zi, backend)
    first_zi = zi[..., 0, :] if zi is not None else None
    check_filter_inputs(waveform, sos[..., 0, 3:], sos[..., 0, :3], first_zi)
    waveform, zi = to_result_dtype(waveform, sos, sos, zi)
    a_coeffs, b_coeffs = normalize_coefficients(
        sos[..., 3:], sos[..., :3], value_checks_allowed(waveform), waveform.is_complex()
    )
    if mode != EAGER:
        resolve_cascade_backend(backend, waveform, a_coeffs, b_coeffs, zi, read_data=False)  # name check
        return graph_sosfilt(waveform, a_coeffs, b_coeffs, zi, backend)
    name = resolve_cascade_backend(backend, waveform, a_coeffs, b_coeffs, zi)
    return cascade_dispatch.forward(name, waveform, a_coeffs, b_coeffs, zi)


def sosfilt_bank(
    waveform: Tensor, sos: Tensor, zi: Optional[Tensor] = None, backend: str = "auto"
) -> Tensor:
    """:func:`sosfilt_bank_with_state` without the final states.

    Example:
        >>> import torch
        >>> from multi_lfilter import sosfilt_bank
        >>> sos = torch.tensor([[0.2, 0.4, 0.2, 1.0, -0.6, 0.3]]).repeat(8, 1, 1)   # 8 banks of 1 section
        >>> sosfilt_bank(torch.randn(3, 1, 50), sos).shape
        torch.Size([3, 8, 50])
    """
    y, _ = sosfilt_bank_with_state(waveform, sos, zi, backend)
    return y
