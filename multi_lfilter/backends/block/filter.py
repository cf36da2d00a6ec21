"""One filtering by blocks, prepared and evaluated a chunk of blocks at a time.

The algorithm is described in ``block``; the matrices in ``block.matrices``.
TorchScript-compatible.

Blocks and the samples in them are always in the signal's own (natural) order. To
filter backwards in time (the adjoint's pass) the matrices are flipped instead of the
data: a block's input, read backwards, times ``W`` is its natural-order input times
``W`` flipped along both dims, read backwards. Block ``j`` holds the samples
``j L - pad .. j L - pad + L - 1``, with ``pad = 0`` forwards and
``pad = n_blocks L - T`` backwards (so the partial block is the last one in filter
time either way), and its input is extended by the ``N`` samples before it in filter
time (before it forwards, after it backwards).
"""
from typing import List, Optional

import torch
from torch import Tensor

from ..._precision import compute_dtype
from .layout import MatrixLayout
from .matrices import block_matrices, scan_histories

FILTER_BLOCK_LENGTH = 32
# All blocks are processed at once where their float64 temporaries fit in this (the
# fewest ops); beyond it, in chunks of at most an eighth of the output's bytes. The
# adjoint holds a few such temporaries at once beside the output and its gradient, and
# its fwd+bwd peak should stay under 3x the output. (Chunks of this size, the earlier
# rule, cost more memory and no less time: benchmarks/results-2026-12-03.md, D10.)
CHUNK_MIN_BYTES = 32 << 20
# ... and there are at most this many chunks, so the op count stays bounded.
MAX_CHUNKS = 16


