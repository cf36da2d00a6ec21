"""Triton kernels for time-varying filters in transposed direct form II: forward and adjoint.

Imported only when the kernels first run (``import triton`` is slow). The layout is
the LTI kernels' (``triton.kernels``, whose helpers this module reuses): one chain per
thread, ``BLOCK`` chains per program, the state a tuple of ``(BLOCK,)`` float64
registers, signals moved in ``(BLOCK, TILE)`` tiles split into per-thread columns,
batch offsets from four batch dims and per-tensor strides (0 where a tensor
broadcasts), int64 offsets. Arithmetic is float64 whatever the signals' dtype.

Step ``n`` of a chain reads its raw taps (``a0`` included) from ``(..., steps, WIDTH)``
coefficients in one of three ways, the tensor's ``*_MODE`` (a constexpr):

- ``CONSTANT`` (one step): loaded once, kept in registers;
- ``SAMPLES`` (a row per sample): loaded a tile at a time, one ``(BLOCK, TILE)``
  block per tap;
- ``FRAMES`` (frame ``f`` at sample ``f * hop``): the frame's taps ``c_f`` and their
  change to the next frame ``d_f = c_(f+1) - c_f`` (zero after the last frame: it
  holds) are loaded when a frame starts, and step ``f * hop + o`` uses
  ``c_f + (o / hop) d_f``. Per-sample taps are never written anywhere.

Each step is normalised by its own ``a0`` (``inverse = 1 / a0``), with the
``a``/``b`` widths (``A_WIDTH``, ``B_WIDTH``) independent: missing taps are zero at
compile time, not multiplied. Forward, with ``s_(N+1) = 0``::

    y[n] = b_0 x[n] inverse + s_1
    s_k  = s_(k+1) + (b_k x[n] - a_k y[n]) inverse

Adjoint, backwards in time, with ``lam[j] = dL/ds_(j+1)`` after step ``n``
(initially ``dL/dzf``) and ``g`` the total gradient of ``y[n]``::

    g      = dL/dy[n] - inverse sum_k a_k lam[k-1]
    dx[n]  = inverse (b_0 g + sum_k b_k lam[k-1])
    db_0   = g x[n] inverse,   db_k = lam[k-1] x[n] inverse,   da_k = -lam[k-1] y[n] inverse
    da_0   = -inverse (sum_k b_k db_k + sum_k a_k da_k)
    lam    = (g, lam[0], ..., lam[N-2])

and ``dL/dzi = lam`` after step 0 (``csrc/varying_kernels.c`` is the same math in C).
Coefficient gradients go to per-chain rows (float64 ``(chains, steps, WIDTH)``; in the
coefficients' dtype for ``SAMPLES``, one row per sample): summed over the chain for
``CONSTANT``, split between the two frames around each sample with the weights of the
interpolation for ``FRAMES`` (two register accumulators per tap, flushed when the walk
back leaves a frame's interval), written per sample for ``SAMPLES``. Each chain owns
its rows: no atomics, deterministic.

Time runs in tiles of ``TILE`` samples, unrolled with no branch inside: with frames,
a tile may start by loading a frame (forward) or end by flushing one (adjoint), and a
tile in which a frame starts after its first sample runs a sample at a time instead
(a plain loop, as does the partial last tile); where ``hop`` is a multiple of
``TILE`` no tile does.
"""
import triton
import triton.language as tl

from .kernels import _add, _batch_index, _offset, _stack, _unstack, _zeros

# Where each step's taps come from (the ``A_MODE``/``B_MODE`` constexprs; the host's
# ``triton.varying`` names the same values).
CONSTANT = tl.constexpr(0)
SAMPLES = tl.constexpr(1)
FRAMES = tl.constexpr(2)


# ---------------------------------------------------------------------------------
# Loading taps
# ---------------------------------------------------------------------------------


@triton.jit
def _load_step(row, step, tap_step, time_step, live, WIDTH: tl.constexpr):
    """The ``WIDTH`` taps of time row ``step`` (a scalar) of every chain, float64."""
    base = row + tl.cast(step, tl.int64) * time_step
    taps = ()
    for k in tl.static_range(WIDTH):
        taps = taps + (tl.load(base + k * tap_step, mask=live, other=1.0).to(tl.float64),)
    return taps


@triton.jit
def _load_frame(row, frame, steps, tap_step, time_step, live, WIDTH: tl.constexpr):
    """Frame ``frame``'s taps and their change to the next frame (zero after the
    last frame, which holds): ``(first, delta)``."""
    first = _load_step(row, frame, tap_step, time_step, live, WIDTH)
    has_next = frame + 1 < steps
    second = _load_step(row, frame + 1, tap_step, time_step, live & has_next, WIDTH)
    delta = ()
    for k in tl.static_range(WIDTH):
        delta = delta + (tl.where(has_next, second[k] - first[k], 0.0),)
    return first, delta


