"""The block (chunked) backend: the recurrence as batched matrix products.

Made of standard tensor ops only, so it runs on any device, scripts with TorchScript
and exports; it is the default on CUDA and the scripted path for long signals. Time
is cut into blocks of ``L`` samples and

1. the FIR part and the ``zi`` injection give ``v`` (``v[n] = sum_k b_k x[n-k] + zi[n]``);
2. inside each block, the all-pole response to ``v`` from rest is ``Toeplitz(h) v``,
   with ``h`` the filter's first ``L`` impulse-response samples: one batched matmul
   for all blocks at once;
3. across blocks, the last ``N`` outputs of a block (its *history*) set the next
   block's zero-input response ``O s``: a scan over blocks with an ``N x N`` matrix,
   ``s[m + 1] = tail[m] + Q s[m]``, then one more batched matmul adds ``O s``;
4. the final state comes from the last samples in closed form (``_state.final_state``).

``L`` trades FLOPs (``L`` multiply-adds per sample) for sequential steps (``T / L``).
Arithmetic is float64 whatever the input dtype, like every backend.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .._adjoint import filter_adjoint
from .._shapes import filter_batch_shape, take_last
from .._state import final_state

BLOCK_LENGTH = 64


def block_responses(a_coeffs: Tensor, block_length: int) -> Tuple[Tensor, Tensor]:
    """The all-pole filter's responses over one block.

    Returns:
        ``(h, O)``: the impulse response ``(..., L)`` and the zero-input responses
        ``(..., L, N)``, column ``i`` being the output when the history (the last ``N``
        outputs, most recent first) is the unit vector ``e_i``.
    """
    order = a_coeffs.shape[-1] - 1
    lead = list(a_coeffs.shape[:-1])
    feedback = a_coeffs[..., 1:].unsqueeze(-2)  # (..., 1, N)
    # Row 0 answers an impulse from rest; row i + 1 starts from history e_i.
    history = torch.zeros(lead + [order + 1, order], dtype=a_coeffs.dtype, device=a_coeffs.device)
    history[..., 1:, :] = torch.eye(order, dtype=a_coeffs.dtype, device=a_coeffs.device)
    impulse = torch.zeros(lead + [order + 1], dtype=a_coeffs.dtype, device=a_coeffs.device)
    impulse[..., 0] = 1.0
    outputs: List[Tensor] = []
    for step in range(block_length):
        output = -(history * feedback).sum(-1)
        if step == 0:
            output = output + impulse
        history = torch.cat([output.unsqueeze(-1), history[..., :-1]], -1)
        outputs.append(output)
    responses = torch.stack(outputs, -1)  # (..., N + 1, L)
    return responses[..., 0, :], responses[..., 1:, :].transpose(-1, -2)


def toeplitz_lower(impulse_response: Tensor) -> Tensor:
    """``T[..., i, j] = h[i - j]`` for ``i >= j``, else 0: ``(..., L, L)``."""
    length = impulse_response.shape[-1]
    steps = torch.arange(length, device=impulse_response.device)
    lag = steps.unsqueeze(1) - steps.unsqueeze(0)
    values = take_last(impulse_response, lag.clamp(min=0))
    return values * (lag >= 0).to(impulse_response.dtype)


def fir_with_injection(waveform: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]) -> Tensor:
    """``v[n] = sum_k b_k x[n - k] + zi[n]`` (``zi[n] = 0`` for ``n >= N``)."""
    order = b_coeffs.shape[-1] - 1
    length = waveform.shape[-1]
    padded = torch.nn.functional.pad(waveform, [order, 0])
    v = b_coeffs[..., 0:1] * waveform
    for k in range(1, order + 1):
        v = v + b_coeffs[..., k : k + 1] * padded[..., order - k : order - k + length]
    if zi is not None and order > 0:
        head = min(order, length)
        v = v + torch.nn.functional.pad(zi[..., :head], [0, length - head])
    return v


def filter_block(
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor],
    block_length: int = BLOCK_LENGTH,
) -> Tuple[Tensor, Tensor]:
    """Filter with normalised float64 coefficients by blocks; see the module doc.

    Args:
        waveform: ``(..., T)``.
        a_coeffs: ``(..., K)`` float64, ``a_coeffs[..., 0] == 1``.
        b_coeffs: ``(..., K)`` float64.
        zi: ``(..., N)`` or ``None``.
        block_length: ``L``, at least ``N``.

    Returns:
        ``(y, zf)``: ``(*batch, T)`` and ``(*batch, N)`` in the waveform's dtype.
    """
    batch = filter_batch_shape(waveform, a_coeffs, b_coeffs, zi)
    order = a_coeffs.shape[-1] - 1
    length = waveform.shape[-1]
    dtype = waveform.dtype
    block_length = max(block_length, order, 1)
    x = waveform.double()
    if zi is not None:
        zi = zi.double()

    v = fir_with_injection(x, b_coeffs, zi).expand(batch + [length])
    if order == 0 or length == 0:
        y = v
    else:
        n_blocks = (length + block_length - 1) // block_length
        blocks = torch.nn.functional.pad(v, [0, n_blocks * block_length - length])
        blocks = blocks.reshape(batch + [n_blocks, block_length])
        impulse_response, zero_input = block_responses(a_coeffs, block_length)
        # (..., M, L) @ (..., L, L): every block from rest, in one product.
        from_rest = blocks @ toeplitz_lower(impulse_response).transpose(-1, -2)

        # Carry the history across blocks: s[m + 1] = tail[m] + Q s[m], Q[i] = O[L - 1 - i].
        carry = zero_input[..., block_length - order :, :].flip(-2)  # (..., N, N)
        tails = from_rest[..., block_length - order :].flip(-1)  # (..., M, N)
        history = torch.zeros(batch + [order], dtype=torch.float64, device=x.device)
        histories: List[Tensor] = []
        for index in range(n_blocks):
            histories.append(history)
            history = tails[..., index, :] + (carry @ history.unsqueeze(-1)).squeeze(-1)
        stacked = torch.stack(histories, -2)  # (..., M, N)
        y = from_rest + stacked @ zero_input.transpose(-1, -2)
        y = y.reshape(batch + [n_blocks * block_length])[..., :length]

    zf = final_state(x, y, a_coeffs, b_coeffs, zi).expand(batch + [order])
    return y.to(dtype).contiguous(), zf.to(dtype).contiguous()


def forward(
    waveform: Tensor, a_coeffs: Tensor, b_coeffs: Tensor, zi: Optional[Tensor]
) -> Tuple[Tensor, Tensor]:
    """The backend contract's forward kernel: see ``filter_block``."""
    return filter_block(waveform, a_coeffs, b_coeffs, zi)


def adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs_input_grad):
    """The backend contract's adjoint kernel: the composite adjoint over this forward."""
    return filter_adjoint(
        forward, grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, zi_shape, needs_input_grad
    )
