"""Triton kernels for the ``"triton"`` backend: every chain marches through time with
its state in registers.

Imported only when the backend first runs (``import triton`` is slow, and Triton is
optional). A *chain* is one row of the broadcast batch: one signal through one
filter. A program takes ``BLOCK_CHAINS`` chains and walks through time in tiles of
``TIME_TILE`` samples: each tile of inputs is loaded at once (every chain's samples
are contiguous in memory, so a thread reads a run of them), the recurrence steps
through the tile's columns, and the tile of outputs is stored at once. Arithmetic is
float64 whatever the signal's dtype (as in every backend).

Columns of a register tile are picked with ``where(column == t, tile, 0).sum()``
with ``t`` a compile-time constant (the loop over a tile is unrolled), which the
compiler folds into a register read. The state is an ``(BLOCK_CHAINS, ORDER_PAD)``
tile, shifted by one slot per step the same way. With ``TRITON_INTERPRET=1`` the
same kernels run on CPU tensors (how CI tests them).

Every pointer argument is a base pointer plus per-chain element offsets (int64, one
per chain, zero strides where the batch broadcasts), so a waveform shared by the
filters is read in place.
"""
import triton
import triton.language as tl


@triton.jit
def _column(tile, columns, t: tl.constexpr):
    """Column ``t`` of a ``(chains, width)`` tile: ``(chains,)``."""
    return tl.sum(tl.where(columns[None, :] == t, tile, 0.0), axis=1)


@triton.jit
def _shift_down(state, slots):
    """``state[:, k + 1]`` into slot ``k`` (zero into the last)."""
    moves = slots[None, None, :] == slots[None, :, None] + 1
    return tl.sum(tl.where(moves, state[:, None, :], 0.0), axis=2)


@triton.jit
def _shift_up(state, slots):
    """``state[:, k - 1]`` into slot ``k`` (zero into slot 0)."""
    moves = slots[None, None, :] == slots[None, :, None] - 1
    return tl.sum(tl.where(moves, state[:, None, :], 0.0), axis=2)


@triton.jit
def _load_coefficients(a_ptr, a_offsets, a_step, b_ptr, b_offsets, b_step, chains, live, slots, mask):
    """``(b0, a_rest, b_rest)``: ``(chains,)`` and ``(chains, ORDER_PAD)`` with slot ``k``
    holding the coefficients of lag ``k + 1`` (zero past the order)."""
    a_base = tl.load(a_offsets + chains, mask=live, other=0)
    b_base = tl.load(b_offsets + chains, mask=live, other=0)
    b0 = tl.load(b_ptr + b_base, mask=live, other=0.0)
    a_rest = tl.load(a_ptr + a_base[:, None] + (slots[None, :] + 1) * a_step, mask=mask, other=0.0)
    b_rest = tl.load(b_ptr + b_base[:, None] + (slots[None, :] + 1) * b_step, mask=mask, other=0.0)
    return b0, a_rest, b_rest


@triton.jit
def _load_rows(ptr, offsets, step, rows, live, slots, mask):
    """Each chain's row (``offsets[rows]``, ``step`` apart) as a float64 ``(chains, ORDER_PAD)`` tile."""
    base = tl.load(offsets + rows, mask=live, other=0)
    return tl.load(ptr + base[:, None] + slots[None, :] * step, mask=mask, other=0.0).to(tl.float64)