@triton.jit
def _load_tile(row, start, tap_step, time_step, live, WIDTH: tl.constexpr, TILE: tl.constexpr,
               BLOCK: tl.constexpr):
    """Taps of steps ``start .. start + TILE - 1``: per tap, a tuple of ``TILE``
    columns in the coefficients' own dtype (widened one at a time when used)."""
    times = (start + tl.arange(0, TILE)).to(tl.int64) * time_step
    taps = ()
    for k in tl.static_range(WIDTH):
        block = tl.load(row[:, None] + (times + k * tap_step)[None, :], mask=live[:, None], other=1.0)
        taps = taps + (_unstack(block, TILE, BLOCK),)
    return taps


@triton.jit
def _store_tile_taps(ptr, rows, start, values, live, WIDTH: tl.constexpr, TILE: tl.constexpr, BLOCK: tl.constexpr):
    """Per-sample values (per tap, ``TILE`` columns) into ``(rows, steps, WIDTH)`` at
    steps ``start ..``; ``rows`` is each chain's first element."""
    times = (start + tl.arange(0, TILE)).to(tl.int64) * WIDTH
    for k in tl.static_range(WIDTH):
        block = _stack(values[k], 0, TILE, BLOCK).to(ptr.dtype.element_ty)
        tl.store(ptr + rows[:, None] + (times + k)[None, :], block, mask=live[:, None])


# ---------------------------------------------------------------------------------
# One step
# ---------------------------------------------------------------------------------


@triton.jit
def _forward_step(x, state, a, b, inverse, ORDER: tl.constexpr, A_WIDTH: tl.constexpr, B_WIDTH: tl.constexpr):
    """One sample of transposed direct form II with raw taps: ``(y, state)``."""
    y = b[0] * x * inverse
    if ORDER > 0:
        y = y + state[0]
    new = ()
    for k in tl.static_range(1, ORDER + 1):
        if k < B_WIDTH:
            if k < A_WIDTH:
                term = b[k] * x - a[k] * y
            else:
                term = b[k] * x
        else:
            term = -(a[k] * y)
        if k < ORDER:
            new = new + (term * inverse + state[k],)
        else:
            new = new + (term * inverse,)
    return y, new


@triton.jit
def _adjoint_step(upstream, x, y, lam, a, b, inverse, ORDER: tl.constexpr, A_WIDTH: tl.constexpr,
                  B_WIDTH: tl.constexpr):
    """One sample back (see the module doc): ``(dx, lam, da, db)`` with ``da``/``db``
    the raw taps' gradients of this step."""
    g = upstream
    if A_WIDTH > 1 and ORDER > 0:
        feedback = a[1] * lam[0]
        for k in tl.static_range(2, min(A_WIDTH, ORDER + 1)):
            feedback += a[k] * lam[k - 1]
        g = upstream - feedback * inverse
    grad_x = b[0] * g
    for k in tl.static_range(1, B_WIDTH):
        grad_x += b[k] * lam[k - 1]
    grad_x = grad_x * inverse
    scaled_x = x * inverse
    scaled_y = y * inverse
    grad_b = (g * scaled_x,)
    leading = b[0] * grad_b[0]
    for k in tl.static_range(1, B_WIDTH):
        grad_b = grad_b + (lam[k - 1] * scaled_x,)
        leading += b[k] * grad_b[k]
    grad_a_rest = ()
    for k in tl.static_range(1, A_WIDTH):
        value = -(lam[k - 1] * scaled_y)
        grad_a_rest = grad_a_rest + (value,)
        leading += a[k] * value
    grad_a = (-(leading * inverse),) + grad_a_rest
    new = ()
    if ORDER > 0:
        new = (g,)
        for k in tl.static_range(ORDER - 1):
            new = new + (lam[k],)
    return grad_x, new, grad_a, grad_b


@triton.jit
def _frame_weight(frame, offset, steps, inverse_hop):
    """A frame's share of a step, ``offset / hop`` toward the next frame (0 after the
    last frame: it holds)."""
    return tl.where(frame + 1 < steps, offset.to(tl.float64) * inverse_hop, 0.0)


@triton.jit
def _add_weighted(near, far, values, weight, WIDTH: tl.constexpr):
    """``near += (1 - weight) values``, ``far += weight values``."""
    new_near = ()
    new_far = ()
    for k in tl.static_range(WIDTH):
        new_near = new_near + (near[k] + (1.0 - weight) * values[k],)
        new_far = new_far + (far[k] + weight * values[k],)
    return new_near, new_far