def chunk_starts(
    n_blocks: int,
    bytes_per_block: int,
    output_bytes: int,
    min_bytes: int = CHUNK_MIN_BYTES,
    max_chunks: int = MAX_CHUNKS,
) -> List[int]:
    """Block indices where chunks start, followed by ``n_blocks``.

    One chunk where ``bytes_per_block`` times ``n_blocks`` fits in ``min_bytes``;
    else chunks of at most ``output_bytes / 8`` where they can. There are at most
    ``max_chunks``, and every chunk holds at least two blocks (where there are two),
    so the first and the last hold the ``N <= L`` outputs the final state needs.
    """
    if n_blocks == 0:
        return [0]
    n_chunks = 1
    if n_blocks * bytes_per_block > min_bytes:
        per_chunk = max(1, (output_bytes // 8) // max(bytes_per_block, 1))
        n_chunks = (n_blocks + per_chunk - 1) // per_chunk
    n_chunks = max(1, min(n_chunks, max_chunks, n_blocks // 2))
    # Balanced: sizes differ by at most one block.
    return [(index * n_blocks) // n_chunks for index in range(n_chunks)] + [n_blocks]


def window(signal: Tensor, start: int, stop: int, out: Optional[Tensor] = None) -> Tensor:
    """Samples ``start .. stop - 1`` of ``signal`` as a contiguous float64 tensor
    (complex128 for a complex signal; ``out`` where given: a flat buffer at least that
    large), zeros outside the signal: one copy, whatever the signal's strides."""
    length = signal.shape[-1]
    low = min(max(start, 0), length)
    high = max(min(stop, length), low)
    shape = list(signal.shape[:-1]) + [stop - start]
    if out is None:
        result = torch.empty(shape, dtype=compute_dtype(signal), device=signal.device)
    else:
        size = 1
        for extent in shape:
            size *= extent
        result = out[:size].view(shape)
    if low > start:
        result[..., : low - start].zero_()
    result[..., low - start : high - start].copy_(signal[..., low:high])
    if high < stop:
        result[..., high - start :].zero_()
    return result


def grown(buffer: Tensor, size: int) -> Tensor:
    """``buffer`` where it holds ``size`` values, else a new one like it that does."""
    if buffer.numel() >= size:
        return buffer
    return buffer.new_empty([size])


class BlockFilter:
    """One filtering by blocks, prepared: steps 1 and 2 of ``block``'s module doc are
    done, and ``outputs(start, stop)`` gives step 3 for a range of blocks.

    The signal is held as ``(R, T)`` rows where the filters share it, else as an
    ``(F, R, T)`` matrix (see ``MatrixLayout``). With ``reuse_buffers`` (no autograd
    graph) every chunk's outputs are written into one buffer: fresh megabyte-sized
    temporaries cost page faults each time (benchmarks/results-2026-12-03.md, D3).
    """

    def __init__(
        self,
        signal: Tensor,
        a_coeffs: Tensor,
        b_coeffs: Optional[Tensor],
        zi: Optional[Tensor],
        layout: MatrixLayout,
        block_length: int,
        reverse: bool,
        reuse_buffers: bool,
        chunk_min_bytes: int = CHUNK_MIN_BYTES,
    ):
        """``b_coeffs`` ``None`` is ``b = [1]``, the all-pole part alone."""
        order = a_coeffs.shape[-1] - 1
        # Only the FIR part reads the N samples beyond each block.
        self.has_extra = b_coeffs is not None and order > 0
        if b_coeffs is None:
            b_coeffs = torch.nn.functional.pad(torch.ones_like(a_coeffs[..., :1]), [0, order])
        self.order = order
        self.length = signal.shape[-1]
        self.block_length = max(block_length, order, 1)
        block_length = self.block_length
        self.n_blocks = (self.length + block_length - 1) // block_length
        self.reverse = reverse
        self.padding = self.n_blocks * block_length - self.length if reverse else 0
        self.reuse_buffers = reuse_buffers
        self.layout = layout
        self.shared = layout.shared_by_filters(signal)
        self.source = layout.to_rows(signal) if self.shared else layout.to_matrix(signal)
        self.source_rows = layout.n_rows if self.shared else layout.n_filters * layout.n_rows
        from_input, from_history, from_state, transition = block_matrices(a_coeffs, b_coeffs, block_length)
        from_input = layout.per_filter(from_input)  # (F, N + L, L)
        from_history = layout.per_filter(from_history)  # (F, N, L)
        from_state = layout.per_filter(from_state)  # (F, N, L)
        if reverse:
            from_input = from_input.flip([1, 2])
            from_history = from_history.flip(-1)
            from_state = from_state.flip(-1)
        self.from_input = from_input
        self.from_history = from_history
        self.from_state = from_state
        n_filters, n_rows = layout.n_filters, layout.n_rows
        # The arithmetic's dtype: the coefficients' (float64, or complex128 for complex calls).
        compute = a_coeffs.dtype
        self.compute = compute
        element_bytes = 16 if a_coeffs.is_complex() else 8
        bytes_per_block = element_bytes * n_filters * n_rows * block_length
        output_bytes = n_filters * n_rows * self.length * signal.element_size()
        self.starts = chunk_starts(self.n_blocks, bytes_per_block, output_bytes, chunk_min_bytes)
        # Empty until first used (TorchScript attributes cannot start as None here).
        self.buffer = torch.empty([0], dtype=compute, device=signal.device)
        self.window_buffer = torch.empty([0], dtype=compute, device=signal.device)
        # The block that filter time enters first (it also receives zi).
        self.first_block = self.n_blocks - 1 if reverse else 0
        zi_matrix: Optional[Tensor] = None
        if zi is not None:
            zi_matrix = layout.to_matrix(zi.to(compute))  # (F, R, N)
        self.zi_matrix = zi_matrix

        if order > 0 and self.n_blocks > 1:
            histories = self._scan(from_input, from_state, layout.per_filter(transition))
        else:
            histories = torch.zeros([n_filters, self.n_blocks, n_rows, order], dtype=compute, device=signal.device)
        self.histories = histories  # (F, n_blocks, R, N)

    def _scan(self, from_input: Tensor, from_state: Tensor, transition: Tensor) -> Tensor:
        """Step 2 of ``block``'s module doc: the history entering every block, ``(F, n_blocks, R, N)``.

        The scan's increments (``scan_histories``) are every block's last outputs from
        rest, each at the block that filter time enters next (the block after it
        forwards, the one before it backwards), zi's share in the first block's, and
        zeros at the block filter time enters first. With ``reuse_buffers`` they are
        written into the tensor the scan then fills in place: no copy of them is made.
        """
        n_filters, n_rows, order, n_blocks = self.layout.n_filters, self.layout.n_rows, self.order, self.n_blocks
        step = -1 if self.reverse else 1
        # Every block but the last in filter time reaches another's history.
        first_source, end_source = (1, n_blocks) if self.reverse else (0, n_blocks - 1)
        recent_columns = self._most_recent(from_input)
        device = from_input.device
        if self.reuse_buffers:
            increments = torch.empty([n_filters, n_blocks, n_rows, order], dtype=self.compute, device=device)
            increments[:, self.first_block].zero_()
        else:  # the first block's zeros, joined with the chunks' pieces once below
            increments = torch.zeros([n_filters, 1, n_rows, order], dtype=self.compute, device=device)
        pieces: List[Tensor] = []
        for index in range(len(self.starts) - 1):
            # Every chunk holds two blocks, so at least one is left.
            start = max(self.starts[index], first_source)
            stop = min(self.starts[index + 1], end_source)
            product = self._from_rest(recent_columns, start, stop, False)
            product = self._blocks_first(product, stop - start, order)
            if self.reuse_buffers:
                increments[:, start + step : stop + step].copy_(product)
            else:
                pieces.append(product)
        if not self.reuse_buffers:
            increments = torch.cat(pieces + [increments] if self.reverse else [increments] + pieces, 1)
        zi_matrix = self.zi_matrix
        if zi_matrix is not None:
            from_zi = torch.bmm(zi_matrix, self._most_recent(from_state))  # (F, R, N)
            target = self.first_block + step
            if self.reuse_buffers:
                increments[:, target] += from_zi
            else:
                entered = (increments[:, target] + from_zi).unsqueeze(1)
                increments = torch.cat([increments[:, :target], entered, increments[:, target + 1 :]], 1)
        return scan_histories(increments, transition, self.reuse_buffers, self.reverse)

    def _most_recent(self, matrices: Tensor) -> Tensor:
        """The columns of natural-order block responses that are the block's last ``N``
        outputs in filter time, most recent first."""
        if self.reverse:
            return matrices[:, :, : self.order]
        return matrices[:, :, self.block_length - self.order :].flip(-1)

    def _from_rest(self, weights: Tensor, start: int, stop: int, into_buffer: bool) -> Tensor:
        """``x_ext @ weights`` for blocks ``start .. stop - 1``, ``weights`` ``(F, N + L, columns)``
        (``W`` or some of its columns): ``(R blocks, F columns)`` where the filters
        share the input (every filter in one product), else ``(F, R blocks, columns)``.

        ``x_ext`` is never formed: its ``L`` samples of the block itself are a view of
        one window of the signal, and only the ``N`` samples beyond the block are
        copied (into ``extra``); the product is ``main @ W_main + extra @ W_extra``.
        """
        order, block_length = self.order, self.block_length
        n_filters, n_rows = self.layout.n_filters, self.layout.n_rows
        count, columns = stop - start, weights.shape[-1]
        first = start * block_length - self.padding
        main_buffer: Optional[Tensor] = None
        if self.reuse_buffers:  # consumed by the products below
            main_buffer = self._window_buffer(self.source_rows * count * block_length)
        main = window(self.source, first, first + count * block_length, main_buffer)
        blocks = main.view(list(main.shape[:-1]) + [count, block_length])
        # Forwards the extra samples are the N before the block (rows 0 .. N - 1 of W);
        # backwards the N after it (the last rows of the flipped W).
        if not self.has_extra:
            extra = main[..., :0]
            main_weights = weights[:, :block_length] if self.reverse else weights[:, order:]
            extra_weights = weights[:, :0]
        elif self.reverse:
            beyond = window(self.source, first + count * block_length, first + count * block_length + order)
            extra = torch.cat([blocks[..., 1:, :order], beyond.unsqueeze(-2)], -2)
            main_weights, extra_weights = weights[:, :block_length], weights[:, block_length:]
        else:
            before = window(self.source, first - order, first)
            extra = torch.cat([before.unsqueeze(-2), blocks[..., :-1, block_length - order :]], -2)
            main_weights, extra_weights = weights[:, order:], weights[:, :order]
        if self.shared:
            main_side = main_weights.permute(1, 0, 2).reshape(block_length, n_filters * columns)
            rows = main.view(n_rows * count, block_length)
            if into_buffer:
                out = self._buffer(n_rows * count * n_filters * columns).view(n_rows * count, n_filters * columns)
                product = torch.mm(rows, main_side, out=out)
            else:
                product = torch.mm(rows, main_side)
            if self.has_extra:
                extra_side = extra_weights.permute(1, 0, 2).reshape(order, n_filters * columns)
                product.addmm_(extra.reshape(n_rows * count, order), extra_side)
            return product
        per_filter = main.view(n_filters, n_rows * count, block_length)
        if into_buffer:
            out = self._buffer(n_filters * n_rows * count * columns).view(n_filters, n_rows * count, columns)
            product = torch.bmm(per_filter, main_weights, out=out)
        else:
            product = torch.bmm(per_filter, main_weights)
        if self.has_extra:
            product.baddbmm_(extra.reshape(n_filters, n_rows * count, order), extra_weights)
        return product

    def _buffer(self, size: int) -> Tensor:
        buffer = grown(self.buffer, size)
        self.buffer = buffer
        return buffer[:size]

    def _window_buffer(self, size: int) -> Tensor:
        buffer = grown(self.window_buffer, size)
        self.window_buffer = buffer
        return buffer

    def _blocks_first(self, product: Tensor, count: int, columns: int) -> Tensor:
        """A product of ``_from_rest`` with ``columns`` per filter as ``(F, blocks, R,
        columns)`` (passed in: with no filters the product's shape does not tell)."""
        n_filters, n_rows = self.layout.n_filters, self.layout.n_rows
        if self.shared:
            return product.view(n_rows, count, n_filters, columns).permute(2, 1, 0, 3)
        return product.view(n_filters, n_rows, count, columns).transpose(1, 2)

    def samples(self, start: int, stop: int) -> List[int]:
        """``[first, end]``: the signal's samples that blocks ``start .. stop - 1`` hold."""
        first = start * self.block_length - self.padding
        end = stop * self.block_length - self.padding
        return [max(first, 0), min(end, self.length)]

    def outputs(self, start: int, stop: int) -> Tensor:
        """The outputs of blocks ``start .. stop - 1``, float64, ``(F, R, blocks, L)``,
        samples outside the signal included (a view into a reused buffer with
        ``reuse_buffers``: use it before the next call)."""
        n_filters, n_rows = self.layout.n_filters, self.layout.n_rows
        block_length, count = self.block_length, stop - start
        product = self._from_rest(self.from_input, start, stop, self.reuse_buffers)
        if self.shared:  # (F, R blocks, L) view of the (R blocks, F L) product
            from_rest = product.view(n_rows * count, n_filters, block_length).transpose(0, 1)
        else:
            from_rest = product
        histories = self.histories[:, start:stop].transpose(1, 2).reshape(n_filters, n_rows * count, self.order)
        zi_matrix = self.zi_matrix
        receives_zi = zi_matrix is not None and start <= self.first_block < stop
        where = self.first_block - start
        if self.reuse_buffers:
            from_rest.baddbmm_(histories, self.from_history)
            if self.shared:
                outputs = product.view(n_rows, count, n_filters, block_length).permute(2, 0, 1, 3)
            else:
                outputs = product.view(n_filters, n_rows, count, block_length)
            if zi_matrix is not None and receives_zi:  # zi enters through S
                outputs[:, :, where].baddbmm_(zi_matrix, self.from_state)
            return outputs
        outputs = torch.baddbmm(from_rest, histories, self.from_history).view(n_filters, n_rows, count, block_length)
        if zi_matrix is not None and receives_zi:
            entered = outputs[:, :, where : where + 1] + torch.bmm(zi_matrix, self.from_state).unsqueeze(2)
            outputs = torch.cat([outputs[:, :, :where], entered, outputs[:, :, where + 1 :]], 2)
        return outputs

    def flat_outputs(self, start: int, stop: int) -> Tensor:
        """``outputs`` as ``(F, R, samples)``, only the signal's samples (see ``samples``)."""
        outputs = self.outputs(start, stop)
        flat = outputs.reshape(self.layout.n_filters, self.layout.n_rows, (stop - start) * self.block_length)
        first, end = self.samples(start, stop)
        offset = start * self.block_length - self.padding
        return flat[:, :, first - offset : end - offset]

    def final_outputs(self) -> Tensor:
        """The last ``N`` outputs in filter time, most recent first (zeros before the
        start): ``(F, R, N)`` float64."""
        order = self.order
        if self.n_blocks == 0:
            return torch.zeros(
                [self.layout.n_filters, self.layout.n_rows, order], dtype=self.compute, device=self.source.device
            )
        # Every chunk holds two blocks, so the block that filter time leaves last and
        # the one before it hold them.
        if self.reverse:
            start, stop = 0, min(2, self.n_blocks)
        else:
            start, stop = max(self.n_blocks - 2, 0), self.n_blocks
        outputs = self.flat_outputs(start, stop)
        available = min(order, outputs.shape[-1])
        if self.reverse:
            recent = outputs[:, :, :available].clone()  # not a view into the buffer
            return torch.nn.functional.pad(recent, [0, order - available])
        recent = outputs[:, :, outputs.shape[-1] - available :].flip(-1)
        return torch.nn.functional.pad(recent, [0, order - available])