@triton.jit
def lfilter_forward_kernel(
    x_ptr, x_offsets, x_step,
    a_ptr, a_offsets, a_step,
    b_ptr, b_offsets, b_step,
    zi_ptr, zi_offsets, zi_step,
    y_ptr, zf_ptr,
    n_chains, length, chunk_length,
    ORDER: tl.constexpr, ORDER_PAD: tl.constexpr, HAS_ZI: tl.constexpr,
    WRITE_Y: tl.constexpr, ZERO_INPUT: tl.constexpr,
    BLOCK_CHAINS: tl.constexpr, TIME_TILE: tl.constexpr,
):
    """Transposed direct form II, scipy's: ``y = b0 x + z0``,
    ``z_k = z_(k+1) + b_(k+1) x - a_(k+1) y``, over samples
    ``c * chunk_length .. (c + 1) * chunk_length - 1`` for chunk ``c = program_id(1)``.

    The state starts from ``zi`` (chunk ``c`` of chain ``i`` reads its row at offset
    ``zi_offsets[c * n_chains + i]``) or from zero; the final state of chunk ``c`` goes
    to row ``c * n_chains + i`` of ``zf`` (contiguous, ``ORDER`` wide). ``y`` is
    ``(n_chains, T)`` contiguous, written where ``WRITE_Y``; ``ZERO_INPUT`` reads no
    ``x`` (a zero signal). Coefficients are float64, normalised."""
    chunk = tl.program_id(1)
    chains = tl.program_id(0) * BLOCK_CHAINS + tl.arange(0, BLOCK_CHAINS)
    live = chains < n_chains
    slots = tl.arange(0, ORDER_PAD)
    in_order = slots < ORDER
    columns = tl.arange(0, TIME_TILE)
    first = chunk * chunk_length
    end = tl.minimum(first + chunk_length, length)
    rows = chunk * n_chains + chains  # this chunk's rows of zi and zf

    coefficient_mask = live[:, None] & in_order[None, :]
    b0, a_rest, b_rest = _load_coefficients(
        a_ptr, a_offsets, a_step, b_ptr, b_offsets, b_step, chains, live, slots, coefficient_mask
    )
    if HAS_ZI:
        state = _load_rows(zi_ptr, zi_offsets, zi_step, rows, live, slots, coefficient_mask)
    else:
        state = tl.zeros([BLOCK_CHAINS, ORDER_PAD], dtype=tl.float64)
    if not ZERO_INPUT:
        x_base = tl.load(x_offsets + chains, mask=live, other=0)

    for start in range(first, end, TIME_TILE):
        times = start + columns
        tile_mask = live[:, None] & (times[None, :] < end)
        if ZERO_INPUT:
            inputs = tl.zeros([BLOCK_CHAINS, TIME_TILE], dtype=tl.float64)
        else:
            inputs = tl.load(x_ptr + x_base[:, None] + times[None, :] * x_step, mask=tile_mask, other=0.0)
            inputs = inputs.to(tl.float64)
        outputs = tl.zeros([BLOCK_CHAINS, TIME_TILE], dtype=tl.float64)
        for t in tl.static_range(TIME_TILE):
            sample = _column(inputs, columns, t)
            output = b0 * sample + _column(state, slots, 0)
            advanced = _shift_down(state, slots) + b_rest * sample[:, None] - a_rest * output[:, None]
            # Past the end the state must stay as it is (the last tile may be partial).
            state = tl.where(start + t < end, advanced, state)
            outputs = tl.where(columns[None, :] == t, output[:, None], outputs)
        if WRITE_Y:
            tl.store(y_ptr + chains[:, None] * length + times[None, :], outputs.to(y_ptr.dtype.element_ty), mask=tile_mask)
    tl.store(zf_ptr + rows[:, None] * ORDER + slots[None, :], state.to(zf_ptr.dtype.element_ty), mask=coefficient_mask)


