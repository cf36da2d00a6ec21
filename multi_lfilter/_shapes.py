"""Shape helpers shared by the functional layer and every backend.

All of them are TorchScript-compatible: the scripted path (``torch.jit.script`` of the
public functions) runs them too.

Dimension names used across the package: ``T`` time, ``K = N + 1`` coefficients,
``N`` filter order, and the *batch* shape, the NumPy broadcast of the leading
dimensions of the waveform, the coefficients and the initial state.
"""
from typing import List, Optional

import torch
from torch import Tensor


def broadcast_batch_shape(shapes: List[List[int]]) -> Optional[List[int]]:
    """Broadcast a list of shapes with NumPy rules.

    Returns ``None`` where the shapes do not broadcast (the caller words the error).
    """
    ndim = 0
    for shape in shapes:
        ndim = max(ndim, len(shape))
    result: List[int] = [1] * ndim
    for shape in shapes:
        offset = ndim - len(shape)
        for i, size in enumerate(shape):
            current = result[offset + i]
            if current == 1:
                result[offset + i] = size
            elif size != 1 and size != current:
                return None
    return result


def filter_batch_shape(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]
) -> List[int]:
    """The broadcast leading shape of validated inputs (all shapes known to broadcast)."""
    shapes = [list(waveform.shape[:-1]), list(a_coeffs.shape[:-1]), list(b_coeffs.shape[:-1])]
    if zi is not None:
        shapes.append(list(zi.shape[:-1]))
    batch = broadcast_batch_shape(shapes)
    if batch is None:
        raise ValueError(f"expected broadcastable leading dims, got {shapes}")
    return batch


def cascade_batch_shape(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]
) -> List[int]:
    """:func:`filter_batch_shape` for a cascade: ``(..., S, K)`` coefficients and
    ``(..., S, N)`` states, whose batch dims are all but the last two."""
    first_zi = None if zi is None else zi[..., 0, :]
    return filter_batch_shape(waveform, a_coeffs[..., 0, :], b_coeffs[..., 0, :], first_zi)


def sum_to_shape(gradient: Tensor, shape: List[int]) -> Tensor:
    """Sum ``gradient`` over the dimensions that were broadcast to reach its shape."""
    if list(gradient.shape) == shape:
        return gradient
    return gradient.sum_to_size(shape)



def take_last(values: Tensor, index: Tensor) -> Tensor:
    """``values[..., index]`` for a 2-D ``index``: ``(..., *index.shape)``.

    Spelled with ``index_select`` because TorchScript cannot index after an ellipsis.
    """
    picked = torch.index_select(values, -1, index.reshape(-1))
    return picked.reshape(list(values.shape[:-1]) + list(index.shape))