@triton.jit
def _flush_frame(ptr, rows, frame, steps, near, far, live, WIDTH: tl.constexpr):
    """Leaving frame ``frame``'s interval backwards: its own share is the frame's first
    contribution (stored), the next frame's share is added to what that frame got from
    its own interval. ``rows`` is each chain's first element of ``(steps, WIDTH)``."""
    has_next = frame + 1 < steps
    base = ptr + rows + tl.cast(frame, tl.int64) * WIDTH
    for k in tl.static_range(WIDTH):
        tl.store(base + k, near[k], mask=live)
        following = tl.load(base + WIDTH + k, mask=live & has_next, other=0.0)
        tl.store(base + WIDTH + k, following + far[k], mask=live & has_next)


# ---------------------------------------------------------------------------------
# Registers of a coefficient tensor, and the frame clock
# ---------------------------------------------------------------------------------
#
# A tensor's ``source`` is ``(row, tap_step, time_step, steps)`` (each chain's row
# pointer); its ``registers`` are ``(held, first, delta, held_inverse)``: the
# ``CONSTANT`` taps and ``1 / a0`` (for ``a``), the ``FRAMES`` frame and its change,
# empty tuples where the mode has none. The ``clock`` is ``(frame, offset)`` of the
# current sample, ``sample = frame * hop + offset``, kept by counting.


@triton.jit
def _chains(size1, size2, size3, n_chains, BLOCK: tl.constexpr):
    """This program's chains (int64), which are live, and their batch index."""
    chains = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    return chains, chains < n_chains, _batch_index(chains, size1, size2, size3)


@triton.jit
def _registers(source, live, MODE: tl.constexpr, WIDTH: tl.constexpr, BLOCK: tl.constexpr):
    """A tensor's registers before the first sample (frames are loaded by ``_reload``)."""
    held = ()
    first = ()
    delta = ()
    held_inverse = 1.0
    if MODE == CONSTANT:
        held = _load_step(source[0], 0, source[1], source[2], live, WIDTH)
        held_inverse = 1.0 / held[0]
    if MODE == FRAMES:
        first = _zeros(BLOCK, WIDTH)
        delta = _zeros(BLOCK, WIDTH)
    return held, first, delta, held_inverse


@triton.jit
def _reload(source, registers, frame, live, MODE: tl.constexpr, WIDTH: tl.constexpr):
    """A ``FRAMES`` tensor's registers for frame ``frame``; others' unchanged."""
    if MODE == FRAMES:
        first, delta = _load_frame(source[0], frame, source[3], source[1], source[2], live, WIDTH)
        return registers[0], first, delta, registers[3]
    else:
        return registers


@triton.jit
def _columns(source, start, live, MODE: tl.constexpr, WIDTH: tl.constexpr, TILE: tl.constexpr, BLOCK: tl.constexpr):
    """A ``SAMPLES`` tensor's taps of ``TILE`` steps from ``start`` (``_load_tile``), else ``()``."""
    if MODE == SAMPLES:
        return _load_tile(source[0], start, source[1], source[2], live, WIDTH, TILE, BLOCK)
    else:
        return ()


@triton.jit
def _taps_now(MODE: tl.constexpr, registers, columns, t: tl.constexpr, weight, WIDTH: tl.constexpr):
    """The raw taps of the current step: held (``CONSTANT``), column ``t`` of the tile
    (``SAMPLES``) or the frame interpolated with ``weight`` (``FRAMES``)."""
    taps = ()
    for k in tl.static_range(WIDTH):
        if MODE == CONSTANT:
            taps = taps + (registers[0][k],)
        elif MODE == SAMPLES:
            taps = taps + (columns[k][t].to(tl.float64),)
        else:
            taps = taps + (registers[1][k] + weight * registers[2][k],)
    return taps


@triton.jit
def _step_taps(a_registers, a_columns, b_registers, b_columns, t: tl.constexpr, a_weight, b_weight,
               A_MODE: tl.constexpr, B_MODE: tl.constexpr, A_WIDTH: tl.constexpr, B_WIDTH: tl.constexpr):
    """``(a, b, 1 / a0)`` of the current step."""
    a = _taps_now(A_MODE, a_registers, a_columns, t, a_weight, A_WIDTH)
    b = _taps_now(B_MODE, b_registers, b_columns, t, b_weight, B_WIDTH)
    if A_MODE == CONSTANT:
        inverse = a_registers[3]
    else:
        inverse = 1.0 / a[0]
    return a, b, inverse


@triton.jit
def _advance(clock, steps, hop):
    """The clock ``steps`` samples on, where that reaches at most the next frame's start."""
    offset = clock[1] + steps
    wraps = offset == hop
    return tl.where(wraps, clock[0] + 1, clock[0]), tl.where(wraps, 0, offset)


@triton.jit
def _weights(frame, offset, a_source, b_source, inverse_hop, A_MODE: tl.constexpr, B_MODE: tl.constexpr):
    """Each tensor's ``offset / hop`` toward its next frame (0 after its last frame,
    which holds; 0 where it has no frames)."""
    a_weight = 0.0
    b_weight = 0.0
    if A_MODE == FRAMES:
        a_weight = _frame_weight(frame, offset, a_source[3], inverse_hop)
    if B_MODE == FRAMES:
        b_weight = _frame_weight(frame, offset, b_source[3], inverse_hop)
    return a_weight, b_weight


