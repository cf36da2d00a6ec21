"""The three levels of the portable time-varying filter's scan (see ``__init__``).

Maps act on row vectors: a state ``s (..., S, *batch)`` goes to ``s @ M`` for
``M (..., S, S, *batch)``, row ``i`` of ``M`` the image of unit state ``i``. The batch
dims are last (``rank`` of them); the level's own dims lead. Lists of steps or blocks
are ``unbind`` views: a slice per step would scatter its gradient into a zero tensor of
all of them. TorchScript-compatible.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..varying_loop import state_size
from .forms import step


def block_at(values: Tensor, block: Tensor) -> Tensor:
    """Block ``block`` (a ``(1,)`` index into the ``n_groups * G`` blocks) of
    ``(n_groups, G, ...)`` values: ``(...)``."""
    return values.flatten(0, 1).index_select(0, block).squeeze(0)


def within_blocks(
    form: str,
    inputs: List[Tensor],
    feedback: List[Tensor],
    feedforward: List[Tensor],
    starts: Optional[List[Tensor]],
    zi: Optional[Tensor],
    rank: int,
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Level 1: ``(transitions, ends, from_rest, responses)``.

    From every step's input ``(n_groups, G, *batch)`` and coefficients (``L``
    tensors each, or one for constant coefficients): each block's map,
    ``(n_groups, G, S, S, *batch)`` (row ``i`` the end state of unit state ``i``;
    ``(1, 1, S, S, *batch)`` for constant coefficients) and ``(n_groups, G, S,
    *batch)`` (its end state from rest, with ``zi`` put in as the state where
    ``starts`` is true); every step's output from rest, ``(L, n_groups, G, *batch)``,
    and per unit entering state, ``(L, n_groups, G, S, *batch)``.
    """
    dim = -(rank + 1)
    size = state_size(form, feedback[0].shape[dim])
    # With the block dims: a step's outputs have them even where its input does not.
    options = torch.eye(size, dtype=torch.float64, device=inputs[0].device)
    rows = options.reshape([1, 1, size, size] + [1] * rank)
    state = torch.zeros([1, 1, size] + [1] * rank, dtype=torch.float64, device=inputs[0].device)
    outputs: List[Tensor] = []
    responses: List[Tensor] = []
    for index in range(len(inputs)):
        a_step = feedback[index if len(feedback) > 1 else 0]
        b_step = feedforward[index if len(feedforward) > 1 else 0]
        if starts is not None and zi is not None:
            state = torch.where(starts[index], zi, state)
        response, rows = step(form, rows, a_step.unsqueeze(dim - 1), b_step.unsqueeze(dim - 1), None, dim)
        y, state = step(form, state, a_step, b_step, inputs[index], dim)
        outputs.append(y)
        responses.append(response)
    return rows, state, _stack(outputs, 0), _stack(responses, 0)


def _stack(values: List[Tensor], dim: int) -> Tensor:
    """``torch.stack`` of values whose shapes grow along the loop that made them (the
    first steps' are smaller where they did not meet every input yet): each expanded
    to the last one's shape."""
    shape = values[-1].shape
    return torch.stack([value.expand(shape) for value in values], dim)


def row_times(rows: Tensor, matrices: Tensor, rank: int) -> Tensor:
    """``rows @ matrices`` for ``(..., S, *batch)`` rows and ``(..., S, M, *batch)``
    matrices (which broadcast)."""
    return (rows.unsqueeze(-(rank + 1)) * matrices).sum(-(rank + 2))


def _times(left: Tensor, right: Tensor, rank: int) -> Tensor:
    """``left @ right`` for ``(..., S, S, *batch)`` matrices (which broadcast)."""
    return (left.unsqueeze(-(rank + 1)) * right.unsqueeze(-(rank + 3))).sum(-(rank + 2))


def within_groups(transitions: Tensor, ends: Tensor, rank: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Level 2: ``(group_transitions, group_ends, prefix_transitions, prefix_ends)``.

    From the block maps ``(n_groups or 1, G or 1, S, S, *batch)`` and
    ``(n_groups, G, S, *batch)``: each group's map, and the map from its start to the
    start of each of its blocks (``(n_groups or 1, G, S, S, *batch)``,
    ``(n_groups, G, S, *batch)``, the first the identity).
    """
    # Unbound once: a slice per block would scatter its gradient into a zero tensor of all blocks.
    block_transitions = transitions.unbind(1)
    block_ends = ends.unbind(1)
    transition = block_transitions[0]
    end = block_ends[0]
    size = end.shape[-(rank + 1)]
    prefix_transitions: List[Tensor] = [
        torch.eye(size, dtype=transition.dtype, device=transition.device).reshape([1, size, size] + [1] * rank)
    ]
    prefix_ends: List[Tensor] = [torch.zeros_like(end)]
    for block in range(1, len(block_ends)):
        prefix_transitions.append(transition)
        prefix_ends.append(end)
        block_transition = block_transitions[block if len(block_transitions) > 1 else 0]
        end = row_times(end, block_transition, rank) + block_ends[block]
        transition = _times(transition, block_transition, rank)
    return transition, end, _stack(prefix_transitions, 1), _stack(prefix_ends, 1)


def _leading(mask: Tensor, rank: int) -> Tensor:
    """A ``(n,)`` mask with ``rank - 1`` trailing dims of size 1."""
    return mask.reshape([-1] + [1] * (rank - 1))


def across_groups(transitions: Tensor, ends: Tensor, group_levels: int, rank: int) -> Tensor:
    """Level 3: the state entering every group, ``(n_groups, S, *batch)`` (zeros for
    the first), from the group maps ``(n_groups or 1, S, S, *batch)`` and
    ``(n_groups, S, *batch)``.

    An inclusive doubling scan: after the step of span ``s`` group ``g`` holds the
    map of groups ``g - 2 s + 1 .. g``. Shifts are gathers with clamped indices
    (valid for any number of groups, no modulo); the rows they do not reach are
    masked with ``where`` (a product with an overflowed map of an unstable filter
    would put ``nan`` there).
    """
    n_groups = ends.shape[0]
    index = torch.arange(n_groups, device=ends.device)
    transitions = transitions.expand([n_groups] + list(transitions.shape[1:]))
    # Every level's gather indices and masks at once, (group_levels, n_groups).
    spans = torch.pow(2, torch.arange(group_levels, device=ends.device)).unsqueeze(-1)
    earlier = (index - spans).clamp(min=0).unbind(0)
    reached = (index >= spans).unbind(0)
    for level in range(group_levels):
        carried = row_times(ends.index_select(0, earlier[level]), transitions, rank) + ends
        ends = torch.where(_leading(reached[level], ends.dim()), carried, ends)
        if level + 1 < group_levels:
            composed = _times(transitions.index_select(0, earlier[level]), transitions, rank)
            transitions = torch.where(_leading(reached[level], transitions.dim()), composed, transitions)
    # The state entering group g is the one after group g - 1 (zeros for the first).
    before = ends.index_select(0, (index - 1).clamp(min=0))
    return torch.where(_leading(index > 0, ends.dim()), before, torch.zeros_like(before))

