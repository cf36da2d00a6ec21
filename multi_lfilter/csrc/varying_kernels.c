/*
 * Time-varying filters in transposed direct form II: the forward filter and its
 * adjoint, LANES rows at a time in SIMD vectors, tiles of rows split over threads.
 *
 * Step n reads its coefficients (or interpolates them between the two frames around
 * it, f = n / hop and f + 1 with weight (n mod hop) / hop, holding the last frame),
 * normalises them by their own a0, and runs
 *     y[n]       = b0 x[n] + s_1
 *     s_k        = s_{k+1} + b_k x[n] - a_k y[n]          (s_{N+1} = 0)
 * in float64, whatever the I/O dtype. Per-sample coefficients are never written out;
 * the adjoint accumulates frame gradients with the same weights.
 *
 * Adjoint, walking time backwards with lam[j] = dL/ds_{j+1} after step n (initially
 * the final state's gradient):
 *     g      = grad_y[n] - sum_k a_k lam[k-1]        (the total gradient of y[n])
 *     gx[n]  = b0 g + sum_k b_k lam[k-1]
 *     gb0    = g x[n],   gb_k = lam[k-1] x[n],   ga_k = -lam[k-1] y[n]
 *     lam    = [g, lam[0], ..., lam[N-2]]
 * then through the normalisation (b / a0, a / a0) to the raw coefficients, and
 * gzi = lam after step 0.
 *
 * Layout of the work, as in the LTI kernels (lfilter_kernels.c, lfilter_tiles.h): a
 * tile of LANES rows steps through time together, a vector per step (two halves of
 * four lanes), the state in registers; threads take ranges of tiles. Time is walked
 * in blocks of up to a thousand steps (varying_tiles.h); per block, the signals are
 * transposed into [step][lane] buffers and each tensor's raw coefficients into a
 * [step][k][lane] buffer, by the way they change: per-sample ones (rows, T, K) are
 * transposed from each lane's contiguous run of T * K values (eight at a time through
 * registers), frames are interpolated lane-wise (the reference's formula,
 * c[f] (1 - w) + c[f + 1] w, one weight per step for every lane), constant ones are
 * read once per tile. The adjoint writes each step's raw-coefficient gradients into
 * the same kind of buffer, which is then transposed back into the rows (per-sample)
 * or added, walking backwards, into the tile's frame (or constant) totals kept per
 * lane: the same additions, in the same order, as one row at a time. Every operation
 * of a row is the scalar one, in the same order, so a row's results are the same bits
 * whatever tile, thread or thread count computes it (and, for the forward, those of
 * the reference loop, backends/varying_loop.py).
 */
#include <pthread.h>
#include <stdlib.h>

#include "varying_tiles.h"

/* The step loops work on half tiles, four lanes (one AVX2 register) each: wider
 * generic vectors are split by the compiler, which then keeps the state in memory. */
MLF_INLINE void varying_forward_tile(const mlf_varying_problem *p, const tile_rows *tile, const int order,
                                     tile_buffers *buffers)
{
    const int padded = order + 1, span = buffers->span;
    const int is_double = (int)p->is_double;
    const int64_t length = p->length;
    coefficient_stream *a = &buffers->a, *b = &buffers->b;
    signal_block *x = &buffers->x;
    double *y_block = buffers->y_block;
    double states[(MAX_ORDER + 1) * LANES] __attribute__((aligned(64)));
    vec4 state[2][MAX_ORDER + 1];

    stream_init(p, &p->a, tile, padded, a);
    stream_init(p, &p->b, tile, padded, b);
    signal_init(p, tile, &p->waveform, x);
    read_states(p, tile, &p->zi, order, states);
    for (int h = 0; h < 2; ++h)
        for (int k = 0; k <= order; ++k)
            state[h][k] = k < order ? load4(&states[k * LANES + 4 * h]) : (vec4){0};

    for (int64_t start = 0; start < length; start += span) {
        const int count = length - start < span ? (int)(length - start) : span;
        read_signal(&p->waveform, is_double, start, count, x);
        stream_fill(p, a, start, count, padded);
        stream_fill(p, b, start, count, padded);
        for (int t = 0; t < count; ++t) {
            const double *a_step = &a->values[t * a->stride], *b_step = &b->values[t * b->stride];
            for (int h = 0; h < 2; ++h) {
                const int lane = 4 * h;
                const vec4 inverse = SPLAT4(1.0) / load4(a_step + lane);
                const vec4 input = load4(&x->block[t * LANES + lane]);
                const vec4 output = load4(b_step + lane) * inverse * input + state[h][0];
                for (int k = 0; k < order; ++k)
                    state[h][k] = state[h][k + 1] + load4(b_step + (k + 1) * LANES + lane) * inverse * input -
                                  load4(a_step + (k + 1) * LANES + lane) * inverse * output;
                store4(&y_block[t * LANES + lane], output);
            }
        }
        write_block(p->y, is_double, tile->row, tile->lanes, length, start, count, y_block);
    }
    for (int h = 0; h < 2; ++h)
        for (int k = 0; k < order; ++k)
            store4(&states[k * LANES + 4 * h], state[h][k]);
    write_states(tile, states, order, p->zf);
}