# ---------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------


@triton.jit
def _forward_samples(first, end, state, clock, a_registers, b_registers, x_row, x_step, y_row, a_source, b_source,
                     hop, inverse_hop, live, ORDER: tl.constexpr, A_WIDTH: tl.constexpr, B_WIDTH: tl.constexpr,
                     A_MODE: tl.constexpr, B_MODE: tl.constexpr, BLOCK: tl.constexpr):
    """Samples ``first .. end - 1`` one at a time (the partial last tile, and tiles in
    which a frame starts), frames loaded as they start. Returns ``(state, clock,
    a_registers, b_registers)``."""
    FRAMED: tl.constexpr = A_MODE == FRAMES or B_MODE == FRAMES
    for time in range(first, end):
        weight = 0.0
        if FRAMED:
            if clock[1] == 0:
                a_registers = _reload(a_source, a_registers, clock[0], live, A_MODE, A_WIDTH)
                b_registers = _reload(b_source, b_registers, clock[0], live, B_MODE, B_WIDTH)
            weight = clock[1].to(tl.float64) * inverse_hop
        a, b, inverse = _step_taps(
            a_registers, _columns(a_source, time, live, A_MODE, A_WIDTH, 1, BLOCK),
            b_registers, _columns(b_source, time, live, B_MODE, B_WIDTH, 1, BLOCK),
            0, weight, weight, A_MODE, B_MODE, A_WIDTH, B_WIDTH,
        )
        x = tl.load(x_row + tl.cast(time, tl.int64) * x_step, mask=live, other=0.0).to(tl.float64)
        y, state = _forward_step(x, state, a, b, inverse, ORDER, A_WIDTH, B_WIDTH)
        tl.store(y_row + time, y.to(y_row.dtype.element_ty), mask=live)
        if FRAMED:
            clock = _advance(clock, 1, hop)
    return state, clock, a_registers, b_registers


@triton.jit
def varying_forward_kernel(
    x_ptr, a_ptr, b_ptr, zi_ptr, y_ptr, zf_ptr,
    size1, size2, size3,
    x_stride0, x_stride1, x_stride2, x_stride3, x_step,
    a_stride0, a_stride1, a_stride2, a_stride3, a_tap, a_time,
    b_stride0, b_stride1, b_stride2, b_stride3, b_tap, b_time,
    zi_stride0, zi_stride1, zi_stride2, zi_stride3, zi_step,
    n_chains, length, hop, a_steps, b_steps,
    ORDER: tl.constexpr, A_WIDTH: tl.constexpr, B_WIDTH: tl.constexpr, A_MODE: tl.constexpr,
    B_MODE: tl.constexpr, HAS_ZI: tl.constexpr, BLOCK: tl.constexpr, TILE: tl.constexpr,
):
    """The filter over every sample of ``BLOCK`` chains from ``zi`` (broadcast) or
    zero: ``y`` (``(chains, T)`` contiguous, the waveform's dtype) and ``zf``
    (``(chains, ORDER)`` float64).

    Tiles of ``TILE`` samples run unrolled and branch-free; with frames, a tile in
    which a frame starts after its first sample runs a sample at a time instead (none
    where ``hop`` is a multiple of ``TILE``), and so does the partial last tile."""
    FRAMED: tl.constexpr = A_MODE == FRAMES or B_MODE == FRAMES
    chains, live, index = _chains(size1, size2, size3, n_chains, BLOCK)
    x_row = x_ptr + _offset(index, x_stride0, x_stride1, x_stride2, x_stride3)
    y_row = y_ptr + chains * length
    a_source = (a_ptr + _offset(index, a_stride0, a_stride1, a_stride2, a_stride3), a_tap, a_time, a_steps)
    b_source = (b_ptr + _offset(index, b_stride0, b_stride1, b_stride2, b_stride3), b_tap, b_time, b_steps)
    a_registers = _registers(a_source, live, A_MODE, A_WIDTH, BLOCK)
    b_registers = _registers(b_source, live, B_MODE, B_WIDTH, BLOCK)
    state = _zeros(BLOCK, ORDER)
    if HAS_ZI:
        zi_row = zi_ptr + _offset(index, zi_stride0, zi_stride1, zi_stride2, zi_stride3)
        state = _load_step(zi_row, 0, zi_step, 0, live, ORDER)
    clock = (tl.zeros([], dtype=tl.int32), tl.zeros([], dtype=tl.int32))
    inverse_hop = 0.0
    if FRAMED:
        inverse_hop = 1.0 / hop.to(tl.float64)
    columns = tl.arange(0, TILE)

    n_tiles = length // TILE
    for tile in range(0, n_tiles):
        start = tile * TILE
        smooth = True
        if FRAMED:
            if clock[1] == 0:
                a_registers = _reload(a_source, a_registers, clock[0], live, A_MODE, A_WIDTH)
                b_registers = _reload(b_source, b_registers, clock[0], live, B_MODE, B_WIDTH)
            smooth = clock[1] + TILE <= hop
        if smooth:
            block = tl.load(x_row[:, None] + (start + columns).to(tl.int64)[None, :] * x_step,
                            mask=live[:, None], other=0.0)
            samples = _unstack(block, TILE, BLOCK)
            a_columns = _columns(a_source, start, live, A_MODE, A_WIDTH, TILE, BLOCK)
            b_columns = _columns(b_source, start, live, B_MODE, B_WIDTH, TILE, BLOCK)
            outputs = ()
            for t in tl.static_range(TILE):
                weight = 0.0
                if FRAMED:
                    weight = (clock[1] + t).to(tl.float64) * inverse_hop
                a, b, inverse = _step_taps(a_registers, a_columns, b_registers, b_columns, t, weight, weight,
                                           A_MODE, B_MODE, A_WIDTH, B_WIDTH)
                y, state = _forward_step(samples[t].to(tl.float64), state, a, b, inverse, ORDER, A_WIDTH, B_WIDTH)
                outputs = outputs + (y.to(y_ptr.dtype.element_ty),)
            tl.store(y_row[:, None] + (start + columns)[None, :], _stack(outputs, 0, TILE, BLOCK), mask=live[:, None])
            if FRAMED:
                clock = _advance(clock, TILE, hop)
        else:
            state, clock, a_registers, b_registers = _forward_samples(
                start, start + TILE, state, clock, a_registers, b_registers, x_row, x_step, y_row, a_source,
                b_source, hop, inverse_hop, live, ORDER, A_WIDTH, B_WIDTH, A_MODE, B_MODE, BLOCK,
            )
    state, clock, a_registers, b_registers = _forward_samples(
        n_tiles * TILE, length, state, clock, a_registers, b_registers, x_row, x_step, y_row, a_source, b_source,
        hop, inverse_hop, live, ORDER, A_WIDTH, B_WIDTH, A_MODE, B_MODE, BLOCK,
    )
    for k in tl.static_range(ORDER):
        tl.store(zf_ptr + chains * ORDER + k, state[k], mask=live)


