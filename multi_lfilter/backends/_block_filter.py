"""One filtering by blocks, prepared and evaluated a chunk of blocks at a time.

The algorithm is described in ``block.py``; the matrices in ``_block_math``.
TorchScript-compatible.
"""
from typing import List, Optional

import torch
from torch import Tensor

from ._block_layout import MatrixLayout
from ._block_math import block_matrices, scan_histories

BLOCK_LENGTH = 32
# Chunks of blocks keep their float64 temporaries under max(this, half the output).
CHUNK_MIN_BYTES = 32 << 20
# ... and there are at most this many of them, so the op count stays bounded.
MAX_CHUNKS = 8


def chunk_starts(
    n_blocks: int,
    bytes_per_block: int,
    output_bytes: int,
    min_bytes: int = CHUNK_MIN_BYTES,
    max_chunks: int = MAX_CHUNKS,
) -> List[int]:
    """Block indices where chunks start, followed by ``n_blocks``.

    Chunks keep ``bytes_per_block`` times their length under
    ``max(min_bytes, output_bytes / 2)``, and there are at most ``max_chunks``. The
    last chunk holds at least two blocks (where there are two), so it holds the last
    ``N <= L`` outputs that the final state needs.
    """
    budget = max(min_bytes, output_bytes // 2)
    per_chunk = max(1, budget // max(bytes_per_block, 1))
    per_chunk = max(per_chunk, (n_blocks + max_chunks - 1) // max_chunks)
    starts = list(range(0, n_blocks, per_chunk))
    if len(starts) > 1 and n_blocks - starts[-1] == 1:
        starts.pop()
    starts.append(n_blocks)
    return starts


def window(signal: Tensor, start: int, stop: int, reverse: bool) -> Tensor:
    """Samples ``start .. stop - 1`` of ``signal`` in filter time, in float64, zeros
    outside the signal (filter time runs backwards with ``reverse``)."""
    length = signal.shape[-1]
    if reverse:
        start, stop = length - stop, length - start
    low = min(max(start, 0), length)
    high = max(min(stop, length), low)
    piece = torch.nn.functional.pad(signal[..., low:high].double(), [low - start, stop - high])
    return piece.flip(-1) if reverse else piece


class BlockFilter:
    """One filtering by blocks, prepared: steps 1 and 2 of the module doc are done,
    and ``outputs(start, stop)`` gives step 3 for a range of blocks.

    The signal is held as ``(R, T)`` rows where the filters share it, else as an
    ``(F, R, T)`` matrix (see ``MatrixLayout``).
    """

    def __init__(
        self,
        signal: Tensor,
        a_coeffs: Tensor,
        b_coeffs: Tensor,
        zi: Optional[Tensor],
        layout: MatrixLayout,
        block_length: int,
        reverse: bool,
        chunk_min_bytes: int = CHUNK_MIN_BYTES,
    ):
        order = a_coeffs.shape[-1] - 1
        self.order = order
        self.length = signal.shape[-1]
        self.block_length = max(block_length, order, 1)
        self.n_blocks = (self.length + self.block_length - 1) // self.block_length
        self.reverse = reverse
        self.layout = layout
        self.shared = layout.shared_by_filters(signal)
        self.source = layout.to_rows(signal) if self.shared else layout.to_matrix(signal)
        from_input, from_history, from_state, transition = block_matrices(a_coeffs, b_coeffs, self.block_length)
        self.from_input = layout.per_filter(from_input)  # (F, N + L, L)
        from_history = layout.per_filter(from_history)  # (F, N, L)
        n_filters, n_rows = layout.n_filters, layout.n_rows
        bytes_per_block = 3 * 8 * n_filters * n_rows * self.block_length
        output_bytes = n_filters * n_rows * self.length * signal.element_size()
        self.starts = chunk_starts(self.n_blocks, bytes_per_block, output_bytes, chunk_min_bytes)

        last = self.block_length - order
        histories = torch.zeros(
            [n_filters, n_rows, self.n_blocks, order], dtype=torch.float64, device=signal.device
        )
        zi_matrix: Optional[Tensor] = None
        if zi is not None:
            zi_matrix = layout.to_matrix(zi.double())  # (F, R, N)
        if order > 0 and self.n_blocks > 1:
            parts: List[Tensor] = []
            for index in range(len(self.starts) - 1):
                parts.append(self._from_rest(self.from_input[:, :, last:], self.starts[index], self.starts[index + 1]))
            last_outputs = torch.cat(parts, 2).flip(-1)  # (F, R, n_blocks, N), most recent first
            if zi_matrix is not None:
                from_zi = torch.matmul(zi_matrix, layout.per_filter(from_state)[:, :, last:]).flip(-1)
                last_outputs = torch.cat([last_outputs[:, :, :1] + from_zi.unsqueeze(2), last_outputs[:, :, 1:]], 2)
            histories = scan_histories(last_outputs, layout.per_filter(transition))
        if zi_matrix is not None:
            # zi acts like a history of block 0 through S instead of O.
            first_only = torch.nn.functional.pad(zi_matrix.unsqueeze(2), [0, 0, 0, self.n_blocks - 1])
            histories = torch.cat([histories, first_only], -1)
            from_history = torch.cat([from_history, layout.per_filter(from_state)], 1)
        self.histories = histories  # (F, R, n_blocks, N or 2 N)
        self.from_history = from_history.unsqueeze(1)  # (F, 1, N or 2 N, L)

    def _from_rest(self, weights: Tensor, start: int, stop: int) -> Tensor:
        """``x_ext @ weights`` for blocks ``start .. stop - 1``: ``(F, R, blocks, columns)``.

        ``weights`` is ``(F, N + L, columns)``: ``W`` or its last columns.
        """
        order, block_length = self.order, self.block_length
        n_filters, n_rows = self.layout.n_filters, self.layout.n_rows
        count, columns = stop - start, weights.shape[-1]
        samples = window(self.source, start * block_length - order, stop * block_length, self.reverse)
        x_ext = samples.unfold(-1, order + block_length, block_length)
        if self.shared:  # (R, blocks, N + L) @ (N + L, F columns): every filter at once
            side_by_side = weights.permute(1, 0, 2).reshape(order + block_length, n_filters * columns)
            product = torch.matmul(x_ext.reshape(n_rows * count, order + block_length), side_by_side)
            return product.reshape(n_rows, count, n_filters, columns).permute(2, 0, 1, 3)
        product = torch.bmm(x_ext.reshape(n_filters, n_rows * count, order + block_length), weights)
        return product.reshape(n_filters, n_rows, count, columns)

    def outputs(self, start: int, stop: int) -> Tensor:
        """The outputs of blocks ``start .. stop - 1`` in filter time, float64, cut at
        ``T``: ``(F, R, samples)``."""
        block_length = self.block_length
        from_past = torch.matmul(self.histories[:, :, start:stop], self.from_history)
        block = from_past + self._from_rest(self.from_input, start, stop)
        samples = min(stop * block_length, self.length) - start * block_length
        flat = block.reshape(self.layout.n_filters, self.layout.n_rows, (stop - start) * block_length)
        return flat[:, :, :samples]
