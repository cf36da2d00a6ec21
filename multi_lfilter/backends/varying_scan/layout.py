"""The time-major layout of the portable time-varying filter, and the way in and out.

Every step of every block is one position ``(L, n_groups, G)``, and the batch dims come
last, all of them (size 1 where broadcast), so each op runs over the batch as its
innermost, contiguous dims (with the state or the coefficients innermost instead, CPU
ops ran 20 to 40 times slower). The signal fills whole blocks from its end: the first
block starts with up to ``L - 1`` steps before the signal, and at least one whole
block of steps follows it (at least two groups in all).

Positions are gathered by index (advanced indexing of a leading dim), never padded and
reshaped: torch.export then keeps ``T`` dynamic, where a reshape of the group count
would make it prove divisibilities it cannot. TorchScript-compatible.
"""
from typing import List, Tuple

import torch
from torch import Tensor


def with_batch_rank(values: Tensor, rank: int) -> Tensor:
    """``values`` with leading dims of size 1 added until it has ``rank`` dims."""
    for _ in range(rank - values.dim()):
        values = values.unsqueeze(0)
    return values


def step_samples(length: int, block_length: int, group_blocks: int, device: torch.device) -> Tensor:
    """The sample each step reads, ``(L, n_groups, G)``: negative for the steps
    before the signal, which fill the first block (so that the signal ends with a
    block), ``T`` or more past its end.

    At least two groups, and whole blocks past the end: torch.export then never has
    to decide whether the group dim is 1 or whether the last group is full. Built from
    aranges of known sizes: no reshape of the (symbolic) group count.
    """
    n_groups = length // (block_length * group_blocks) + 2
    group_starts = torch.arange(n_groups, device=device) * (group_blocks * block_length) - (-length) % block_length
    block_starts = torch.arange(group_blocks, device=device) * block_length
    within = torch.arange(block_length, device=device)
    return within.reshape(-1, 1, 1) + group_starts.unsqueeze(-1) + block_starts


def _zero_padded(coefficients: Tensor, width: int) -> Tensor:
    """``(..., K)`` coefficients zero-padded to ``width``."""
    if coefficients.shape[-1] == width:
        return coefficients
    return torch.nn.functional.pad(coefficients, [0, width - coefficients.shape[-1]])


def per_step(coefficients: Tensor, positions: Tensor, hop: int, rank: int) -> Tensor:
    """Every step's float64 coefficients, ``(L, n_groups, G, K, *batch)``, or
    ``(1, 1, 1, K, *batch)`` for constant ones, from ``(..., Tc, K)`` coefficients
    (``varying_loop.coefficients_at`` at every position of ``(L, n_groups, G)``);
    ``rank`` the batch rank."""
    wide = with_batch_rank(coefficients, rank + 2).movedim([-2, -1], [0, 1])
    # One copy, to float64 with the batch innermost; the gathers then copy whole rows.
    wide = wide.to(torch.float64, memory_format=torch.contiguous_format)  # (Tc, K, *batch)
    steps = wide.shape[0]
    if steps == 1:
        return wide.unsqueeze(0).unsqueeze(0)
    if hop == 0:
        return wide[positions]
    frame = torch.div(positions, hop, rounding_mode="floor")
    weight = (positions - frame * hop).to(torch.float64) / hop
    following = frame + 1
    # After the last frame it holds: a weight of 0 keeps the frame exactly.
    weight = torch.where(following < steps, weight, torch.zeros_like(weight))
    for _ in range(rank + 1):
        weight = weight.unsqueeze(-1)
    return wide[frame] * (1.0 - weight) + wide[following.clamp(max=steps - 1)] * weight


def normalised_steps(
    a_coeffs: Tensor, b_coeffs: Tensor, positions: Tensor, hop: int, rank: int
) -> Tuple[Tensor, Tensor]:
    """Every step's ``a_1..a_N`` and ``b_0..b_N`` over ``a_0``, as ``per_step`` lays
    them out, from the caller's coefficients (the shorter zero-padded)."""
    width = max(a_coeffs.shape[-1], b_coeffs.shape[-1])
    a_steps = per_step(_zero_padded(a_coeffs, width), positions, hop, rank)
    b_steps = per_step(_zero_padded(b_coeffs, width), positions, hop, rank)
    # Split, not sliced: a slice's gradient is scattered into a zero tensor of all of them.
    a0, a_rest = a_steps.split([1, width - 1], -(rank + 1))
    inverse = 1.0 / a0  # a reciprocal, then products: the loop's rounding
    return a_rest * inverse, b_steps * inverse


def input_steps(waveform: Tensor, samples: Tensor, rank: int) -> Tensor:
    """Every step's input, ``(L, n_groups, G, *batch)`` float64: zero outside the signal."""
    signal = with_batch_rank(waveform, rank + 1).movedim(-1, 0)
    signal = signal.to(torch.float64, memory_format=torch.contiguous_format)
    signal = torch.nn.functional.pad(signal, [0, 0] * rank + [0, 1])  # (T + 1, *batch), the last a zero
    inside = (samples >= 0) & (samples < signal.shape[0] - 1)
    return signal[torch.where(inside, samples, torch.full_like(samples, signal.shape[0] - 1))]


def signal_samples(steps: Tensor, batch: List[int], length: int, dtype: torch.dtype) -> Tensor:
    """The signal's ``T`` samples of ``(L, n_groups, G, *batch)`` steps (laid out as
    ``step_samples`` says) as a contiguous ``(*batch, T)`` tensor in ``dtype``: one
    gather (a reshape and a slice would make torch.export prove that the blocks hold
    at least ``T`` samples, which it cannot for a symbolic ``T``), one transposing
    copy."""
    block_length = steps.shape[0]
    step_index = torch.arange(length, device=steps.device) + (-length) % block_length
    picked = steps.flatten(1, 2)[step_index % block_length, torch.div(step_index, block_length, rounding_mode="floor")]
    return picked.movedim(0, -1).expand(batch + [length]).to(dtype, memory_format=torch.contiguous_format)