MLF_INLINE void varying_adjoint_tile(const mlf_varying_problem *p, const tile_rows *tile, const int order,
                                     tile_buffers *buffers)
{
    const int padded = order + 1, span = buffers->span;
    const int is_double = (int)p->is_double;
    const int need_gx = p->grad_waveform != NULL;
    const int64_t length = p->length;
    coefficient_stream *a = &buffers->a, *b = &buffers->b;
    signal_block *x = &buffers->x, *grad_y = &buffers->grad_y;
    double *y_block = buffers->y_block, *gx_block = buffers->gx_block;
    double states[(MAX_ORDER + 1) * LANES] __attribute__((aligned(64)));
    int64_t y_offsets[LANES];
    vec4 lam[2][MAX_ORDER + 1];

    stream_init(p, &p->a, tile, padded, a);
    stream_init(p, &p->b, tile, padded, b);
    signal_init(p, tile, &p->waveform, x);
    signal_init(p, tile, &p->grad_y, grad_y);
    for (int lane = 0; lane < LANES; ++lane)
        y_offsets[lane] = tile->row[lane] * length;
    read_states(p, tile, &p->grad_zf, order, states);
    for (int h = 0; h < 2; ++h)
        for (int k = 0; k <= order; ++k)
            lam[h][k] = k < order ? load4(&states[k * LANES + 4 * h]) : (vec4){0};

    for (int64_t start = length > 0 ? (length - 1) / span * span : -1; start >= 0; start -= span) {
        const int count = length - start < span ? (int)(length - start) : span;
        read_signal(&p->grad_y, is_double, start, count, grad_y);
        read_signal(&p->waveform, is_double, start, count, x);
        read_block(p->y, is_double, y_offsets, start, count, y_block);
        stream_fill(p, a, start, count, padded);
        stream_fill(p, b, start, count, padded);

        for (int t = count - 1; t >= 0; --t) {
            const double *a_step = &a->values[t * a->stride], *b_step = &b->values[t * b->stride];
            double *grad_a = &a->grads[t * padded * LANES], *grad_b = &b->grads[t * padded * LANES];
            for (int h = 0; h < 2; ++h) {
                const int lane = 4 * h;
                vec4 *history = lam[h];
                const vec4 inverse = SPLAT4(1.0) / load4(a_step + lane);
                const vec4 input = load4(&x->block[t * LANES + lane]);
                const vec4 output = load4(&y_block[t * LANES + lane]);
                vec4 g = load4(&grad_y->block[t * LANES + lane]);
                for (int k = 1; k <= order; ++k)
                    g -= load4(a_step + k * LANES + lane) * inverse * history[k - 1];
                if (need_gx) {
                    vec4 gx = load4(b_step + lane) * inverse * g;
                    for (int k = 1; k <= order; ++k)
                        gx += load4(b_step + k * LANES + lane) * inverse * history[k - 1];
                    store4(&gx_block[t * LANES + lane], gx);
                }
                /* Gradients of the normalised step, then of the raw one (b / a0, a / a0). */
                vec4 to_leading = g * input * load4(b_step + lane);
                store4(grad_b + lane, g * input * inverse);
                for (int k = 1; k <= order; ++k) {
                    store4(grad_b + k * LANES + lane, history[k - 1] * input * inverse);
                    store4(grad_a + k * LANES + lane, -history[k - 1] * output * inverse);
                    to_leading += history[k - 1] * (input * load4(b_step + k * LANES + lane) -
                                                    output * load4(a_step + k * LANES + lane));
                }
                store4(grad_a + lane, -to_leading * inverse * inverse);
                for (int k = order - 1; k > 0; --k)
                    history[k] = history[k - 1];
                if (order > 0)
                    history[0] = g;
            }
        }
        if (need_gx)
            write_block(p->grad_waveform, is_double, tile->row, tile->lanes, length, start, count, gx_block);
        stream_drain(a, tile, p->grad_a, start, count, padded);
        stream_drain(b, tile, p->grad_b, start, count, padded);
    }
    stream_finish(p, a, tile, p->grad_a);
    stream_finish(p, b, tile, p->grad_b);
    if (p->grad_zi) {
        for (int h = 0; h < 2; ++h)
            for (int k = 0; k < order; ++k)
                store4(&states[k * LANES + 4 * h], lam[h][k]);
        write_states(tile, states, order, p->grad_zi);
    }
}

