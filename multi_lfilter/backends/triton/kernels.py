"""Triton kernels for the ``"triton"`` backend: one chain per thread, its state in registers.

Imported only when the backend first runs (``import triton`` is slow, and Triton is
optional). A *chain* is one row of the broadcast batch: one signal through one filter
(or one cascade of ``SECTIONS`` filters of order ``ORDER``). A program holds
``BLOCK`` chains in a 1-D block, so each thread owns one chain; its state, its
coefficients and its gradient sums are tuples of ``(BLOCK,)`` float64 tensors, which
the compiler keeps in registers: a time step is a few multiply-adds, with no
reductions, shuffles or layout changes inside the time loop.

Signals are contiguous in time, so neighbouring chains sit ``T`` samples apart. Full
tiles of ``TILE`` samples are loaded as ``(BLOCK, TILE)`` blocks (coalesced reads of
every chain's run of samples) and split into per-thread columns with
``tl.split``, which forces one thread to own a chain's whole row: the compiler moves
the tile through shared memory once per tile, not once per step. Outputs are joined
back the same way and stored as a block. The last partial tile runs one sample at a
time.

Batch layout: the broadcast batch has at most four dims, ``(n0, size1, size2, size3)``
(leading dims of size 1 where there are fewer), and each tensor comes with its
element stride along each of them (0 where it broadcasts), its time (or tap) step
and, for cascades, its section step. Offsets are int64 everywhere, so tensors past
2**31 elements are addressed correctly. Arithmetic is float64 whatever the signal's
dtype, as in every backend. With ``TRITON_INTERPRET=1`` the same kernels run on CPU
tensors (how CI tests them).

Tuples of state are section-major: entry ``s * ORDER + k`` is slot ``k`` of section
``s``; coefficients likewise with ``ORDER + 1`` taps (``b``) or ``ORDER`` feedback
taps, stored negated (``na_k = -a_k``) so that every update is a multiply-add.
"""
import triton
import triton.language as tl


# ---------------------------------------------------------------------------------
# Indexing and loading
# ---------------------------------------------------------------------------------


@triton.jit
def _batch_index(chains, size1, size2, size3):
    """Each chain's index along the four batch dims (row-major), int64."""
    i3 = chains % size3
    rest = chains // size3
    i2 = rest % size2
    rest = rest // size2
    i1 = rest % size1
    i0 = rest // size1
    return i0, i1, i2, i3


@triton.jit
def _offset(index, stride0, stride1, stride2, stride3):
    """Element offset of each chain's row in a tensor with these batch strides."""
    return index[0] * stride0 + index[1] * stride1 + index[2] * stride2 + index[3] * stride3


@triton.jit
def _load_taps(ptr, offset, step, section_step, live, SECTIONS: tl.constexpr, FIRST: tl.constexpr,
               END: tl.constexpr, NEGATE: tl.constexpr):
    """Taps ``FIRST .. END - 1`` of every section, as a flat float64 tuple."""
    taps = ()
    for s in tl.static_range(SECTIONS):
        for k in tl.static_range(FIRST, END):
            value = tl.load(ptr + offset + s * section_step + k * step, mask=live, other=0.0).to(tl.float64)
            if NEGATE:
                value = -value
            taps = taps + (value,)
    return taps


@triton.jit
def _load_row(ptr, row, live, WIDTH: tl.constexpr):
    """``WIDTH`` contiguous float64 values from each chain's ``row`` offset."""
    values = ()
    for j in tl.static_range(WIDTH):
        values = values + (tl.load(ptr + row + j, mask=live, other=0.0).to(tl.float64),)
    return values


@triton.jit
def _store_row(ptr, row, values, live, WIDTH: tl.constexpr):
    for j in tl.static_range(WIDTH):
        tl.store(ptr + row + j, values[j].to(ptr.dtype.element_ty), mask=live)


@triton.jit
def _zeros(BLOCK: tl.constexpr, WIDTH: tl.constexpr):
    values = ()
    for _ in tl.static_range(WIDTH):
        values = values + (tl.zeros([BLOCK], dtype=tl.float64),)
    return values


@triton.jit
def _unit(unit, WIDTH: tl.constexpr):
    """The state ``e_unit`` (one 1 in slot ``unit`` of each chain)."""
    values = ()
    for j in tl.static_range(WIDTH):
        values = values + (tl.where(unit == j, 1.0, 0.0).to(tl.float64),)
    return values


@triton.jit
def _add(left, right, WIDTH: tl.constexpr):
    values = ()
    for j in tl.static_range(WIDTH):
        values = values + (left[j] + right[j],)
    return values


