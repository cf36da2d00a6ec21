r"""Time-varying filters: coefficients that change every sample or every frame.

``lfilter_varying`` and ``sosfilt_varying`` filter like :func:`lfilter_bank` and
:func:`sosfilt_bank`, with a time axis on the coefficients just before the
coefficient axis: ``a_coeffs (..., T, K)`` holds step ``n``'s coefficients in row
``n``. A time axis of 1 means constant coefficients; with ``hop_length=H`` the rows
are frames, frame ``f`` applying at sample ``f * H`` and the samples in between
interpolated linearly between the two frames around them (after the last frame, it
holds). The coefficients' other leading dims broadcast against the waveform's as in
:func:`lfilter_bank`.

Backends (the registry in ``backends/dispatch.py`` declares which forms each runs):
``"native"``, the C kernels (``csrc/varying_kernels.c``: transposed direct form II,
frames interpolated inside the kernel, an analytic adjoint) for CPU tensors;
``"triton"``, the same for CUDA tensors (``backends/triton/varying.py``);
``"block"``, a parallel-in-time scan of built-in tensor ops for every form on any
device, whose op count does not depend on ``T`` (``backends/varying_scan/``: what
``torch.func``, ``torch.export`` and ONNX see); and ``"loop"``, the reference
(``backends/varying_loop.py``), a TorchScript loop over time for every form,
differentiable by autograd through every step. ``"auto"`` takes the native kernels
where they run the call and the scan elsewhere (TorchScript runs the loop).
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ._call_mode import EXPORT, TRANSFORM, call_mode
from ._precision import is_half, widen_half
from ._shapes import broadcast_batch_shape
from ._validation import check_is_tensor, check_kinds_and_sizes, value_checks_allowed
from .backends.dispatch import resolve_varying_backend, varying_backends, varying_filter
from .backends.varying_loop import filter_varying_loop, padded_coefficients, state_size

__all__ = [
    "lfilter_varying",
    "lfilter_varying_with_state",
    "sosfilt_varying",
    "sosfilt_varying_with_state",
    "varying_backends",
]



def _check_time_axis(name: str, coefficients: Tensor, length: int, hop: int) -> None:
    """The time axis is ``T`` or 1 (per sample, constant), or with a hop ``F`` frames,
    ``F >= ceil(T / H)`` (and at least 1)."""
    steps = coefficients.shape[-2]
    if steps == 1:
        return
    if hop == 0:
        if steps != length:
            raise ValueError(
                f"expected {name} of shape (..., T, K) with T = {length} (the waveform's length) or 1 "
                f"(constant), got {list(coefficients.shape)}; pass hop_length for frame-rate coefficients"
            )
        return
    needed = max(1, -(-length // hop))
    if steps < needed:
        raise ValueError(
            f"expected {name} with at least ceil(T / hop_length) = {needed} frames for T = {length} and "
            f"hop_length = {hop}, got {steps} frames (shape {list(coefficients.shape)})"
        )


def _check_inputs(
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor],
    form: str,
    hop_length: Optional[int],
    backend: str,
) -> Tuple[int, List[int]]:
    """Checks every argument; returns the hop (0 for per-sample or constant
    coefficients) and the batch shape."""
    if not torch.jit.is_scripting():
        check_is_tensor("waveform", waveform)
        check_is_tensor("a_coeffs", a_coeffs)
        check_is_tensor("b_coeffs", b_coeffs)
        check_is_tensor("zi", zi, optional=True)
        if hop_length is not None and (isinstance(hop_length, bool) or not isinstance(hop_length, int)):
            raise TypeError(f"expected hop_length to be an int or None, got {type(hop_length).__name__}")
    if form != "tdf2" and form != "df1" and form != "df2" and form != "tdf1":  # FORMS (TorchScript reads no globals)
        raise ValueError(f"expected form to be one of 'tdf2', 'df1', 'df2', 'tdf1', got '{form}'")
    if torch.jit.is_scripting() and backend != "auto" and backend != "loop":
        raise ValueError(f"expected backend 'auto' or 'loop' for time-varying filters under TorchScript, got '{backend}'")
    hop = 0
    if hop_length is not None:
        if hop_length < 1:
            raise ValueError(f"expected hop_length >= 1, got {hop_length}")
        hop = hop_length
    named: List[Tuple[str, Tensor]] = [("waveform", waveform), ("a_coeffs", a_coeffs), ("b_coeffs", b_coeffs)]
    if zi is not None:
        named.append(("zi", zi))
    check_kinds_and_sizes(named, a_coeffs, b_coeffs)  # dtypes, one device, no scalars, K >= 1
    for name, tensor in [("a_coeffs", a_coeffs), ("b_coeffs", b_coeffs)]:
        if tensor.dim() < 2:
            raise ValueError(f"expected {name} of shape (..., T, K) with K >= 1, got {list(tensor.shape)}")
    length = waveform.shape[-1]
    _check_time_axis("a_coeffs", a_coeffs, length, hop)
    _check_time_axis("b_coeffs", b_coeffs, length, hop)
    width = max(a_coeffs.shape[-1], b_coeffs.shape[-1])
    size = state_size(form, width - 1)
    if zi is not None and (zi.dim() == 0 or zi.shape[-1] != size):
        raise ValueError(
            f"expected zi of shape (..., {size}) for form '{form}' of order {width - 1}, got {list(zi.shape)}"
        )
    leading = [list(waveform.shape[:-1]), list(a_coeffs.shape[:-2]), list(b_coeffs.shape[:-2])]
    if zi is not None:
        leading.append(list(zi.shape[:-1]))
    batch = broadcast_batch_shape(leading)
    if batch is None:
        raise ValueError(
            f"expected the leading dims to broadcast (the coefficients' before their (T, K) dims), got "
            f"waveform {list(waveform.shape)}, a_coeffs {list(a_coeffs.shape)}, b_coeffs {list(b_coeffs.shape)}"
        )
    if value_checks_allowed(waveform):
        leading_a = a_coeffs[..., 0]
        if bool((leading_a == 0).any()):
            raise ValueError("expected a_coeffs[..., 0] != 0 at every step (each step is normalised by it), got a zero")
        if hop > 0 and leading_a.shape[-1] > 1 and bool((leading_a[..., 1:] * leading_a[..., :-1] <= 0).any()):
            raise ValueError(
                "expected a_coeffs[..., 0] of one sign in consecutive frames (the interpolated a0 "
                "would cross zero between them)"
            )
    return hop, batch


def lfilter_varying_with_state(
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor] = None,
    form: str = "tdf2",
    hop_length: Optional[int] = None,
    backend: str = "auto",
) -> Tuple[Tensor, Tensor]:
    r"""Filter with time-varying IIR filters and return the final state.

    Step ``n`` uses its own coefficients, normalised by its own ``a0[n]``. The
    ``form`` decides which coefficients meet which past values (they differ only when
    the coefficients move):

    - ``"tdf2"`` (transposed direct form II, the default):
      :math:`y[n] = b_0[n] x[n] + s_1[n]`,
      :math:`s_k[n+1] = s_{k+1}[n] + b_k[n] x[n] - a_k[n] y[n]`; state
      ``[s_1, ..., s_N]``, exactly :func:`lfilter_bank`'s (and scipy's).
    - ``"df1"``: :math:`y[n] = \sum_k b_k[n] x[n-k] - \sum_{k \ge 1} a_k[n] y[n-k]`;
      state ``[x[-1], ..., x[-N], y[-1], ..., y[-N]]``.
    - ``"df2"``: :math:`w[n] = x[n] - \sum_{k \ge 1} a_k[n] w[n-k]`,
      :math:`y[n] = \sum_k b_k[n] w[n-k]`; state ``[w[-1], ..., w[-N]]``.
    - ``"tdf1"``: :math:`u[n] = x[n] - \sum_{k \ge 1} a_k[n-k] u[n-k]`,
      :math:`y[n] = \sum_k b_k[n-k] u[n-k]`; state ``[p_1..p_N, q_1..q_N]``, the
      transposed states of the all-pole and the FIR halves.

    These are philtorch 0.7's ``lpv.lfilter`` forms (whose ``a`` omits ``a0``). With
    constant coefficients every form equals :func:`lfilter_bank`.

    Frame-rate coefficients (``hop_length=H``): frame ``f`` applies at sample
    ``f * H``; between frames the coefficients are interpolated linearly (then each
    sample is normalised by its interpolated ``a0``); after the last frame it holds.
    Linear interpolation keeps biquads stable (their stable region, the triangle
    ``|a2| < 1``, ``|a1| < 1 + a2``, is convex), and so every section of a cascade;
    it does not for higher direct forms. To stream, cut the signal at multiples of
    ``H`` and give a chunk covering samples ``[s, e)`` the frames ``s / H`` through
    ``ceil(e / H)`` (the next chunk's first frame, where it exists): chunked calls
    with the returned state then equal one call.

    Args:
        waveform: ``(..., T)``, float32 or float64 (float16/bfloat16 filtered in
            float32 and returned in their dtype).
        a_coeffs: ``(..., T or 1, Ka)`` (or ``(..., F, Ka)`` frames), ``a0`` included.
        b_coeffs: ``(..., T or 1, Kb)`` (or frames); the shorter is zero-padded.
        zi: ``(..., N)`` for ``"tdf2"`` and ``"df2"``, ``(..., 2 N)`` for ``"df1"``
            and ``"tdf1"``, ``N = max(Ka, Kb) - 1``; ``None`` is zeros.
        form: ``"tdf2"``, ``"df1"``, ``"df2"`` or ``"tdf1"``.
        hop_length: samples between frames, or ``None`` for per-sample (or constant)
            coefficients.
        backend: ``"auto"``, ``"native"`` (CPU, ``"tdf2"``), ``"triton"`` (CUDA,
            ``"tdf2"``), ``"block"`` or ``"loop"`` (every form, any device).

    Returns:
        ``(y, zf)``: ``(*batch, T)`` and ``(*batch, state)``, ``batch`` the broadcast
        of the waveform's leading dims with the coefficients' (before ``(T, K)``) and
        ``zi``'s.

    Raises:
        TypeError: for non-tensors, non-float dtypes, mixed dtypes, a non-int hop.
        ValueError: for a time axis that is not ``T``, 1 or enough frames, a
            ``hop_length`` below 1, a wrong ``zi`` size, leading dims that do not
            broadcast, a zero ``a0`` (or one whose interpolation crosses zero), an
            unknown form or backend, mixed devices.

    Example:
        >>> import torch
        >>> from multi_lfilter import lfilter_varying_with_state
        >>> poles = torch.linspace(0.0, 0.9, 8)                   # a one-pole sweep
        >>> a = torch.stack([torch.ones(8), -poles], -1)          # (T, 2)
        >>> b = torch.ones(1, 1)                                  # constant b0 = 1
        >>> y, zf = lfilter_varying_with_state(torch.ones(8), a, b)
        >>> y.shape, zf.shape
        (torch.Size([8]), torch.Size([1]))
    """
    if is_half(waveform.dtype):
        wide = widen_half(waveform, a_coeffs, b_coeffs, zi)
        y, zf = _filter(wide[0], wide[1], wide[2], wide[3], form, hop_length, backend)
        return y.to(waveform.dtype), zf.to(waveform.dtype)
    return _filter(waveform, a_coeffs, b_coeffs, zi, form, hop_length, backend)


def _filter(
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor],
    form: str,
    hop_length: Optional[int],
    backend: str,
) -> Tuple[Tensor, Tensor]:
    hop, batch = _check_inputs(waveform, a_coeffs, b_coeffs, zi, form, hop_length, backend)
    if torch.jit.is_scripting():
        a_wide, b_wide = padded_coefficients(a_coeffs, b_coeffs)
        y, zf = filter_varying_loop(waveform, a_wide, b_wide, zi, batch, form, hop)
    else:
        y, zf = _filter_outside_script(waveform, a_coeffs, b_coeffs, zi, batch, form, hop, backend)
    return y, zf.to(waveform.dtype)


@torch.jit.unused
def _filter_outside_script(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor], batch: List[int], form: str,
    hop: int, backend: str,
) -> Tuple[Tensor, Tensor]:
    """The registry's backend for the call; one built of tensor ops where a transform
    or an export must see every step (the native op has no batching rule or export
    graph yet)."""
    order = max(a_coeffs.shape[-1], b_coeffs.shape[-1]) - 1
    mode = call_mode([waveform, a_coeffs, b_coeffs, zi])
    in_graph = mode == TRANSFORM or mode == EXPORT
    name = resolve_varying_backend(backend, waveform, form, order, len(batch), in_graph)
    return varying_filter(name, waveform, a_coeffs, b_coeffs, zi, batch, form, hop)


def lfilter_varying(
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor] = None,
    form: str = "tdf2",
    hop_length: Optional[int] = None,
    backend: str = "auto",
) -> Tensor:
    """:func:`lfilter_varying_with_state` without the final state.

    Example:
        >>> import torch
        >>> from multi_lfilter import lfilter_varying
        >>> frames = torch.tensor([[1.0, -0.5], [1.0, -0.9]])     # 2 frames of (a0, a1)
        >>> lfilter_varying(torch.ones(3, 100), frames, torch.ones(1, 1), hop_length=64).shape
        torch.Size([3, 100])
    """
    y, _ = lfilter_varying_with_state(waveform, a_coeffs, b_coeffs, zi, form, hop_length, backend)
    return y


def sosfilt_varying_with_state(
    waveform: Tensor,
    sos: Tensor,
    zi: Optional[Tensor] = None,
    hop_length: Optional[int] = None,
    backend: str = "auto",
) -> Tuple[Tensor, Tensor]:
    """Filter through cascades of time-varying second-order sections.

    Section ``s`` runs ``lfilter_varying`` in transposed direct form II with
    ``sos[..., :, s, 3:]`` and ``sos[..., :, s, :3]`` on section ``s - 1``'s output.
    Frames interpolate as in :func:`lfilter_varying_with_state`; linear interpolation
    between stable sections stays stable.

    Args:
        waveform: ``(..., T)``.
        sos: ``(..., T or 1, S, 6)`` (or ``(..., F, S, 6)`` frames) sections
            ``[b0, b1, b2, a0, a1, a2]``; always with the time axis.
        zi: ``(..., S, 2)`` states (``lfilter_bank``'s per section) or ``None``.
        hop_length: samples between frames, or ``None``.
        backend: ``"auto"``, ``"native"``, ``"triton"``, ``"block"`` or ``"loop"``.

    Returns:
        ``(y, zf)``: ``(*batch, T)`` and ``(*batch, S, 2)``.

    Example:
        >>> import torch
        >>> from multi_lfilter import sosfilt_varying_with_state
        >>> sos = torch.tensor([[[0.2, 0.4, 0.2, 1.0, -0.6, 0.3]], [[0.2, 0.4, 0.2, 1.0, -1.2, 0.5]]])  # (F=2, S=1, 6)
        >>> y, zf = sosfilt_varying_with_state(torch.randn(4, 50), sos, hop_length=32)
        >>> y.shape, zf.shape
        (torch.Size([4, 50]), torch.Size([4, 1, 2]))
    """
    if not torch.jit.is_scripting():
        check_is_tensor("sos", sos)
        check_is_tensor("zi", zi, optional=True)
    if sos.dim() < 3 or sos.shape[-1] != 6 or sos.shape[-2] == 0:
        raise ValueError(f"expected sos of shape (..., T, S, 6) with S >= 1 sections, got {list(sos.shape)}")
    sections = sos.shape[-2]
    if zi is not None and (zi.dim() < 2 or zi.shape[-2] != sections or zi.shape[-1] != 2):
        raise ValueError(f"expected zi of shape (..., {sections}, 2) for {sections} sections, got {list(zi.shape)}")
    states: List[Tensor] = []
    y = waveform
    for section in range(sections):
        section_zi = zi[..., section, :] if zi is not None else None
        y, state = lfilter_varying_with_state(
            y, sos[..., section, 3:], sos[..., section, :3], section_zi, "tdf2", hop_length, backend
        )
        states.append(state)
    batch = list(y.shape[:-1])
    return y, torch.stack([state.expand(batch + [2]) for state in states], -2)


def sosfilt_varying(
    waveform: Tensor,
    sos: Tensor,
    zi: Optional[Tensor] = None,
    hop_length: Optional[int] = None,
    backend: str = "auto",
) -> Tensor:
    """:func:`sosfilt_varying_with_state` without the final states: ``(*batch, T)``.

    Example:
        >>> import torch
        >>> from multi_lfilter import sosfilt_varying
        >>> sos = torch.tensor([[0.2, 0.4, 0.2, 1.0, -0.6, 0.3]]).expand(3, 100, 1, 6)   # (C, T, S, 6)
        >>> sosfilt_varying(torch.randn(2, 1, 100), sos).shape
        torch.Size([2, 3, 100])
    """
    y, _ = sosfilt_varying_with_state(waveform, sos, zi, hop_length, backend)
    return y