MLF_INLINE void make_varying_tile(const mlf_varying_problem *p, int64_t index, tile_rows *tile)
{
    const int64_t first = index * LANES;
    tile->lanes = p->rows - first < LANES ? (int)(p->rows - first) : LANES;
    for (int lane = 0; lane < LANES; ++lane)
        tile->row[lane] = first + (lane < tile->lanes ? lane : 0);
}

/* Tiles [begin, end), forward or adjoint; the commonest orders (one-pole smoothers,
 * biquads) with the order a constant, so the state stays in registers. */
MLF_CLONES static void run_tiles(const mlf_varying_problem *p, int64_t begin, int64_t end, int adjoint,
                                 tile_buffers *buffers)
{
    tile_rows tile;
    for (int64_t index = begin; index < end; ++index) {
        make_varying_tile(p, index, &tile);
#define VARYING_CASE(N)                                                     \
    case N:                                                                 \
        if (adjoint)                                                        \
            varying_adjoint_tile(p, &tile, N, buffers);    \
        else                                                                \
            varying_forward_tile(p, &tile, N, buffers);    \
        break;
        switch (p->order) {
            FOR_EACH_SPECIALISED_ORDER(VARYING_CASE)
        default:
            if (adjoint)
                varying_adjoint_tile(p, &tile, (int)p->order, buffers);
            else
                varying_forward_tile(p, &tile, (int)p->order, buffers);
        }
#undef VARYING_CASE
    }
}

typedef struct {
    const mlf_varying_problem *problem;
    int64_t begin, end;
    int adjoint;
    tile_buffers *buffers;
} varying_work;

static void *run_work(void *argument)
{
    const varying_work *work = (const varying_work *)argument;
    run_tiles(work->problem, work->begin, work->end, work->adjoint, work->buffers);
    return NULL;
}

static int run(const mlf_varying_problem *p, int adjoint)
{
    if (p->order < 0 || p->order > MAX_ORDER)
        return MLF_BAD_ORDER;
    if (p->ndim < 0 || p->ndim > MAX_DIMS)
        return MLF_BAD_DIMS;
    if (p->rows == 0)
        return MLF_OK;
    const int64_t n_tiles = (p->rows + LANES - 1) / LANES;
    int64_t n_threads = p->n_threads < 1 ? 1 : p->n_threads;
    if (n_threads > n_tiles)
        n_threads = n_tiles;
    varying_work *work = calloc((size_t)n_threads, sizeof(varying_work));
    pthread_t *threads = calloc((size_t)n_threads, sizeof(pthread_t));
    tile_buffers *buffers = aligned_alloc(64, sizeof(tile_buffers) * (size_t)n_threads);
    int status = work && threads && buffers ? MLF_OK : MLF_OUT_OF_MEMORY;
    for (int64_t i = 0; buffers && i < n_threads; ++i)
        buffers[i].memory = NULL;
    for (int64_t i = 0; status == MLF_OK && i < n_threads; ++i)
        status = tile_buffers_init(&buffers[i], block_steps(p->order, p->length, p->rows), p->order);
    if (status != MLF_OK) {
        for (int64_t i = 0; buffers && i < n_threads; ++i)
            free(buffers[i].memory);
        free(work);
        free(threads);
        free(buffers);
        return status;
    }
    for (int64_t i = 0; i < n_threads; ++i) {
        work[i].problem = p;
        work[i].begin = n_tiles * i / n_threads;
        work[i].end = n_tiles * (i + 1) / n_threads;
        work[i].adjoint = adjoint;
        work[i].buffers = &buffers[i];
    }
    int64_t started = 1;
    for (int64_t i = 1; i < n_threads; ++i, ++started)
        if (pthread_create(&threads[i], NULL, run_work, &work[i]) != 0)
            break;
    run_work(&work[0]);
    for (int64_t i = 1; i < started; ++i)
        pthread_join(threads[i], NULL);
    for (int64_t i = started; i < n_threads; ++i) /* threads that could not start */
        run_work(&work[i]);
    for (int64_t i = 0; i < n_threads; ++i)
        free(buffers[i].memory);
    free(work);
    free(threads);
    free(buffers);
    return MLF_OK;
}

int mlf_varying_forward(const mlf_varying_problem *problem) { return run(problem, 0); }

int mlf_varying_adjoint(const mlf_varying_problem *problem) { return run(problem, 1); }