@triton.jit
def _unstack(tile, WIDTH: tl.constexpr, BLOCK: tl.constexpr):
    """The ``WIDTH`` columns of a ``(BLOCK, WIDTH)`` tile, as a tuple of ``(BLOCK,)``."""
    if WIDTH == 1:
        return (tl.reshape(tile, [BLOCK]),)
    else:
        halves = tl.permute(tl.reshape(tile, [BLOCK, 2, WIDTH // 2]), [0, 2, 1])
        first, second = tl.split(halves)
        return _unstack(first, WIDTH // 2, BLOCK) + _unstack(second, WIDTH // 2, BLOCK)


@triton.jit
def _stack(columns, START: tl.constexpr, WIDTH: tl.constexpr, BLOCK: tl.constexpr):
    """Columns ``START .. START + WIDTH - 1`` of a tuple, as a ``(BLOCK, WIDTH)`` tile."""
    if WIDTH == 1:
        return tl.reshape(columns[START], [BLOCK, 1])
    else:
        first = _stack(columns, START, WIDTH // 2, BLOCK)
        second = _stack(columns, START + WIDTH // 2, WIDTH // 2, BLOCK)
        return tl.reshape(tl.permute(tl.join(first, second), [0, 2, 1]), [BLOCK, WIDTH])


# ---------------------------------------------------------------------------------
# One time step
# ---------------------------------------------------------------------------------


@triton.jit
def _forward_step(x, state, b, na, SECTIONS: tl.constexpr, ORDER: tl.constexpr):
    """One sample through every section, transposed direct form II (scipy's):
    ``y = b0 x + z0``, ``z_k = z_(k+1) + b_(k+1) x - a_(k+1) y``. Returns
    ``(y, state)``."""
    new = ()
    for s in tl.static_range(SECTIONS):
        if ORDER == 0:
            x = b[s] * x
        else:
            y = b[s * (ORDER + 1)] * x + state[s * ORDER]
            for k in tl.static_range(ORDER - 1):
                new = new + (state[s * ORDER + k + 1] + b[s * (ORDER + 1) + k + 1] * x + na[s * ORDER + k] * y,)
            new = new + (b[s * (ORDER + 1) + ORDER] * x + na[s * ORDER + ORDER - 1] * y,)
            x = y
    return x, new


@triton.jit
def _section_adjoint(upstream, history, b, na, s: tl.constexpr, ORDER: tl.constexpr):
    """Section ``s`` one step back in time. With ``h_k = g_v[n + 1 + k]`` (its
    ``history``): ``g_v[n] = u[n] - sum_k a_(k+1) h_k`` and the gradient reaching the
    section's input, ``sum_k b_k g_v[n + k]``. Returns ``(g_v, input gradient)``."""
    grad_v = upstream
    for k in tl.static_range(ORDER):
        grad_v += na[s * ORDER + k] * history[s * ORDER + k]
    grad_input = b[s * (ORDER + 1)] * grad_v
    for k in tl.static_range(ORDER):
        grad_input += b[s * (ORDER + 1) + k + 1] * history[s * ORDER + k]
    return grad_v, grad_input


@triton.jit
def _shift_in(history, grad_v, s: tl.constexpr, SECTIONS: tl.constexpr, ORDER: tl.constexpr):
    """Section ``s``'s history after one step back: ``(g_v, h_0, ..., h_(N-2))``; the
    other sections' entries unchanged."""
    new = ()
    for r in tl.static_range(SECTIONS):
        for k in tl.static_range(ORDER):
            if r != s:
                new = new + (history[r * ORDER + k],)
            elif k == 0:
                new = new + (grad_v,)
            else:
                new = new + (history[r * ORDER + k - 1],)
    return new


@triton.jit
def _adjoint_step(upstream, history, b, na, SECTIONS: tl.constexpr, ORDER: tl.constexpr):
    """One sample back through every section, last to first (the gradient reaching a
    section's input is the upstream gradient of the one before). Returns
    ``(gradient reaching the cascade's input, history)``."""
    for r in tl.static_range(SECTIONS):
        grad_v, upstream = _section_adjoint(upstream, history, b, na, SECTIONS - 1 - r, ORDER)
        history = _shift_in(history, grad_v, SECTIONS - 1 - r, SECTIONS, ORDER)
    return upstream, history


@triton.jit
def _adjoint_sample(upstream, history, grad_b, grad_a, sample, output, b, na, SECTIONS: tl.constexpr,
                    ORDER: tl.constexpr, NEED_A: tl.constexpr, NEED_B: tl.constexpr):
    """One sample back: through every section, and for a single filter its
    coefficient gradients' sums from the sample's input and output. Returns
    ``(gradient reaching the input, history, grad_b, grad_a)``."""
    if SECTIONS == 1:
        grad_v, grad_input = _section_adjoint(upstream, history, b, na, 0, ORDER)
        grad_b, grad_a = _accumulate(grad_b, grad_a, grad_v, history, sample, output, 0, ORDER, NEED_A, NEED_B)
        history = _shift_in(history, grad_v, 0, 1, ORDER)
    else:
        grad_input, history = _adjoint_step(upstream, history, b, na, SECTIONS, ORDER)
    return grad_input, history, grad_b, grad_a


@triton.jit
def _accumulate(grad_b, grad_a, grad_v, history, sample, output, s: tl.constexpr, ORDER: tl.constexpr,
                NEED_A: tl.constexpr, NEED_B: tl.constexpr):
    """The coefficient gradients' sums for one step of one section (``grad_a`` holds
    ``+sum h_k y``: negated once at the end): ``db_0 += g_v x``,
    ``db_(k+1) += h_k x``, ``da_(k+1) -= h_k y``."""
    if NEED_B:
        new_b = ()
        new_b = new_b + (grad_b[0] + grad_v * sample,)
        for k in tl.static_range(ORDER):
            new_b = new_b + (grad_b[k + 1] + history[s * ORDER + k] * sample,)
        grad_b = new_b
    if NEED_A:
        new_a = ()
        for k in tl.static_range(ORDER):
            new_a = new_a + (grad_a[k] + history[s * ORDER + k] * output,)
        grad_a = new_a
    return grad_b, grad_a


# ---------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------


@triton.jit
def _initial_state(user_ptr, user_offset, user_step, user_section_step, entering_ptr, rows, live, chunk,
                   user_chunk, lanes, BLOCK: tl.constexpr, SECTIONS: tl.constexpr, ORDER: tl.constexpr,
                   HAS_USER: tl.constexpr, HAS_ENTERING: tl.constexpr, UNIT_STATES: tl.constexpr):
    """The state a chunk starts from: a unit state (``UNIT_STATES``: ``e_(lane % DIM)``),
    else the user's state (``zi`` or ``grad_zf``, broadcast) in chunk ``user_chunk``
    and the carried state (``entering`` rows) in the others; zero where neither is
    given."""
    DIM: tl.constexpr = SECTIONS * ORDER
    if UNIT_STATES:
        return _unit(lanes % DIM, DIM)
    if HAS_ENTERING:
        state = _load_row(entering_ptr, rows * DIM, live & (chunk != user_chunk), DIM)
    else:
        state = _zeros(BLOCK, DIM)
    if HAS_USER:
        user = _load_taps(user_ptr, user_offset, user_step, user_section_step, live & (chunk == user_chunk),
                          SECTIONS, 0, ORDER, False)
        state = _add(state, user, DIM)
    return state


@triton.jit
def _program_chains(a_ptr, b_ptr, size1, size2, size3,
                    a_stride0, a_stride1, a_stride2, a_stride3, a_step, a_section_step,
                    b_stride0, b_stride1, b_stride2, b_stride3, b_step, b_section_step,
                    n_lanes, SECTIONS: tl.constexpr, ORDER: tl.constexpr, UNIT_STATES: tl.constexpr,
                    BLOCK: tl.constexpr):
    """What every kernel starts with: this program's chunk (``program_id(1)``) and
    lanes, which are live, each lane's chain (lane ``i`` is chain ``i // DIM`` where
    ``UNIT_STATES``), the chains' batch index, and their coefficients ``b`` and ``-a``
    (section-major tuples). Returns ``(chunk, lanes, live, chains, index, b, na, rows)``
    with ``rows = chunk * n_lanes + lane`` (the per-chunk outputs' rows)."""
    chunk = tl.program_id(1).to(tl.int64)
    lanes = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = lanes < n_lanes
    if UNIT_STATES:
        chains = lanes // (SECTIONS * ORDER)
    else:
        chains = lanes
    index = _batch_index(chains, size1, size2, size3)
    b = _load_taps(b_ptr, _offset(index, b_stride0, b_stride1, b_stride2, b_stride3), b_step, b_section_step,
                   live, SECTIONS, 0, ORDER + 1, False)
    na = _load_taps(a_ptr, _offset(index, a_stride0, a_stride1, a_stride2, a_stride3), a_step, a_section_step,
                    live, SECTIONS, 1, ORDER + 1, True)
    return chunk, lanes, live, chains, index, b, na, chunk * n_lanes + lanes


@triton.jit
def forward_kernel(
    x_ptr, a_ptr, b_ptr, zi_ptr, entering_ptr, y_ptr, finals_ptr, checkpoints_ptr,
    size1, size2, size3,
    x_stride0, x_stride1, x_stride2, x_stride3, x_step,
    a_stride0, a_stride1, a_stride2, a_stride3, a_step, a_section_step,
    b_stride0, b_stride1, b_stride2, b_stride3, b_step, b_section_step,
    zi_stride0, zi_stride1, zi_stride2, zi_stride3, zi_step, zi_section_step,
    n_lanes, length, chunk_length,
    SECTIONS: tl.constexpr, ORDER: tl.constexpr, HAS_ZI: tl.constexpr, HAS_ENTERING: tl.constexpr,
    UNIT_STATES: tl.constexpr, WRITE_Y: tl.constexpr, CHECKPOINT: tl.constexpr,
    BLOCK: tl.constexpr, TILE: tl.constexpr,
):
    """The filter (or cascade) over samples ``c L .. (c + 1) L - 1`` of every chain, for
    chunk ``c = program_id(1)`` and ``L = chunk_length``.

    Chunk 0 starts from ``zi`` (broadcast over the batch) or zero, the others from
    their ``entering`` row (``(chunks, lanes, DIM)`` float64, ``DIM = SECTIONS *
    ORDER``) or zero. The state after the chunk goes to row ``c * n_lanes + lane`` of
    ``finals`` (same layout). ``y`` is ``(chains, T)`` contiguous, written where
    ``WRITE_Y``. ``UNIT_STATES``: lane ``i`` runs chain ``i // DIM`` from the unit
    state ``e_(i % DIM)`` with no input (the chunk's transition). ``CHECKPOINT > 0``
    (a multiple of ``TILE``): the state at every ``CHECKPOINT``-th sample of the chunk
    goes to ``checkpoints``, laid out ``(segment, DIM, rows)`` (what the cascade
    adjoint recomputes from).
    """
    DIM: tl.constexpr = SECTIONS * ORDER
    chunk, lanes, live, chains, index, b, na, rows = _program_chains(
        a_ptr, b_ptr, size1, size2, size3,
        a_stride0, a_stride1, a_stride2, a_stride3, a_step, a_section_step,
        b_stride0, b_stride1, b_stride2, b_stride3, b_step, b_section_step,
        n_lanes, SECTIONS, ORDER, UNIT_STATES, BLOCK,
    )
    state = _initial_state(zi_ptr, _offset(index, zi_stride0, zi_stride1, zi_stride2, zi_stride3), zi_step,
                           zi_section_step, entering_ptr, rows, live, chunk, 0, lanes, BLOCK, SECTIONS, ORDER,
                           HAS_ZI, HAS_ENTERING, UNIT_STATES)
    first = chunk * chunk_length
    end = tl.minimum(first + chunk_length, length)
    n_rows = tl.num_programs(1).to(tl.int64) * n_lanes
    x_row = x_ptr + _offset(index, x_stride0, x_stride1, x_stride2, x_stride3)
    y_row = y_ptr + chains * length
    columns = tl.arange(0, TILE)

    n_tiles = (end - first) // TILE
    for tile in range(0, n_tiles):
        start = first + tile * TILE
        if CHECKPOINT > 0:
            if (tile * TILE) % CHECKPOINT == 0:
                _store_checkpoint(checkpoints_ptr, state, (tile * TILE) // CHECKPOINT, rows, n_rows, live, DIM)
        if UNIT_STATES:
            samples = _zeros(BLOCK, TILE)
        else:
            times = (start + columns).to(tl.int64) * x_step
            block = tl.load(x_row[:, None] + times[None, :], mask=live[:, None], other=0.0)
            samples = _unstack(block, TILE, BLOCK)
        outputs = ()
        for t in tl.static_range(TILE):
            output, state = _forward_step(samples[t].to(tl.float64), state, b, na, SECTIONS, ORDER)
            outputs = outputs + (output.to(y_ptr.dtype.element_ty),)
        if WRITE_Y:
            block = _stack(outputs, 0, TILE, BLOCK)
            tl.store(y_row[:, None] + (start + columns)[None, :], block, mask=live[:, None])
    for time in range(first + n_tiles * TILE, end):
        if CHECKPOINT > 0:
            if (time - first) % CHECKPOINT == 0:
                _store_checkpoint(checkpoints_ptr, state, (time - first) // CHECKPOINT, rows, n_rows, live, DIM)
        if UNIT_STATES:
            sample = tl.zeros([BLOCK], dtype=tl.float64)
        else:
            sample = tl.load(x_row + tl.cast(time, tl.int64) * x_step, mask=live, other=0.0).to(tl.float64)
        output, state = _forward_step(sample, state, b, na, SECTIONS, ORDER)
        if WRITE_Y:
            tl.store(y_row + time, output.to(y_ptr.dtype.element_ty), mask=live)
    _store_row(finals_ptr, rows * DIM, state, live, DIM)


@triton.jit
def _store_checkpoint(ptr, state, segment, rows, n_rows, live, DIM: tl.constexpr):
    """A state into ``(segment, DIM, n_rows)`` (rows fastest: coalesced)."""
    for j in tl.static_range(DIM):
        tl.store(ptr + tl.cast(segment * DIM + j, tl.int64) * n_rows + rows, state[j], mask=live)


@triton.jit
def carry_kernel(
    local_ptr, transition_ptr, entering_ptr,
    n_chains, n_chunks,
    DIM: tl.constexpr, REVERSE: tl.constexpr, BLOCK: tl.constexpr,
):
    """The state entering every chunk from the ones before it (after it, ``REVERSE``):
    ``E[0] = 0``, ``E[c + 1] = E[c] M + s[c]`` in the order of the chunks, with
    ``s[c]`` chunk ``c``'s final state from its start (``local``, ``(chunks, chains,
    DIM)``, the user's state already in the boundary chunk's) and ``M`` the chain's
    state after one whole chunk from each unit state with no input (``transition``,
    ``(chains, DIM, DIM)``, row ``j`` from ``e_j``). Sequential in chunks, with the
    same ``M`` each time: no powers of it, which would move the poles. All float64,
    contiguous; ``entering`` is ``(chunks, chains, DIM)``."""
    chains = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = chains < n_chains
    state = _zeros(BLOCK, DIM)
    for step in range(0, n_chunks):
        chunk = tl.cast(step, tl.int64)
        if REVERSE:
            chunk = n_chunks - 1 - chunk
        rows = chunk * n_chains + chains
        _store_row(entering_ptr, rows * DIM, state, live, DIM)
        local = _load_row(local_ptr, rows * DIM, live, DIM)
        new = ()
        for j in tl.static_range(DIM):
            total = local[j]
            for i in tl.static_range(DIM):
                total += state[i] * tl.load(transition_ptr + (chains * DIM + i) * DIM + j, mask=live, other=0.0)
            new = new + (total,)
        state = new


@triton.jit
def adjoint_kernel(
    g_ptr, x_ptr, y_ptr, a_ptr, b_ptr, gzf_ptr, entering_ptr,
    gx_ptr, ga_ptr, gb_ptr, history_ptr,
    size1, size2, size3,
    g_stride0, g_stride1, g_stride2, g_stride3, g_step,
    x_stride0, x_stride1, x_stride2, x_stride3, x_step,
    a_stride0, a_stride1, a_stride2, a_stride3, a_step, a_section_step,
    b_stride0, b_stride1, b_stride2, b_stride3, b_step, b_section_step,
    gzf_stride0, gzf_stride1, gzf_stride2, gzf_stride3, gzf_step, gzf_section_step,
    n_lanes, length, chunk_length,
    SECTIONS: tl.constexpr, ORDER: tl.constexpr, HAS_GZF: tl.constexpr, HAS_ENTERING: tl.constexpr,
    UNIT_STATES: tl.constexpr, NEED_X: tl.constexpr, NEED_A: tl.constexpr, NEED_B: tl.constexpr,
    BLOCK: tl.constexpr, TILE: tl.constexpr,
):
    """The adjoint, fused: one step back in time per sample through every section,
    ``g_v[n] = g[n] - sum_k a_k g_v[n + k]`` (continued past the end by ``grad_zf``)
    and ``dL/dx[n] = sum_k b_k g_v[n + k]`` (``gx``, ``(chains, T)`` contiguous); for
    a single filter (``SECTIONS == 1``) in the same pass ``dL/db_j += g_v[n + j] x[n]``
    and ``dL/da_j -= g_v[n + j] y[n]`` (``gb``, ``ga``: rows of ``ORDER + 1``
    float64). ``history`` gets the history after the chunk, ``g_v[first ..]`` (at the
    signal's start, ``dL/dzi``).

    Over samples ``c L .. (c + 1) L - 1`` for chunk ``c = program_id(1)``, the last
    chunk continued by ``grad_zf`` (``gzf``, broadcast), the others by their
    ``entering`` row, or zero; per-chunk outputs go to row ``c * n_lanes + lane``.
    ``UNIT_STATES``: lane ``i`` carries the unit history ``e_(i % DIM)`` of chain
    ``i // DIM`` with no upstream gradient (the chunk's transition). Tiles are aligned
    to the chunk's start; the partial one, at its end, runs first.
    """
    DIM: tl.constexpr = SECTIONS * ORDER
    chunk, lanes, live, chains, index, b, na, rows = _program_chains(
        a_ptr, b_ptr, size1, size2, size3,
        a_stride0, a_stride1, a_stride2, a_stride3, a_step, a_section_step,
        b_stride0, b_stride1, b_stride2, b_stride3, b_step, b_section_step,
        n_lanes, SECTIONS, ORDER, UNIT_STATES, BLOCK,
    )
    history = _initial_state(gzf_ptr, _offset(index, gzf_stride0, gzf_stride1, gzf_stride2, gzf_stride3), gzf_step,
                             gzf_section_step, entering_ptr, rows, live, chunk, tl.num_programs(1) - 1, lanes,
                             BLOCK, SECTIONS, ORDER, HAS_GZF, HAS_ENTERING, UNIT_STATES)
    first = chunk * chunk_length
    end = tl.minimum(first + chunk_length, length)
    g_row = g_ptr + _offset(index, g_stride0, g_stride1, g_stride2, g_stride3)
    x_row = x_ptr + _offset(index, x_stride0, x_stride1, x_stride2, x_stride3)
    own_row = chains * length  # of y and gx
    grad_b = _zeros(BLOCK, ORDER + 1)
    grad_a = _zeros(BLOCK, ORDER)
    columns = tl.arange(0, TILE)
    n_tiles = (end - first) // TILE
    tail = first + n_tiles * TILE

    for step in range(0, end - tail):
        time = end - 1 - step
        if UNIT_STATES:
            upstream = tl.zeros([BLOCK], dtype=tl.float64)
        else:
            upstream = tl.load(g_row + tl.cast(time, tl.int64) * g_step, mask=live, other=0.0).to(tl.float64)
        sample = tl.zeros([BLOCK], dtype=tl.float64)
        output = tl.zeros([BLOCK], dtype=tl.float64)
        if NEED_B:
            sample = tl.load(x_row + tl.cast(time, tl.int64) * x_step, mask=live, other=0.0).to(tl.float64)
        if NEED_A:
            output = tl.load(y_ptr + own_row + time, mask=live, other=0.0).to(tl.float64)
        grad_input, history, grad_b, grad_a = _adjoint_sample(
            upstream, history, grad_b, grad_a, sample, output, b, na, SECTIONS, ORDER, NEED_A, NEED_B
        )
        if NEED_X:
            tl.store(gx_ptr + own_row + time, grad_input.to(gx_ptr.dtype.element_ty), mask=live)

    for reversed_tile in range(0, n_tiles):
        start = first + (n_tiles - 1 - reversed_tile) * TILE
        times = start + columns
        if UNIT_STATES:
            upstreams = _zeros(BLOCK, TILE)
        else:
            block = tl.load(g_row[:, None] + times.to(tl.int64)[None, :] * g_step, mask=live[:, None], other=0.0)
            upstreams = _unstack(block, TILE, BLOCK)
        samples = _zeros(BLOCK, TILE)
        outputs = _zeros(BLOCK, TILE)
        if NEED_B:
            block = tl.load(x_row[:, None] + times.to(tl.int64)[None, :] * x_step, mask=live[:, None], other=0.0)
            samples = _unstack(block, TILE, BLOCK)
        if NEED_A:
            block = tl.load(y_ptr + own_row[:, None] + times[None, :], mask=live[:, None], other=0.0)
            outputs = _unstack(block, TILE, BLOCK)
        # Tiles stay in the signals' dtype, widened a column at a time (registers).
        grad_inputs = ()
        for back in tl.static_range(TILE):
            grad_input, history, grad_b, grad_a = _adjoint_sample(
                upstreams[TILE - 1 - back].to(tl.float64), history, grad_b, grad_a,
                samples[TILE - 1 - back].to(tl.float64), outputs[TILE - 1 - back].to(tl.float64),
                b, na, SECTIONS, ORDER, NEED_A, NEED_B
            )
            grad_inputs = (grad_input.to(gx_ptr.dtype.element_ty),) + grad_inputs
        if NEED_X:
            block = _stack(grad_inputs, 0, TILE, BLOCK)
            tl.store(gx_ptr + own_row[:, None] + times[None, :], block, mask=live[:, None])

    if NEED_B:
        _store_row(gb_ptr, rows * (ORDER + 1), grad_b, live, ORDER + 1)
    if NEED_A:
        tl.store(ga_ptr + rows * (ORDER + 1), tl.zeros([BLOCK], dtype=tl.float64), mask=live)
        for k in tl.static_range(ORDER):
            tl.store(ga_ptr + rows * (ORDER + 1) + k + 1, -grad_a[k], mask=live)
    _store_row(history_ptr, rows * DIM, history, live, DIM)


@triton.jit
def cascade_adjoint_kernel(
    g_ptr, x_ptr, a_ptr, b_ptr, gzf_ptr, entering_ptr, checkpoints_ptr, signals_ptr, upstream_ptr,
    gx_ptr, ga_ptr, gb_ptr, history_ptr,
    size1, size2, size3,
    g_stride0, g_stride1, g_stride2, g_stride3, g_step,
    x_stride0, x_stride1, x_stride2, x_stride3, x_step,
    a_stride0, a_stride1, a_stride2, a_stride3, a_step, a_section_step,
    b_stride0, b_stride1, b_stride2, b_stride3, b_step, b_section_step,
    gzf_stride0, gzf_stride1, gzf_stride2, gzf_stride3, gzf_step, gzf_section_step,
    n_chains, length, chunk_length,
    SECTIONS: tl.constexpr, ORDER: tl.constexpr, HAS_GZF: tl.constexpr, HAS_ENTERING: tl.constexpr,
    NEED_X: tl.constexpr, NEED_A: tl.constexpr, NEED_B: tl.constexpr,
    BLOCK: tl.constexpr, SEGMENT: tl.constexpr,
):
    """The adjoint of a cascade with its coefficient gradients, in one backward pass
    that keeps no intermediate signal of the whole length.

    The chunk (as in ``adjoint_kernel``) is walked back in segments of ``SEGMENT``
    samples. Each segment is first recomputed forward from its checkpoint (the
    cascade's state at the segment's start, ``checkpoints``, ``(segment, DIM,
    rows)``, written by ``forward_kernel``), keeping every section's output in
    ``signals`` (``(SECTIONS, SEGMENT, rows)`` float64 scratch, rows fastest); then
    the sections run backwards over the segment, last to first, each passing the
    gradient reaching its input to the one before through ``upstream``
    (``(SEGMENT, rows)`` scratch) and adding its coefficient gradients into its own
    part of ``ga`` and ``gb`` (``(rows, SECTIONS, ORDER + 1)`` float64, zeroed by the
    caller). The first section writes the waveform's gradient (``gx``).
    """
    DIM: tl.constexpr = SECTIONS * ORDER
    chunk, _, live, chains, index, b, na, rows = _program_chains(
        a_ptr, b_ptr, size1, size2, size3,
        a_stride0, a_stride1, a_stride2, a_stride3, a_step, a_section_step,
        b_stride0, b_stride1, b_stride2, b_stride3, b_step, b_section_step,
        n_chains, SECTIONS, ORDER, False, BLOCK,
    )
    n_rows = tl.num_programs(1).to(tl.int64) * n_chains
    history = _initial_state(gzf_ptr, _offset(index, gzf_stride0, gzf_stride1, gzf_stride2, gzf_stride3), gzf_step,
                             gzf_section_step, entering_ptr, rows, live, chunk, tl.num_programs(1) - 1, chains,
                             BLOCK, SECTIONS, ORDER, HAS_GZF, HAS_ENTERING, False)
    first = chunk * chunk_length
    end = tl.minimum(first + chunk_length, length)
    g_row = g_ptr + _offset(index, g_stride0, g_stride1, g_stride2, g_stride3)
    x_row = x_ptr + _offset(index, x_stride0, x_stride1, x_stride2, x_stride3)
    n_segments = tl.cdiv(end - first, SEGMENT)

    for reversed_segment in range(0, n_segments):
        segment = n_segments - 1 - reversed_segment
        start = first + segment * SEGMENT
        stop = tl.minimum(start + SEGMENT, end)
        # Forward from the checkpoint: every section's output over the segment.
        state = ()
        for j in tl.static_range(DIM):
            state = state + (tl.load(checkpoints_ptr + tl.cast(segment * DIM + j, tl.int64) * n_rows + rows,
                                     mask=live, other=0.0),)
        for time in range(start, stop):
            signal = tl.load(x_row + tl.cast(time, tl.int64) * x_step, mask=live, other=0.0).to(tl.float64)
            new = ()
            for s in tl.static_range(SECTIONS):
                signal, section_state = _forward_step(signal, _section(state, s, ORDER), _section(b, s, ORDER + 1),
                                                      _section(na, s, ORDER), 1, ORDER)
                new = new + section_state
                tl.store(signals_ptr + tl.cast(s * SEGMENT + time - start, tl.int64) * n_rows + rows, signal, mask=live)
            state = new
        # Back through the sections, last to first.
        for r in tl.static_range(SECTIONS):
            history = _section_backward(
                g_row, g_step, x_row, x_step, signals_ptr, upstream_ptr, gx_ptr, ga_ptr, gb_ptr, history, b, na,
                chains, rows, n_rows, live, length, start, stop, SECTIONS - 1 - r,
                SECTIONS, ORDER, NEED_X, NEED_A, NEED_B, BLOCK, SEGMENT,
            )
    _store_row(history_ptr, rows * DIM, history, live, DIM)


@triton.jit
def _section(values, s: tl.constexpr, WIDTH: tl.constexpr):
    """Section ``s``'s ``WIDTH`` entries of a section-major tuple."""
    part = ()
    for k in tl.static_range(WIDTH):
        part = part + (values[s * WIDTH + k],)
    return part


@triton.jit
def _section_backward(g_row, g_step, x_row, x_step, signals_ptr, upstream_ptr, gx_ptr, ga_ptr, gb_ptr, history,
                      b, na, chains, rows, n_rows, live, length, start, stop, s: tl.constexpr,
                      SECTIONS: tl.constexpr, ORDER: tl.constexpr, NEED_X: tl.constexpr, NEED_A: tl.constexpr,
                      NEED_B: tl.constexpr, BLOCK: tl.constexpr, SEGMENT: tl.constexpr):
    """Section ``s`` back over samples ``start .. stop - 1`` of a segment (see
    ``cascade_adjoint_kernel``): its upstream gradient from ``g`` (the last section)
    or ``upstream``, its input and output from the waveform and ``signals``; the
    gradient reaching its input to ``upstream`` (or, for the first section, ``gx``);
    its coefficient gradients added into its part of ``ga``/``gb``. Returns the
    history."""
    grad_b = _zeros(BLOCK, ORDER + 1)
    grad_a = _zeros(BLOCK, ORDER)
    for step in range(0, stop - start):
        time = stop - 1 - step
        position = tl.cast(time - start, tl.int64)
        if s == SECTIONS - 1:
            upstream = tl.load(g_row + tl.cast(time, tl.int64) * g_step, mask=live, other=0.0).to(tl.float64)
        else:
            upstream = tl.load(upstream_ptr + position * n_rows + rows, mask=live, other=0.0)
        if s == 0:
            sample = tl.load(x_row + tl.cast(time, tl.int64) * x_step, mask=live, other=0.0).to(tl.float64)
        else:
            sample = tl.load(signals_ptr + ((s - 1) * SEGMENT + position) * n_rows + rows, mask=live, other=0.0)
        output = tl.load(signals_ptr + (s * SEGMENT + position) * n_rows + rows, mask=live, other=0.0)
        grad_v, grad_input = _section_adjoint(upstream, history, b, na, s, ORDER)
        grad_b, grad_a = _accumulate(grad_b, grad_a, grad_v, history, sample, output, s, ORDER, NEED_A, NEED_B)
        history = _shift_in(history, grad_v, s, SECTIONS, ORDER)
        if s > 0:
            tl.store(upstream_ptr + position * n_rows + rows, grad_input, mask=live)
        elif NEED_X:
            tl.store(gx_ptr + chains * length + time, grad_input.to(gx_ptr.dtype.element_ty), mask=live)
    coefficients = (rows * SECTIONS + s) * (ORDER + 1)
    if NEED_B:
        _store_row(gb_ptr, coefficients, _add(_load_row(gb_ptr, coefficients, live, ORDER + 1), grad_b, ORDER + 1),
                   live, ORDER + 1)
    if NEED_A:
        for k in tl.static_range(ORDER):
            value = tl.load(ga_ptr + coefficients + k + 1, mask=live, other=0.0) - grad_a[k]
            tl.store(ga_ptr + coefficients + k + 1, value, mask=live)
    return history