@triton.jit
def state_carry_kernel(
    first_ptr, local_ptr, transition_ptr, entering_ptr,
    n_chains, n_chunks,
    ORDER: tl.constexpr, ORDER_PAD: tl.constexpr, BLOCK_CHAINS: tl.constexpr,
):
    """The state entering every chunk: ``E[0] = first``, ``E[c + 1] = E[c] M + s[c]``,
    with ``s[c]`` chunk ``c``'s final state from zero (``local``, ``(n_chunks, n_chains,
    ORDER)``) and ``M`` the state after one chunk from each unit state with no input
    (``transition``, ``(n_chains, ORDER, ORDER)``, row ``j`` from ``e_j``). Sequential
    in chunks, the same ``M`` each time: no powers of it, which would move the poles.
    All float64, contiguous; ``entering`` is ``(n_chunks, n_chains, ORDER)``."""
    chains = tl.program_id(0) * BLOCK_CHAINS + tl.arange(0, BLOCK_CHAINS)
    live = chains < n_chains
    slots = tl.arange(0, ORDER_PAD)
    mask = live[:, None] & (slots[None, :] < ORDER)
    square_mask = mask[:, :, None] & (slots[None, None, :] < ORDER)
    transition = tl.load(
        transition_ptr + chains[:, None, None] * ORDER * ORDER + slots[None, :, None] * ORDER + slots[None, None, :],
        mask=square_mask, other=0.0,
    )
    state = tl.load(first_ptr + chains[:, None] * ORDER + slots[None, :], mask=mask, other=0.0)
    tl.store(entering_ptr + chains[:, None] * ORDER + slots[None, :], state, mask=mask)
    for chunk in range(0, n_chunks - 1):
        rows = chunk * n_chains + chains
        local = tl.load(local_ptr + rows[:, None] * ORDER + slots[None, :], mask=mask, other=0.0)
        state = tl.sum(state[:, :, None] * transition, axis=1) + local
        tl.store(entering_ptr + (rows + n_chains)[:, None] * ORDER + slots[None, :], state, mask=mask)


