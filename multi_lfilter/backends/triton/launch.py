"""Launch arithmetic of the Triton kernels: grids, chunks of time and the batch layout.

Plain Python on shapes and strides, with no Triton import, so it is tested without a
GPU (``tests/test_triton_launch.py``). The kernels themselves are in
``triton.kernels``; ``triton`` allocates and launches.
"""
from typing import List, Optional, Tuple

from torch import Tensor

# The kernels index the broadcast batch as four dims (fewer are padded with leading
# ones); a problem with more batch dims is refused by the backend registry.
MAX_BATCH_DIMS = 4
# CUDA's limit on grid dimensions 1 and 2 (where chunks of time go).
MAX_GRID_CHUNKS = 65535


def padded_batch(batch: List[int]) -> List[int]:
    """The batch as the kernels' four dims ``(n0, size1, size2, size3)``.

    Raises:
        ValueError: for more than ``MAX_BATCH_DIMS`` dims (the registry refuses such
            problems before they get here).
    """
    if len(batch) > MAX_BATCH_DIMS:
        raise ValueError(f"expected at most {MAX_BATCH_DIMS} batch dims for the Triton kernels, got {batch}")
    return [1] * (MAX_BATCH_DIMS - len(batch)) + list(batch)


def batch_strides(tensor: Optional[Tensor], batch: List[int], tail_dims: int = 1) -> List[int]:
    """A tensor's element strides along the padded batch (0 where it broadcasts or is
    missing), then its strides along its ``tail_dims`` last dims, innermost first
    (the time or tap step, then the section step for cascades).

    ``tensor`` is ``(..., K)`` (``tail_dims=1``) or ``(..., S, K)`` (``tail_dims=2``)
    with leading dims that broadcast to ``batch``; ``None`` gives zeros (the kernel
    then does not read it).
    """
    if tensor is None:
        return [0] * (MAX_BATCH_DIMS + tail_dims)
    shape = list(tensor.shape)
    strides = list(tensor.stride())
    leading = len(shape) - tail_dims
    result = [0] * MAX_BATCH_DIMS
    for dim in range(leading):
        padded_dim = MAX_BATCH_DIMS - leading + dim
        if shape[dim] != 1:
            result[padded_dim] = strides[dim]
    tail = [strides[-1 - k] for k in range(tail_dims)]
    return result + tail


def chain_count(batch: List[int]) -> int:
    count = 1
    for size in batch:
        count *= size
    return count


def program_count(lanes: int, block: int) -> int:
    """Programs along grid dim 0 for ``lanes`` chains, ``block`` per program (at least 1)."""
    return max(1, -(-lanes // block))


def chunking(
    n_chains: int, length: int, state_size: int, parallel_chains: int, min_chunk_length: int, alignment: int
) -> Tuple[int, int]:
    """``(n_chunks, chunk_length)`` for a pass over ``length`` samples of ``n_chains`` chains.

    Time is split while fewer than ``parallel_chains`` (chain, chunk) pairs would run,
    into chunks of at least ``min_chunk_length`` samples, each a multiple of
    ``alignment`` (so every chunk starts where a tile of the one before would), and
    never into more than ``MAX_GRID_CHUNKS`` chunks (the grid's limit). A filter without state (``state_size == 0``) has nothing to carry:
    one chunk.
    """
    if n_chains == 0 or length == 0 or state_size == 0:
        return 1, length
    wanted = min(parallel_chains // n_chains, length // max(min_chunk_length, 1), MAX_GRID_CHUNKS)
    if wanted <= 1:
        return 1, length
    chunk_length = -(-length // wanted)
    chunk_length = -(-chunk_length // alignment) * alignment
    return -(-length // chunk_length), chunk_length