# ---------------------------------------------------------------------------------
# Adjoint
# ---------------------------------------------------------------------------------
#
# A tensor's ``sums`` are its gradient accumulators ``(near, far)``: the whole
# signal's sum (``CONSTANT``: near), or the current frame interval's shares of its
# frame (near) and of the next (far) (``FRAMES``); empty where not kept.


@triton.jit
def _sums(MODE: tl.constexpr, NEED: tl.constexpr, BLOCK: tl.constexpr, WIDTH: tl.constexpr):
    near = ()
    far = ()
    if NEED and MODE != SAMPLES:
        near = _zeros(BLOCK, WIDTH)
    if NEED and MODE == FRAMES:
        far = _zeros(BLOCK, WIDTH)
    return near, far


@triton.jit
def _accumulate(sums, values, weight, MODE: tl.constexpr, NEED: tl.constexpr, WIDTH: tl.constexpr):
    if NEED and MODE == CONSTANT:
        return _add(sums[0], values, WIDTH), sums[1]
    elif NEED and MODE == FRAMES:
        return _add_weighted(sums[0], sums[1], values, weight, WIDTH)
    else:
        return sums


@triton.jit
def _step_back(upstream, x, y, lam, a_registers, a_columns, b_registers, b_columns, a_sums, b_sums,
               t: tl.constexpr, a_weight, b_weight, ORDER: tl.constexpr, A_WIDTH: tl.constexpr,
               B_WIDTH: tl.constexpr, A_MODE: tl.constexpr, B_MODE: tl.constexpr, NEED_A: tl.constexpr,
               NEED_B: tl.constexpr):
    """One sample back, its taps' gradients added to the sums: ``(dx, lam, da, db,
    a_sums, b_sums)`` (``da``/``db``: this step's, for ``SAMPLES``)."""
    a, b, inverse = _step_taps(a_registers, a_columns, b_registers, b_columns, t, a_weight, b_weight,
                               A_MODE, B_MODE, A_WIDTH, B_WIDTH)
    grad_x, lam, grad_a, grad_b = _adjoint_step(upstream, x, y, lam, a, b, inverse, ORDER, A_WIDTH, B_WIDTH)
    a_sums = _accumulate(a_sums, grad_a, a_weight, A_MODE, NEED_A, A_WIDTH)
    b_sums = _accumulate(b_sums, grad_b, b_weight, B_MODE, NEED_B, B_WIDTH)
    return grad_x, lam, grad_a, grad_b, a_sums, b_sums


