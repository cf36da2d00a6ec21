"""One step of each form of ``varying_loop.py``, on the time-major layout.

The same equations as ``filter_varying_loop`` (and its rounding), written for a state
whose values lie along a given (negative) dim, so that one function runs the state
from rest (with an input) and the ``S`` unit states at once (no input). Every operand
broadcasts against the others; the outputs have the broadcast shape. TorchScript-compatible.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor


def step(
    form: str, state: Tensor, feedback: Tensor, feedforward: Tensor, x: Optional[Tensor], dim: int
) -> Tuple[Tensor, Tensor]:
    """One step of ``form`` (``varying_loop.filter_varying_loop``'s equations):
    ``(y, next state)`` from the state (its values along ``dim``), the normalised
    ``a_1..a_N`` and ``b_0..b_N`` (along ``dim`` too) and the input ``x``, or no input
    (the response to a unit state). All broadcast against each other."""
    order = feedback.shape[dim]
    b0 = feedforward.select(dim, 0)
    zeros = feedforward.narrow(dim, 1, order)
    if form == "tdf2":
        y = state.select(dim, 0)
        advanced = _advance(state, dim)
        if x is not None:
            y = b0 * x + y
            advanced = advanced + zeros * x.unsqueeze(dim)
        return y, advanced - feedback * y.unsqueeze(dim)
    if form == "df1":
        inputs, past = state.narrow(dim, 0, order), state.narrow(dim, order, order)
        y = (zeros * inputs).sum(dim) - (feedback * past).sum(dim)
        if x is not None:
            y = b0 * x + y
        return y, _cat([_shift_in(inputs, x, dim), _shift_in(past, y, dim)], dim)
    if form == "df2":
        w = -(feedback * state).sum(dim)
        if x is not None:
            w = x + w
        y = b0 * w + (zeros * state).sum(dim)
        return y, _shift_in(state, w, dim)
    # tdf1
    poles, held = state.narrow(dim, 0, order), state.narrow(dim, order, order)
    u = poles.select(dim, 0)
    if x is not None:
        u = x + u
    y = b0 * u + held.select(dim, 0)
    poles = _advance(poles, dim) - feedback * u.unsqueeze(dim)
    held = _advance(held, dim) + zeros * u.unsqueeze(dim)
    return y, _cat([poles, held], dim)


def _advance(state: Tensor, dim: int) -> Tensor:
    """``[state[1], ..., state[-1], 0]`` along ``dim`` (negative): transposed states
    moved a slot."""
    return torch.nn.functional.pad(state.narrow(dim, 1, state.shape[dim] - 1), [0, 0] * (-dim - 1) + [0, 1])


def _shift_in(history: Tensor, newest: Optional[Tensor], dim: int) -> Tensor:
    """``[newest, history[0], ..., history[-2]]`` along ``dim`` (negative); a zero for
    no ``newest``."""
    older = history.narrow(dim, 0, history.shape[dim] - 1)
    if newest is None:
        return torch.nn.functional.pad(older, [0, 0] * (-dim - 1) + [1, 0])
    return _cat([newest.unsqueeze(dim), older], dim)


def _cat(parts: List[Tensor], dim: int) -> Tensor:
    """``torch.cat`` along a negative ``dim`` of parts whose other dims broadcast
    (aligned at the right)."""
    rank = 0
    for part in parts:
        rank = max(rank, part.dim())
    shape = [1] * rank
    for part in parts:
        offset = rank - part.dim()
        for i in range(part.dim()):
            if shape[offset + i] == 1:
                shape[offset + i] = part.shape[i]
    expanded: List[Tensor] = []
    for part in parts:
        own = list(shape)
        own[rank + dim] = part.shape[dim]
        expanded.append(part.expand(own))
    return torch.cat(expanded, dim)

