"""Batch layouts for the block algorithm's batched matrix products.

TorchScript-compatible (the scripted path runs the block algorithm).
"""
from typing import List

from torch import Tensor


class MatrixLayout:
    """Moves ``(*batch, L)`` signals to ``(F, R, L)`` and back, for batched matmuls.

    ``F`` flattens the batch dims along which the filter varies (one matrix per
    filter), ``R`` the others (rows that share a filter). ``torch.matmul`` would
    instead materialise a copy of every filter's matrix per row. A signal that does
    not vary along the filter dims (the bank case) can also be laid out as ``(R, L)``
    rows, for one matrix product with every filter's matrix side by side.
    """

    def __init__(self, batch: List[int], a_coeffs: Tensor, b_coeffs: Tensor):
        self.batch = batch
        self.filter_dims: List[int] = []
        self.row_dims: List[int] = []
        for dim in range(len(batch)):
            if _varies(a_coeffs, dim, len(batch)) or _varies(b_coeffs, dim, len(batch)):
                self.filter_dims.append(dim)
            else:
                self.row_dims.append(dim)
        self.order: List[int] = self.filter_dims + self.row_dims
        self.inverse: List[int] = _inverse(self.order)
        self.n_filters = 1
        for dim in self.filter_dims:
            self.n_filters *= batch[dim]
        self.n_rows = 1
        for dim in self.row_dims:
            self.n_rows *= batch[dim]

    def to_matrix(self, signal: Tensor) -> Tensor:
        """``(*batch, L)`` (broadcastable to it) -> ``(F, R, L)``."""
        length = signal.shape[-1]
        signal = signal.expand(self.batch + [length])
        return signal.permute(self.order + [len(self.batch)]).reshape(self.n_filters, self.n_rows, length)

    def from_matrix(self, matrix: Tensor) -> Tensor:
        """``(F, R, *trailing)`` -> ``(*batch, *trailing)``, a view."""
        trailing = list(matrix.shape[2:])
        shape = [self.batch[dim] for dim in self.order] + trailing
        ndim = len(self.batch)
        return matrix.reshape(shape).permute(self.inverse + [ndim + i for i in range(len(trailing))])

    def shared_by_filters(self, signal: Tensor) -> bool:
        """Whether ``signal`` (broadcastable to ``(*batch, L)``) has size 1 along every filter dim."""
        for dim in self.filter_dims:
            if _varies(signal, dim, len(self.batch)):
                return False
        return True

    def to_rows(self, signal: Tensor) -> Tensor:
        """A signal shared by the filters, ``(..., L)`` -> ``(R, L)``."""
        length = signal.shape[-1]
        aligned = signal.reshape([1] * (len(self.batch) + 1 - signal.dim()) + list(signal.shape))
        return aligned.expand(self._sizes_along(self.row_dims) + [length]).reshape(self.n_rows, length)

    def from_filters(self, values: Tensor) -> Tensor:
        """Per-filter ``(F, Q)`` -> ``(*batch, Q)`` with size 1 along the row dims."""
        return values.reshape(self._sizes_along(self.filter_dims) + [values.shape[-1]])

    def from_shared_rows(self, values: Tensor) -> Tensor:
        """``(R, Q)`` rows -> ``(*batch, Q)`` with size 1 along the filter dims."""
        return values.reshape(self._sizes_along(self.row_dims) + [values.shape[-1]])

    def _sizes_along(self, dims: List[int]) -> List[int]:
        """The batch shape with size 1 everywhere but ``dims`` (flattening ``(*batch)``
        in that shape keeps ``dims`` in ascending order, as ``F`` and ``R`` do)."""
        shape = [1] * len(self.batch)
        for dim in dims:
            shape[dim] = self.batch[dim]
        return shape

    def per_filter(self, matrices: Tensor) -> Tensor:
        """Per-filter ``(..., P, Q)`` matrices (leading dims those of ``a`` and ``b``) -> ``(F, P, Q)``."""
        rows, columns = matrices.shape[-2], matrices.shape[-1]
        missing = len(self.batch) - (matrices.dim() - 2)
        aligned = matrices.reshape([1] * missing + list(matrices.shape))
        expanded_shape = [aligned.shape[dim] for dim in range(len(self.batch))]
        for dim in self.filter_dims:
            expanded_shape[dim] = self.batch[dim]
        aligned = aligned.expand(expanded_shape + [rows, columns])
        # Row dims have size 1 here (the filter does not vary along them), so this keeps F.
        selected = aligned.permute(self.order + [len(self.batch), len(self.batch) + 1])
        return selected.reshape(self.n_filters, rows, columns)


def _varies(tensor: Tensor, dim: int, batch_ndim: int) -> bool:
    """Whether ``tensor`` (``(..., K)`` or ``(..., T)``, its leading dims aligned right
    with the batch) has a size other than 1 along batch dim ``dim``."""
    own = dim - (batch_ndim - (tensor.dim() - 1))
    return own >= 0 and tensor.shape[own] != 1


def _inverse(permutation: List[int]) -> List[int]:
    inverse: List[int] = [0] * len(permutation)
    for position, dim in enumerate(permutation):
        inverse[dim] = position
    return inverse