@triton.jit
def _leave_frame(clock, a_registers, b_registers, a_sums, b_sums, a_source, b_source, ga_ptr, ga_rows, gb_ptr,
                 gb_rows, hop, live, A_WIDTH: tl.constexpr, B_WIDTH: tl.constexpr, A_MODE: tl.constexpr,
                 B_MODE: tl.constexpr, NEED_A: tl.constexpr, NEED_B: tl.constexpr, BLOCK: tl.constexpr):
    """The walk back has done frame ``clock[0]``'s first sample: its sums are flushed,
    the frame before is loaded and the clock moves to its last sample. Returns
    ``(clock, a_registers, b_registers, a_sums, b_sums)``."""
    frame = clock[0]
    if A_MODE == FRAMES:
        if NEED_A:
            _flush_frame(ga_ptr, ga_rows, frame, a_source[3], a_sums[0], a_sums[1], live, A_WIDTH)
            a_sums = _sums(A_MODE, NEED_A, BLOCK, A_WIDTH)
        a_registers = _reload(a_source, a_registers, frame - 1, live & (frame > 0), A_MODE, A_WIDTH)
    if B_MODE == FRAMES:
        if NEED_B:
            _flush_frame(gb_ptr, gb_rows, frame, b_source[3], b_sums[0], b_sums[1], live, B_WIDTH)
            b_sums = _sums(B_MODE, NEED_B, BLOCK, B_WIDTH)
        b_registers = _reload(b_source, b_registers, frame - 1, live & (frame > 0), B_MODE, B_WIDTH)
    return (frame - 1, hop - 1), a_registers, b_registers, a_sums, b_sums


@triton.jit
def _adjoint_samples(first, end, lam, clock, a_registers, b_registers, a_sums, b_sums, g_row, g_step, x_row,
                     x_step, y_row, gx_row, ga_ptr, ga_rows, gb_ptr, gb_rows, a_source, b_source, hop,
                     inverse_hop, live, ORDER: tl.constexpr, A_WIDTH: tl.constexpr, B_WIDTH: tl.constexpr,
                     A_MODE: tl.constexpr, B_MODE: tl.constexpr, NEED_X: tl.constexpr, NEED_A: tl.constexpr,
                     NEED_B: tl.constexpr, BLOCK: tl.constexpr):
    """Samples ``end - 1`` down to ``first`` one at a time (the partial last tile, and
    tiles in which a frame starts after their first sample). Returns ``(lam, clock,
    a_registers, b_registers, a_sums, b_sums)``."""
    FRAMED: tl.constexpr = A_MODE == FRAMES or B_MODE == FRAMES
    for step in range(0, end - first):
        time = tl.cast(end - 1 - step, tl.int64)
        upstream = tl.load(g_row + time * g_step, mask=live, other=0.0).to(tl.float64)
        x = tl.zeros([BLOCK], dtype=tl.float64)
        y = tl.zeros([BLOCK], dtype=tl.float64)
        if NEED_A or NEED_B:
            x = tl.load(x_row + time * x_step, mask=live, other=0.0).to(tl.float64)
        if NEED_A:
            y = tl.load(y_row + time, mask=live, other=0.0).to(tl.float64)
        a_weight, b_weight = _weights(clock[0], clock[1], a_source, b_source, inverse_hop, A_MODE, B_MODE)
        grad_x, lam, grad_a, grad_b, a_sums, b_sums = _step_back(
            upstream, x, y, lam, a_registers, _columns(a_source, time, live, A_MODE, A_WIDTH, 1, BLOCK),
            b_registers, _columns(b_source, time, live, B_MODE, B_WIDTH, 1, BLOCK), a_sums, b_sums, 0,
            a_weight, b_weight, ORDER, A_WIDTH, B_WIDTH, A_MODE, B_MODE, NEED_A, NEED_B,
        )
        if NEED_X:
            tl.store(gx_row + time, grad_x.to(gx_row.dtype.element_ty), mask=live)
        if NEED_A and A_MODE == SAMPLES:
            for k in tl.static_range(A_WIDTH):
                tl.store(ga_ptr + ga_rows + time * A_WIDTH + k, grad_a[k].to(ga_ptr.dtype.element_ty), mask=live)
        if NEED_B and B_MODE == SAMPLES:
            for k in tl.static_range(B_WIDTH):
                tl.store(gb_ptr + gb_rows + time * B_WIDTH + k, grad_b[k].to(gb_ptr.dtype.element_ty), mask=live)
        if FRAMED:
            if clock[1] == 0:
                clock, a_registers, b_registers, a_sums, b_sums = _leave_frame(
                    clock, a_registers, b_registers, a_sums, b_sums, a_source, b_source, ga_ptr, ga_rows,
                    gb_ptr, gb_rows, hop, live, A_WIDTH, B_WIDTH, A_MODE, B_MODE, NEED_A, NEED_B, BLOCK,
                )
            else:
                clock = (clock[0], clock[1] - 1)
    return lam, clock, a_registers, b_registers, a_sums, b_sums