@triton.jit
def lfilter_adjoint_kernel(
    g_ptr, g_offsets, g_step,
    x_ptr, x_offsets, x_step,
    y_ptr,
    a_ptr, a_offsets, a_step,
    b_ptr, b_offsets, b_step,
    gzf_ptr, gzf_offsets, gzf_step,
    gx_ptr, ga_ptr, gb_ptr, gzi_ptr,
    n_chains, length, chunk_length, chunk_offset,
    ORDER: tl.constexpr, ORDER_PAD: tl.constexpr, HAS_GZF: tl.constexpr, ZERO_INPUT: tl.constexpr,
    NEED_X: tl.constexpr, NEED_A: tl.constexpr, NEED_B: tl.constexpr,
    BLOCK_CHAINS: tl.constexpr, TIME_TILE: tl.constexpr,
):
    """The adjoint, fused: backwards in time ``g_v[n] = g[n] - sum_k a_k g_v[n + k]``
    (continued beyond the end by ``grad_zf``), and from it in the same pass, per
    chain, ``dL/dx[n] = sum_k b_k g_v[n + k]`` (``gx``, ``(n_chains, T)``),
    ``dL/db_j = sum_n g_v[n + j] x[n]`` and ``dL/da_j = -sum_n g_v[n + j] y[n]``
    (``gb``, ``ga``: ``ORDER + 1`` wide, float64) and ``dL/dzi = g_v[:N]`` (``gzi``,
    ``ORDER`` wide, float64). ``history[:, k]`` is ``g_v[n + 1 + k]``.

    Over samples ``c L - offset .. (c + 1) L - offset - 1`` (cut at 0 and ``T``) for
    chunk ``c = program_id(1)``, ``L = chunk_length``: the history starts from
    ``gzf`` (row ``c * n_chains + i`` at ``gzf_offsets``) or from zero, and ``ga``,
    ``gb`` and the history after the chunk (``gzi``) go to row ``c * n_chains + i``.
    ``ZERO_INPUT`` reads no ``g`` (a zero upstream gradient)."""
    chunk = tl.program_id(1)
    chains = tl.program_id(0) * BLOCK_CHAINS + tl.arange(0, BLOCK_CHAINS)
    live = chains < n_chains
    slots = tl.arange(0, ORDER_PAD)
    in_order = slots < ORDER
    columns = tl.arange(0, TIME_TILE)
    coefficient_mask = live[:, None] & in_order[None, :]
    first = tl.maximum(chunk * chunk_length - chunk_offset, 0)
    end = tl.minimum((chunk + 1) * chunk_length - chunk_offset, length)
    rows = chunk * n_chains + chains

    b0, a_rest, b_rest = _load_coefficients(
        a_ptr, a_offsets, a_step, b_ptr, b_offsets, b_step, chains, live, slots, coefficient_mask
    )
    if HAS_GZF:
        history = _load_rows(gzf_ptr, gzf_offsets, gzf_step, rows, live, slots, coefficient_mask)
    else:
        history = tl.zeros([BLOCK_CHAINS, ORDER_PAD], dtype=tl.float64)
    if not ZERO_INPUT:
        g_base = tl.load(g_offsets + chains, mask=live, other=0)
    if NEED_B:
        x_base = tl.load(x_offsets + chains, mask=live, other=0)
    grad_b0 = tl.zeros([BLOCK_CHAINS], dtype=tl.float64)
    grad_b_rest = tl.zeros([BLOCK_CHAINS, ORDER_PAD], dtype=tl.float64)
    grad_a_rest = tl.zeros([BLOCK_CHAINS, ORDER_PAD], dtype=tl.float64)

    n_tiles = tl.cdiv(end - first, TIME_TILE)
    for tile in range(0, n_tiles):
        # Tiles from the end of the chunk; the last one may start before it.
        start = end - (tile + 1) * TIME_TILE
        times = start + columns
        tile_mask = live[:, None] & (times[None, :] >= first)
        if ZERO_INPUT:
            upstream = tl.zeros([BLOCK_CHAINS, TIME_TILE], dtype=tl.float64)
        else:
            upstream = tl.load(g_ptr + g_base[:, None] + times[None, :] * g_step, mask=tile_mask, other=0.0)
            upstream = upstream.to(tl.float64)
        if NEED_B:
            inputs = tl.load(x_ptr + x_base[:, None] + times[None, :] * x_step, mask=tile_mask, other=0.0)
            inputs = inputs.to(tl.float64)
        if NEED_A:
            outputs = tl.load(y_ptr + chains[:, None] * length + times[None, :], mask=tile_mask, other=0.0)
            outputs = outputs.to(tl.float64)
        if NEED_X:
            grad_inputs = tl.zeros([BLOCK_CHAINS, TIME_TILE], dtype=tl.float64)
        for step in tl.static_range(TIME_TILE):
            t = TIME_TILE - 1 - step
            valid = start + t >= first
            grad_v = _column(upstream, columns, t) - tl.sum(a_rest * history, axis=1)
            if NEED_X:
                grad_input = b0 * grad_v + tl.sum(b_rest * history, axis=1)
                grad_inputs = tl.where(columns[None, :] == t, grad_input[:, None], grad_inputs)
            if NEED_B:
                sample = _column(inputs, columns, t)
                grad_b0 += tl.where(valid, grad_v * sample, 0.0)
                grad_b_rest += tl.where(valid, history * sample[:, None], 0.0)
            if NEED_A:
                output = _column(outputs, columns, t)
                grad_a_rest -= tl.where(valid, history * output[:, None], 0.0)
            advanced = tl.where(slots[None, :] == 0, grad_v[:, None], _shift_up(history, slots))
            history = tl.where(valid, tl.where(in_order[None, :], advanced, 0.0), history)
        if NEED_X:
            tl.store(gx_ptr + chains[:, None] * length + times[None, :], grad_inputs.to(gx_ptr.dtype.element_ty), mask=tile_mask)

    width = ORDER + 1
    if NEED_B:
        tl.store(gb_ptr + rows * width, grad_b0, mask=live)
        tl.store(gb_ptr + rows[:, None] * width + slots[None, :] + 1, grad_b_rest, mask=coefficient_mask)
    if NEED_A:
        tl.store(ga_ptr + rows * width, tl.zeros([BLOCK_CHAINS], dtype=tl.float64), mask=live)
        tl.store(ga_ptr + rows[:, None] * width + slots[None, :] + 1, grad_a_rest, mask=coefficient_mask)
    # After the chunk's first sample the history is g_v[first .. first + N - 1] (what
    # follows the chunk where it is shorter than N): at the signal's start, dL/dzi.
    tl.store(gzi_ptr + rows[:, None] * ORDER + slots[None, :], history, mask=coefficient_mask)
