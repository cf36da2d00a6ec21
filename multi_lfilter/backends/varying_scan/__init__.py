"""The portable time-varying filter: built-in tensor ops, parallel in time, with an op
count that does not depend on ``T``.

What runs where no kernel does (other devices, ``torch.func`` transforms,
``torch.compile(fullgraph=True)``, ``torch.export`` and ONNX, TorchScript): every form
of ``varying_loop.py``, with the same equations, frame interpolation and
normalisation by a reciprocal of ``a0``. Each step is an affine map of the state,
``s[n + 1] = s[n] A[n] + x[n] B[n]``, ``y[n] = s[n] C[n] + x[n] D[n]`` (row vectors of
``S = state_size(form, N)`` values), and the maps are composed in three fixed levels
(``levels.py``):

1. **Samples in blocks** of ``BLOCK_LENGTH``: a loop over the steps of a block, all
   blocks at once, with the forms' own sparse steps (``forms.py``; no ``S x S``
   matrix per sample). It carries each block's map (the images of the ``S`` unit
   states, on the coefficients' batch only, and the end state from rest, on the
   whole batch) and records every step's output from rest and per unit entering
   state.
2. **Blocks in groups** of ``GROUP_BLOCKS``: a loop over the blocks of a group, all
   groups at once, composes the block maps, keeping each prefix (the map from the
   group's start to each block's start).
3. **Groups**: an inclusive Hillis-Steele scan with ``GROUP_LEVELS`` doubling steps
   whose shifts are gathers with clamped indices, the rows they do not reach masked,
   so any number of groups up to ``2**GROUP_LEVELS`` takes the same ops.

The state entering each block is then its group's entering state through the prefix,
and ``y`` is each step's output from rest plus the entering state times the step's
unit responses. The signal fills whole blocks from its end (``layout.py``): the steps
before its first sample run from rest on zeros, and ``zi`` is put in as the state at
that sample's step; the final state is the one entering the block after the last
sample; the steps after it (on copies of the last coefficients and zeros) reach only
later blocks, which nothing reads. Arithmetic is float64 throughout.

Memory: per-sample coefficients are gathered into one float64 copy, normalised (frames
are interpolated to every sample: two gathers and a lerp; autograd sums their
gradients back into the frames). Constant coefficients are never expanded in time:
their steps, and the maps they give, broadcast over the blocks. Nothing holds
``S x S`` values per sample beyond the unit states' steps on the coefficients' batch.
Gradients are autograd's through every op, which keeps each step's states. Measured
on a bank of biquads (``[4, 1, 16000]`` float32 through 32 filters, per-sample or
constant coefficients, ``benchmarks/count_varying_ops.py --memory``), the resident set
rises by 6 to 20 times the output's size in a forward without autograd, and by about
30 (``tdf2``, ``df2``) to 65 (``df1``, ``tdf1``: 4 states) times in a forward+backward.

Signals of up to ``max_length()`` samples (about 33.5 million) are supported; a longer
one raises (a runtime assertion in graphs: torch.export needs a ``Dim`` whose max is
at most that).

TorchScript-compatible.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..varying_loop import state_size
from .layout import input_steps, normalised_steps, signal_samples, step_samples, with_batch_rank
from .levels import across_groups, block_at, row_times, within_blocks, within_groups

__all__ = ["BLOCK_LENGTH", "GROUP_BLOCKS", "GROUP_LEVELS", "max_length", "varying_filter"]

BLOCK_LENGTH = 16
GROUP_BLOCKS = 8
GROUP_LEVELS = 18


def max_length(
    block_length: int = BLOCK_LENGTH, group_blocks: int = GROUP_BLOCKS, group_levels: int = GROUP_LEVELS
) -> int:
    """The longest signal filtered, in samples: ``2**group_levels - 2`` groups."""
    return block_length * group_blocks * ((1 << group_levels) - 2)


@torch.jit.unused
def _check_length(length: int, limit: int) -> None:
    """A ``ValueError`` for a concrete length, a runtime assertion for a symbolic one
    (``torch.export`` and ``torch.compile`` with dynamic shapes)."""
    message = f"expected at most {limit} samples for the varying_scan backend, got {length}"
    if isinstance(length, int):
        if length > limit:
            raise ValueError(message)
    else:
        torch._check(length <= limit, lambda: message)


def varying_filter(
    waveform: Tensor,
    a_coeffs: Tensor,
    b_coeffs: Tensor,
    zi: Optional[Tensor],
    batch: List[int],
    form: str,
    hop: int,
    block_length: int = BLOCK_LENGTH,
    group_blocks: int = GROUP_BLOCKS,
    group_levels: int = GROUP_LEVELS,
) -> Tuple[Tensor, Tensor]:
    """Filter ``(..., T)`` through time-varying coefficients in a fixed graph.

    Args:
        waveform: ``(..., T)``, ``T <= max_length()``.
        a_coeffs: ``(..., Tc, Ka)`` with ``a0``; ``Tc`` is ``T``, 1 (constant) or, with
            ``hop > 0``, ``F >= ceil(T / hop)`` frames.
        b_coeffs: ``(..., Tc', Kb)``; the shorter of ``Ka``, ``Kb`` is zero-padded.
        zi: ``(..., state_size(form, N))`` or ``None``.
        batch: the broadcast leading shape (validated by the caller).
        form: ``"tdf2"``, ``"df1"``, ``"df2"`` or ``"tdf1"``.
        hop: 0 for per-sample or constant coefficients, else the frames' hop.
        block_length, group_blocks, group_levels: the levels' sizes (tests shrink
            them to reach many groups with short signals).

    Returns:
        ``(y, zf)``: ``(*batch, T)`` in the waveform's dtype and
        ``(*batch, state_size)`` in float64.

    Raises:
        ValueError: for more than ``max_length()`` samples (a runtime assertion in
            graphs with a symbolic length).
    """
    width = max(a_coeffs.shape[-1], b_coeffs.shape[-1])
    size = state_size(form, width - 1)
    length = waveform.shape[-1]
    device = waveform.device
    rank = len(batch)
    limit = max_length(block_length, group_blocks, group_levels)
    if torch.jit.is_scripting():
        if length > limit:
            raise ValueError(f"expected at most {limit} samples for the varying_scan backend, got {length}")
    else:
        _check_length(length, limit)
    initial = torch.zeros(batch + [size], dtype=torch.float64, device=device)
    if zi is not None:
        initial = initial + zi.to(torch.float64)
    if length == 0:
        return torch.zeros(batch + [0], dtype=waveform.dtype, device=device), initial
    samples = step_samples(length, block_length, group_blocks, device)
    feedback, feedforward = normalised_steps(a_coeffs, b_coeffs, samples.clamp(min=0, max=length - 1), hop, rank)
    inputs = input_steps(waveform, samples, rank)
    if size == 0:
        return signal_samples(feedforward.select(-(rank + 1), 0) * inputs, batch, length, waveform.dtype), initial

    # zi is the state the first sample meets: put in at that step (the steps before it
    # run from rest on zeros, so the state there is zero anyway).
    starts: Optional[List[Tensor]] = None
    start: Optional[Tensor] = None
    if zi is not None:
        start = with_batch_rank(zi.to(torch.float64), rank + 1).movedim(-1, 0)
        first = samples == 0
        for _ in range(rank + 1):
            first = first.unsqueeze(-1)
        starts = first.unbind(0)
    transitions, ends, from_rest, responses = within_blocks(
        form, inputs.unbind(0), feedback.unbind(0), feedforward.unbind(0), starts, start, rank
    )
    # Each temporary is dropped once read (without autograd, the peak memory).
    del inputs
    del feedback
    del feedforward
    group_transitions, group_ends, prefix_transitions, prefix_ends = within_groups(transitions, ends, rank)
    del transitions
    del ends
    entering_groups = across_groups(group_transitions, group_ends, group_levels, rank)
    entering = row_times(entering_groups.unsqueeze(1), prefix_transitions, rank) + prefix_ends
    # The signal ends with block ceil(T / L) - 1: the final state enters the next one.
    after_last = torch.full([1], (length + block_length - 1) // block_length, dtype=torch.long, device=device)
    final = block_at(entering, after_last).movedim(0, -1).expand(batch + [size]).contiguous()
    # y = from rest + the entering state's responses, as S multiply-adds (a broadcast
    # product would make an S-times-the-output temporary).
    y = from_rest
    del from_rest
    for entering_value, response in zip(entering.unbind(2), responses.unbind(3)):
        y = torch.addcmul(y, entering_value, response)
    del responses
    return signal_samples(y, batch, length, waveform.dtype), final