@triton.jit
def varying_adjoint_kernel(
    g_ptr, gzf_ptr, x_ptr, y_ptr, a_ptr, b_ptr, gx_ptr, ga_ptr, gb_ptr, gzi_ptr,
    size1, size2, size3,
    g_stride0, g_stride1, g_stride2, g_stride3, g_step,
    gzf_stride0, gzf_stride1, gzf_stride2, gzf_stride3, gzf_step,
    x_stride0, x_stride1, x_stride2, x_stride3, x_step,
    a_stride0, a_stride1, a_stride2, a_stride3, a_tap, a_time,
    b_stride0, b_stride1, b_stride2, b_stride3, b_tap, b_time,
    n_chains, length, hop, a_steps, b_steps,
    ORDER: tl.constexpr, A_WIDTH: tl.constexpr, B_WIDTH: tl.constexpr, A_MODE: tl.constexpr,
    B_MODE: tl.constexpr, HAS_GZF: tl.constexpr, NEED_X: tl.constexpr, NEED_A: tl.constexpr,
    NEED_B: tl.constexpr, BLOCK: tl.constexpr, TILE: tl.constexpr,
):
    """The adjoint over every sample of ``BLOCK`` chains, backwards from ``dL/dzf``
    (``gzf``, broadcast) or zero, with ``dL/dy`` from ``g`` (broadcast, strided):
    ``gx`` (``(chains, T)``, where ``NEED_X``), the taps' gradients ``ga``/``gb``
    (``(chains, steps, WIDTH)``, zeroed by the caller for ``FRAMES``, where
    ``NEED_A``/``NEED_B``) and ``gzi`` (``(chains, ORDER)`` float64). ``y`` is the
    forward's output, ``(chains, T)`` contiguous.

    The partial tile at the end runs first, a sample at a time, then the full tiles
    backwards, unrolled and branch-free except those in which a frame starts after
    their first sample (run a sample at a time; none where ``hop`` is a multiple of
    ``TILE``)."""
    FRAMED: tl.constexpr = A_MODE == FRAMES or B_MODE == FRAMES
    chains, live, index = _chains(size1, size2, size3, n_chains, BLOCK)
    g_row = g_ptr + _offset(index, g_stride0, g_stride1, g_stride2, g_stride3)
    x_row = x_ptr + _offset(index, x_stride0, x_stride1, x_stride2, x_stride3)
    y_row = y_ptr + chains * length
    gx_row = gx_ptr + chains * length
    ga_rows = chains * a_steps * A_WIDTH  # int64: chains is
    gb_rows = chains * b_steps * B_WIDTH
    a_source = (a_ptr + _offset(index, a_stride0, a_stride1, a_stride2, a_stride3), a_tap, a_time, a_steps)
    b_source = (b_ptr + _offset(index, b_stride0, b_stride1, b_stride2, b_stride3), b_tap, b_time, b_steps)
    a_registers = _registers(a_source, live, A_MODE, A_WIDTH, BLOCK)
    b_registers = _registers(b_source, live, B_MODE, B_WIDTH, BLOCK)
    a_sums = _sums(A_MODE, NEED_A, BLOCK, A_WIDTH)
    b_sums = _sums(B_MODE, NEED_B, BLOCK, B_WIDTH)
    lam = _zeros(BLOCK, ORDER)
    if HAS_GZF:
        gzf_row = gzf_ptr + _offset(index, gzf_stride0, gzf_stride1, gzf_stride2, gzf_stride3)
        lam = _load_step(gzf_row, 0, gzf_step, 0, live, ORDER)
    clock = (tl.zeros([], dtype=tl.int32), tl.zeros([], dtype=tl.int32))
    inverse_hop = 0.0
    if FRAMED:
        inverse_hop = 1.0 / hop.to(tl.float64)
        last = length - 1
        frame = last // hop
        clock = (frame.to(tl.int32), (last - frame * hop).to(tl.int32))
        a_registers = _reload(a_source, a_registers, clock[0], live, A_MODE, A_WIDTH)
        b_registers = _reload(b_source, b_registers, clock[0], live, B_MODE, B_WIDTH)
    columns = tl.arange(0, TILE)
    n_tiles = length // TILE

    lam, clock, a_registers, b_registers, a_sums, b_sums = _adjoint_samples(
        n_tiles * TILE, length, lam, clock, a_registers, b_registers, a_sums, b_sums, g_row, g_step, x_row, x_step,
        y_row, gx_row, ga_ptr, ga_rows, gb_ptr, gb_rows, a_source, b_source, hop, inverse_hop, live,
        ORDER, A_WIDTH, B_WIDTH, A_MODE, B_MODE, NEED_X, NEED_A, NEED_B, BLOCK,
    )
    for reversed_tile in range(0, n_tiles):
        start = (n_tiles - 1 - reversed_tile) * TILE
        smooth = True
        if FRAMED:
            smooth = clock[1] >= TILE - 1
        if smooth:
            times = (start + columns).to(tl.int64)
            upstreams = _unstack(tl.load(g_row[:, None] + times[None, :] * g_step, mask=live[:, None], other=0.0),
                                 TILE, BLOCK)
            samples = _zeros(BLOCK, TILE)
            outputs = _zeros(BLOCK, TILE)
            if NEED_A or NEED_B:
                samples = _unstack(tl.load(x_row[:, None] + times[None, :] * x_step, mask=live[:, None],
                                           other=0.0), TILE, BLOCK)
            if NEED_A:
                outputs = _unstack(tl.load(y_row[:, None] + times[None, :], mask=live[:, None], other=0.0),
                                   TILE, BLOCK)
            a_columns = _columns(a_source, start, live, A_MODE, A_WIDTH, TILE, BLOCK)
            b_columns = _columns(b_source, start, live, B_MODE, B_WIDTH, TILE, BLOCK)
            grad_xs = ()
            grad_as = _empty_columns(A_WIDTH)
            grad_bs = _empty_columns(B_WIDTH)
            for t in tl.static_range(TILE - 1, -1, -1):
                a_weight, b_weight = _weights(clock[0], clock[1] - (TILE - 1 - t), a_source, b_source, inverse_hop,
                                              A_MODE, B_MODE)
                grad_x, lam, grad_a, grad_b, a_sums, b_sums = _step_back(
                    upstreams[t].to(tl.float64), samples[t].to(tl.float64), outputs[t].to(tl.float64), lam,
                    a_registers, a_columns, b_registers, b_columns, a_sums, b_sums, t, a_weight, b_weight,
                    ORDER, A_WIDTH, B_WIDTH, A_MODE, B_MODE, NEED_A, NEED_B,
                )
                grad_xs = (grad_x.to(gx_ptr.dtype.element_ty),) + grad_xs
                if NEED_A and A_MODE == SAMPLES:
                    grad_as = _prepend_columns(grad_as, grad_a, A_WIDTH)
                if NEED_B and B_MODE == SAMPLES:
                    grad_bs = _prepend_columns(grad_bs, grad_b, B_WIDTH)
            if NEED_X:
                tl.store(gx_row[:, None] + times[None, :], _stack(grad_xs, 0, TILE, BLOCK), mask=live[:, None])
            if NEED_A and A_MODE == SAMPLES:
                _store_tile_taps(ga_ptr, ga_rows, start, grad_as, live, A_WIDTH, TILE, BLOCK)
            if NEED_B and B_MODE == SAMPLES:
                _store_tile_taps(gb_ptr, gb_rows, start, grad_bs, live, B_WIDTH, TILE, BLOCK)
            if FRAMED:
                if clock[1] == TILE - 1:  # the tile's first sample started its frame
                    clock, a_registers, b_registers, a_sums, b_sums = _leave_frame(
                        clock, a_registers, b_registers, a_sums, b_sums, a_source, b_source, ga_ptr, ga_rows,
                        gb_ptr, gb_rows, hop, live, A_WIDTH, B_WIDTH, A_MODE, B_MODE, NEED_A, NEED_B, BLOCK,
                    )
                else:
                    clock = (clock[0], clock[1] - TILE)
        else:
            lam, clock, a_registers, b_registers, a_sums, b_sums = _adjoint_samples(
                start, start + TILE, lam, clock, a_registers, b_registers, a_sums, b_sums, g_row, g_step, x_row,
                x_step, y_row, gx_row, ga_ptr, ga_rows, gb_ptr, gb_rows, a_source, b_source, hop, inverse_hop,
                live, ORDER, A_WIDTH, B_WIDTH, A_MODE, B_MODE, NEED_X, NEED_A, NEED_B, BLOCK,
            )

    if NEED_A and A_MODE == CONSTANT:
        for k in tl.static_range(A_WIDTH):
            tl.store(ga_ptr + ga_rows + k, a_sums[0][k], mask=live)
    if NEED_B and B_MODE == CONSTANT:
        for k in tl.static_range(B_WIDTH):
            tl.store(gb_ptr + gb_rows + k, b_sums[0][k], mask=live)
    for k in tl.static_range(ORDER):
        tl.store(gzi_ptr + chains * ORDER + k, lam[k], mask=live)


@triton.jit
def _empty_columns(WIDTH: tl.constexpr):
    """Per tap, an empty tuple of columns."""
    columns = ()
    for _ in tl.static_range(WIDTH):
        columns = columns + ((),)
    return columns


@triton.jit
def _prepend_columns(columns, values, WIDTH: tl.constexpr):
    """Each tap's value of an earlier step in front of its columns."""
    new = ()
    for k in tl.static_range(WIDTH):
        new = new + ((values[k],) + columns[k],)
    return new
