/*
 * The time-varying kernels' building blocks (varying_kernels.c has the recurrences and
 * the layout of the work): the block transposes between a tile's rows and its
 * [step][lane] buffers, the signals' blocks, and each coefficient tensor's block,
 * filled by the way the coefficients move (per sample, frames, constant) and drained
 * of their gradients, and the per-thread buffers. Included by varying_kernels.c only.
 */
#ifndef MULTI_LFILTER_VARYING_TILES_H
#define MULTI_LFILTER_VARYING_TILES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lfilter_tiles.h"
#include "varying_kernels.h"

/* How one tensor's coefficients move: one row for every step, a row per sample, or
 * frames interpolated in between. */
enum { CONSTANT = 0, PER_SAMPLE = 1, FRAMES = 2 };

/* Per lane, one block of one tensor's coefficients holds about this many values (at
 * least 8 steps, one transpose, whatever the order), and a block no more steps than the
 * signal has (rounded up to 8). Long blocks pay: a tile streams some five dozen rows
 * at once (signals, coefficients, and in the adjoint their gradients), each block
 * reading or writing a run of each, and the adjoint walks the blocks backwards; the
 * hardware prefetchers follow long runs best. Measured with biquads (per-sample
 * coefficients, 512 x 16000, one core): 32 steps per block, forward 28 and adjoint
 * 114 ms; 256, 26 and 65 ms; 1024, 25 and 54 ms (software prefetching then no longer
 * helped). Their buffers, about 1 MB per thread for biquads, live on the heap. Short
 * problems (fewer samples in all than SHORT_PROBLEM) take short blocks: there the
 * buffers cost more than long runs save (one biquad over 512 samples: 39 against
 * 25 us a call with 64 steps per block). */
#define BLOCK_VALUES 3072
#define SHORT_BLOCK_VALUES 192
#define SHORT_PROBLEM (INT64_C(1) << 18)

/* Steps per block for K = order + 1 coefficients: a multiple of 8. */
static int block_steps(int64_t order, int64_t length, int64_t rows)
{
    const int64_t values = rows * length < SHORT_PROBLEM ? SHORT_BLOCK_VALUES : BLOCK_VALUES;
    int64_t steps = values / (order + 1) / 8 * 8;
    if (steps > (length + 7) / 8 * 8)
        steps = (length + 7) / 8 * 8;
    return steps < 8 ? 8 : (int)steps;
}

/* The block transposes between rows (eight steps of a lane contiguous) and the
 * [step][lane] buffers, in 8 x 8 squares: float32 ones transposed as floats (eight
 * 8-float registers) and then widened, float64 ones as four 4 x 4 squares. Spelled
 * with shuffles the compiler maps onto single instructions (unpack, shuffle, lane
 * permute): the generic 8-double transpose of lfilter_tiles.h compiles to spills on
 * AVX2, which for six coefficient streams per sample cost more than the filter. */
typedef double vec4 __attribute__((vector_size(4 * sizeof(double))));
#define SPLAT4(s) ((vec4){(s), (s), (s), (s)})
/* Unaligned views for plain vector loads and stores (GCC copied memcpy'd vectors
 * through the stack). */
typedef double vec4_unaligned __attribute__((vector_size(4 * sizeof(double)), aligned(sizeof(double))));
typedef float vecf_unaligned __attribute__((vector_size(8 * sizeof(float)), aligned(sizeof(float))));
typedef float vecf4 __attribute__((vector_size(4 * sizeof(float))));

MLF_INLINE vec4 load4(const double *from) { return *(const vec4_unaligned *)from; }

MLF_INLINE void store4(double *to, vec4 value) { *(vec4_unaligned *)to = value; }

MLF_INLINE vecf loadf(const float *from) { return *(const vecf_unaligned *)from; }

MLF_INLINE void storef(float *to, vecf value) { *(vecf_unaligned *)to = value; }

/* Eight floats widened into to[0 .. 8). */
MLF_INLINE void store_widened(double *to, vecf value)
{
    store4(to, __builtin_convertvector(SHUFFLE(value, value, 0, 1, 2, 3), vec4));
    store4(to + 4, __builtin_convertvector(SHUFFLE(value, value, 4, 5, 6, 7), vec4));
}

/* from[0 .. 8) narrowed to floats. */
MLF_INLINE vecf load_narrowed(const double *from)
{
    const vecf4 low = __builtin_convertvector(load4(from), vecf4);
    const vecf4 high = __builtin_convertvector(load4(from + 4), vecf4);
    return SHUFFLE(low, high, 0, 1, 2, 3, 4, 5, 6, 7);
}

MLF_INLINE void transpose8f(vecf *r)
{
    vecf t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = SHUFFLE(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = SHUFFLE(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = SHUFFLE(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
        u[i + 1] = SHUFFLE(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        u[i + 2] = SHUFFLE(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
        u[i + 3] = SHUFFLE(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
    }
    for (int j = 0; j < 4; ++j) {
        r[j] = SHUFFLE(u[j], u[j + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        r[j + 4] = SHUFFLE(u[j], u[j + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}

MLF_INLINE void transpose4(vec4 *r)
{
    const vec4 t0 = SHUFFLE(r[0], r[1], 0, 4, 2, 6), t1 = SHUFFLE(r[0], r[1], 1, 5, 3, 7);
    const vec4 t2 = SHUFFLE(r[2], r[3], 0, 4, 2, 6), t3 = SHUFFLE(r[2], r[3], 1, 5, 3, 7);
    r[0] = SHUFFLE(t0, t2, 0, 1, 4, 5);
    r[1] = SHUFFLE(t1, t3, 0, 1, 4, 5);
    r[2] = SHUFFLE(t0, t2, 2, 3, 6, 7);
    r[3] = SHUFFLE(t1, t3, 2, 3, 6, 7);
}

/* Steps [start, start + count) of contiguous rows at `offsets` into buffer[t][lane]. */
MLF_INLINE void rows_to_block(const void *data, const int is_double, const int64_t *offsets, int64_t start,
                              int count, double *buffer)
{
    int t = 0;
    if (is_double) {
        const double *rows = (const double *)data;
        for (; t + 8 <= count; t += 8)
            for (int first = 0; first < LANES; first += 4)
                for (int steps = 0; steps < 8; steps += 4) {
                    vec4 square[4];
                    for (int i = 0; i < 4; ++i)
                        square[i] = load4(rows + offsets[first + i] + start + t + steps);
                    transpose4(square);
                    for (int j = 0; j < 4; ++j)
                        store4(&buffer[(t + steps + j) * LANES + first], square[j]);
                }
    } else {
        const float *rows = (const float *)data;
        for (; t + 8 <= count; t += 8) {
            vecf square[8];
            for (int lane = 0; lane < LANES; ++lane)
                square[lane] = loadf(rows + offsets[lane] + start + t);
            transpose8f(square);
            for (int j = 0; j < 8; ++j)
                store_widened(&buffer[(t + j) * LANES], square[j]);
        }
    }
    for (int lane = 0; lane < LANES; ++lane)
        for (int u = t; u < count; ++u)
            buffer[u * LANES + lane] = load(data, is_double, offsets[lane] + start + u);
}

/* The inverse, into the first `lanes` rows `rows[lane] * length` of a contiguous output. */
MLF_INLINE void block_to_rows(void *data, const int is_double, const int64_t *rows, int lanes, int64_t length,
                              int64_t start, int count, const double *buffer)
{
    int t = 0;
    if (lanes == LANES && is_double) {
        double *out = (double *)data;
        for (; t + 8 <= count; t += 8)
            for (int first = 0; first < LANES; first += 4)
                for (int steps = 0; steps < 8; steps += 4) {
                    vec4 square[4];
                    for (int j = 0; j < 4; ++j)
                        square[j] = load4(&buffer[(t + steps + j) * LANES + first]);
                    transpose4(square);
                    for (int i = 0; i < 4; ++i)
                        store4(out + rows[first + i] * length + start + t + steps, square[i]);
                }
    } else if (lanes == LANES) {
        float *out = (float *)data;
        for (; t + 8 <= count; t += 8) {
            vecf square[8];
            for (int j = 0; j < 8; ++j)
                square[j] = load_narrowed(&buffer[(t + j) * LANES]);
            transpose8f(square);
            for (int lane = 0; lane < LANES; ++lane)
                storef(out + rows[lane] * length + start + t, square[lane]);
        }
    }
    for (int lane = 0; lane < lanes; ++lane)
        for (int u = t; u < count; ++u)
            store(data, is_double, rows[lane] * length + start + u, buffer[u * LANES + lane]);
}

/* Compiled once per instruction set and called once per block: inlined into every
 * instantiation of the tile kernels they would multiply the build time for nothing. */
#define BLOCK_HELPER MLF_CLONES static __attribute__((noinline))

BLOCK_HELPER void read_block(const void *data, int is_double, const int64_t *offsets, int64_t start, int count,
                             double *buffer)
{
    rows_to_block(data, is_double, offsets, start, count, buffer);
}

BLOCK_HELPER void write_block(void *data, int is_double, const int64_t *rows, int lanes, int64_t length,
                              int64_t start, int count, const double *buffer)
{
    block_to_rows(data, is_double, rows, lanes, length, start, count, buffer);
}

/* One signal of a tile over one block, [step][lane]. */
typedef struct {
    int64_t offsets[LANES];
    int shared; /* every lane reads the same row (the bank case): read once, repeated */
    double *block; /* span steps */
} signal_block;

/* Steps [start, start + count) of a signal's rows; zeros where the signal is absent. */
BLOCK_HELPER void read_signal(const mlf_view *view, int is_double, int64_t start, int count, signal_block *signal)
{
    if (!view->data) {
        memset(signal->block, 0, sizeof(double) * (size_t)(count * LANES));
    } else if (signal->shared) {
        for (int t = 0; t < count; ++t) {
            const double value = load(view->data, is_double, signal->offsets[0] + (start + t) * view->step);
            for (int lane = 0; lane < LANES; ++lane)
                signal->block[t * LANES + lane] = value;
        }
    } else if (view->step == 1) {
        rows_to_block(view->data, is_double, signal->offsets, start, count, signal->block);
    } else {
        for (int lane = 0; lane < LANES; ++lane)
            for (int t = 0; t < count; ++t)
                signal->block[t * LANES + lane] =
                    load(view->data, is_double, signal->offsets[lane] + (start + t) * view->step);
    }
}

static int64_t offset_of(const mlf_varying_problem *p, const int64_t *strides, int64_t row)
{
    int64_t offset = 0;
    for (int64_t d = p->ndim - 1; d >= 0; --d) {
        offset += (row % p->sizes[d]) * strides[d];
        row /= p->sizes[d];
    }
    return offset;
}

MLF_INLINE void signal_init(const mlf_varying_problem *p, const tile_rows *tile, const mlf_view *view,
                            signal_block *signal)
{
    signal->shared = 1;
    if (!view->data)
        return;
    for (int lane = 0; lane < LANES; ++lane) {
        signal->offsets[lane] = offset_of(p, view->strides, tile->row[lane]);
        signal->shared &= signal->offsets[lane] == signal->offsets[0];
    }
}

/* One tensor's coefficients as a tile reads them. */
typedef struct {
    const mlf_varying_coefficients *c;
    int mode;
    int contiguous; /* rows of (T, K) values with K contiguous ones per step, K = order + 1 */
    int64_t offsets[LANES];
    /* The block: [step][order + 1][lane] raw coefficients, zero past the width
     * (CONSTANT: one step, read at every step: stride 0). */
    double *values;
    int64_t stride;
    /* FRAMES: frames `frame` and `frame + 1`, [k][lane]; per step of the block, its
     * frame and its weight (0: the frame alone). */
    int64_t frame;
    double now[(MAX_ORDER + 1) * LANES] __attribute__((aligned(64)));
    double next[(MAX_ORDER + 1) * LANES] __attribute__((aligned(64)));
    int64_t *frames;
    double *weights;
    /* Adjoint: the block's gradients, [step][order + 1][lane]; CONSTANT: the total in
     * `lower`; FRAMES: the running totals of frames `total_frame` (lower) and
     * `total_frame + 1` (upper). */
    double *grads;
    double lower[(MAX_ORDER + 1) * LANES] __attribute__((aligned(64)));
    double upper[(MAX_ORDER + 1) * LANES] __attribute__((aligned(64)));
    int64_t total_frame;
} coefficient_stream;

/* Time step `step` of every lane's row into out[k * LANES + lane], zero-padded. */
MLF_INLINE void read_step(const coefficient_stream *s, int64_t step, const int padded, double *out)
{
    const mlf_varying_coefficients *c = s->c;
    const int is_double = (int)c->is_double;
    for (int k = 0; k < padded; ++k)
        for (int lane = 0; lane < LANES; ++lane)
            out[k * LANES + lane] =
                k < c->width ? load(c->view.data, is_double, s->offsets[lane] + step * c->time_step + k * c->view.step)
                             : 0.0;
}

MLF_INLINE void stream_init(const mlf_varying_problem *p, const mlf_varying_coefficients *c, const tile_rows *tile,
                            const int padded, coefficient_stream *s)
{
    s->c = c;
    s->mode = c->steps == 1 ? CONSTANT : p->hop > 0 ? FRAMES : PER_SAMPLE;
    s->contiguous = c->time_step == c->width && c->view.step == 1 && c->width == padded;
    for (int lane = 0; lane < LANES; ++lane)
        s->offsets[lane] = offset_of(p, c->view.strides, tile->row[lane]);
    s->stride = s->mode == CONSTANT ? 0 : padded * LANES;
    s->frame = -2;
    s->total_frame = p->hop > 0 && p->length > 0 ? (p->length - 1) / p->hop : 0;
    memset(s->lower, 0, sizeof(double) * (size_t)(padded * LANES));
    memset(s->upper, 0, sizeof(double) * (size_t)(padded * LANES));
    if (s->mode == CONSTANT)
        read_step(s, 0, padded, s->values);
}

/* The general layouts (any strides, a shorter tensor zero-padded), value by value. */
static __attribute__((noinline)) void read_strided(coefficient_stream *s, int64_t start, int count, int padded)
{
    const mlf_varying_coefficients *c = s->c;
    const int is_double = (int)c->is_double;
    for (int lane = 0; lane < LANES; ++lane)
        for (int t = 0; t < count; ++t)
            for (int k = 0; k < padded; ++k)
                s->values[(t * padded + k) * LANES + lane] =
                    k < c->width ? load(c->view.data, is_double,
                                        s->offsets[lane] + (start + t) * c->time_step + k * c->view.step)
                                 : 0.0;
}

static __attribute__((noinline)) void write_strided(const coefficient_stream *s, const tile_rows *tile, void *grad,
                                                    int64_t start, int count, int padded)
{
    const mlf_varying_coefficients *c = s->c;
    const int is_double = (int)c->is_double;
    for (int lane = 0; lane < tile->lanes; ++lane)
        for (int t = 0; t < count; ++t)
            for (int64_t k = 0; k < c->width; ++k)
                store(grad, is_double, (tile->row[lane] * c->steps + start + t) * c->width + k,
                      s->grads[(t * padded + k) * LANES + lane]);
}

/* Frames `frame` and `frame + 1` (where it exists) into now and next; the walks move
 * one frame at a time, so one of them is usually at hand already. */
MLF_INLINE void load_frames(coefficient_stream *s, int64_t frame, const int padded)
{
    if (frame == s->frame)
        return;
    const size_t bytes = sizeof(double) * (size_t)(padded * LANES);
    if (frame == s->frame - 1) {
        memcpy(s->next, s->now, bytes);
        read_step(s, frame, padded, s->now);
    } else {
        if (frame == s->frame + 1)
            memcpy(s->now, s->next, bytes);
        else
            read_step(s, frame, padded, s->now);
        if (frame + 1 < s->c->steps)
            read_step(s, frame + 1, padded, s->next);
    }
    s->frame = frame;
}

MLF_INLINE void fill_frames(const mlf_varying_problem *p, coefficient_stream *s, int64_t start, int count,
                            const int padded)
{
    const int64_t hop = p->hop;
    vec4 now[2][MAX_ORDER + 1], next[2][MAX_ORDER + 1];
    int t = 0;
    while (t < count) {
        const int64_t frame = (start + t) / hop;
        int64_t offset = start + t - frame * hop;
        load_frames(s, frame, padded);
        const int hold = frame + 1 >= s->c->steps;
        const int end = hop - offset < count - t ? t + (int)(hop - offset) : count;
        for (int h = 0; h < 2; ++h)
            for (int k = 0; k < padded; ++k) {
                now[h][k] = load4(&s->now[k * LANES + 4 * h]);
                next[h][k] = load4(&s->next[k * LANES + 4 * h]);
            }
        for (; t < end; ++t, ++offset) {
            double *out = &s->values[t * padded * LANES];
            s->frames[t] = frame;
            if (offset == 0 || hold) {
                s->weights[t] = 0.0;
                for (int h = 0; h < 2; ++h)
                    for (int k = 0; k < padded; ++k)
                        store4(out + k * LANES + 4 * h, now[h][k]);
            } else {
                const double weight = (double)offset / (double)hop;
                const vec4 keep = SPLAT4(1.0 - weight), take = SPLAT4(weight);
                s->weights[t] = weight;
                for (int h = 0; h < 2; ++h)
                    for (int k = 0; k < padded; ++k)
                        store4(out + k * LANES + 4 * h, now[h][k] * keep + next[h][k] * take);
            }
        }
    }
}

/* The raw coefficients of steps [start, start + count) into the block. */
MLF_INLINE void stream_fill(const mlf_varying_problem *p, coefficient_stream *s, int64_t start, int count,
                            const int padded)
{
    if (s->mode == PER_SAMPLE && s->contiguous)
        /* Each lane's block is one strip of count * K values: transposed whole, it is
         * the [step][k][lane] buffer. */
        read_block(s->c->view.data, (int)s->c->is_double, s->offsets, start * padded, count * padded, s->values);
    else if (s->mode == PER_SAMPLE)
        read_strided(s, start, count, padded);
    else if (s->mode == FRAMES)
        fill_frames(p, s, start, count, padded);
}

/* Lanes of a [k][lane] buffer into rows' (steps, width) float64 gradients at `step`. */
MLF_INLINE void write_totals(const coefficient_stream *s, const tile_rows *tile, double *grad, int64_t step,
                             const double *values)
{
    const int64_t width = s->c->width, steps = s->c->steps;
    for (int lane = 0; lane < tile->lanes; ++lane)
        for (int64_t k = 0; k < width; ++k)
            grad[(tile->row[lane] * steps + step) * width + k] = values[k * LANES + lane];
}

/* The block's gradients (steps [start, start + count), walked backwards) out of the
 * buffer: per sample into the rows, else added to the running totals, in the order
 * a row at a time would add them. */
MLF_INLINE void stream_drain(coefficient_stream *s, const tile_rows *tile, void *grad, int64_t start, int count,
                             const int padded)
{
    const mlf_varying_coefficients *c = s->c;
    if (s->mode == PER_SAMPLE) {
        if (c->width == padded)
            write_block(grad, (int)c->is_double, tile->row, tile->lanes, c->steps * padded, start * padded,
                        count * padded, s->grads);
        else
            write_strided(s, tile, grad, start, count, padded);
        return;
    }
    vec4 lower[2][MAX_ORDER + 1], upper[2][MAX_ORDER + 1];
    for (int h = 0; h < 2; ++h)
        for (int k = 0; k < padded; ++k) {
            lower[h][k] = load4(&s->lower[k * LANES + 4 * h]);
            upper[h][k] = load4(&s->upper[k * LANES + 4 * h]);
        }
    for (int t = count - 1; t >= 0; --t) {
        const double *values = &s->grads[t * padded * LANES];
        if (s->mode == FRAMES && s->frames[t] != s->total_frame) {
            /* A frame behind: frame total_frame + 1 has all its terms. */
            if (s->total_frame + 1 < c->steps) {
                double totals[(MAX_ORDER + 1) * LANES] __attribute__((aligned(64)));
                for (int h = 0; h < 2; ++h)
                    for (int k = 0; k < padded; ++k)
                        store4(&totals[k * LANES + 4 * h], upper[h][k]);
                write_totals(s, tile, (double *)grad, s->total_frame + 1, totals);
            }
            for (int h = 0; h < 2; ++h)
                for (int k = 0; k < padded; ++k) {
                    upper[h][k] = lower[h][k];
                    lower[h][k] = (vec4){0};
                }
            s->total_frame = s->frames[t];
        }
        const double weight = s->mode == FRAMES ? s->weights[t] : 0.0;
        if (weight == 0.0) {
            for (int h = 0; h < 2; ++h)
                for (int k = 0; k < padded; ++k)
                    lower[h][k] += load4(values + k * LANES + 4 * h);
        } else {
            const vec4 keep = SPLAT4(1.0 - weight), take = SPLAT4(weight);
            for (int h = 0; h < 2; ++h)
                for (int k = 0; k < padded; ++k) {
                    const vec4 value = load4(values + k * LANES + 4 * h);
                    lower[h][k] += value * keep;
                    upper[h][k] += value * take;
                }
        }
    }
    for (int h = 0; h < 2; ++h)
        for (int k = 0; k < padded; ++k) {
            store4(&s->lower[k * LANES + 4 * h], lower[h][k]);
            store4(&s->upper[k * LANES + 4 * h], upper[h][k]);
        }
}

/* After the walk: the totals not written yet. */
MLF_INLINE void stream_finish(const mlf_varying_problem *p, coefficient_stream *s, const tile_rows *tile, void *grad)
{
    if (s->mode == PER_SAMPLE || p->length == 0)
        return;
    if (s->mode == FRAMES && s->total_frame + 1 < s->c->steps)
        write_totals(s, tile, (double *)grad, s->total_frame + 1, s->upper);
    write_totals(s, tile, (double *)grad, s->mode == FRAMES ? s->total_frame : 0, s->lower);
}

/* A (rows, N) float64 state, [k][lane]; an absent one reads as zeros. */
MLF_INLINE void read_states(const mlf_varying_problem *p, const tile_rows *tile, const mlf_view *view,
                            const int order, double *out)
{
    for (int k = 0; k < order; ++k)
        for (int lane = 0; lane < LANES; ++lane)
            out[k * LANES + lane] =
                view->data ? ((const double *)view->data)[offset_of(p, view->strides, tile->row[lane]) + k * view->step]
                           : 0.0;
}

MLF_INLINE void write_states(const tile_rows *tile, const double *values, const int order, double *out)
{
    for (int lane = 0; lane < tile->lanes; ++lane)
        for (int k = 0; k < order; ++k)
            out[tile->row[lane] * order + k] = values[k * LANES + lane];
}

/* Per thread, the tiles' block buffers, `span` steps each. */
typedef struct {
    int span;
    coefficient_stream a, b;
    signal_block x, grad_y;
    double *y_block, *gx_block;
    void *memory; /* where the blocks live */
} tile_buffers;

/* One thread's buffers for blocks of `span` steps of K = order + 1 coefficients. */
static int tile_buffers_init(tile_buffers *buffers, int span, int64_t order)
{
    const size_t values = (size_t)span * (size_t)(order + 1) * LANES, steps = (size_t)span * LANES;
    const size_t doubles = 4 * values + 4 * steps + 2 * (size_t)span;
    const size_t bytes = sizeof(double) * doubles + sizeof(int64_t) * 2 * (size_t)span;
    double *memory = aligned_alloc(64, (bytes + 63) / 64 * 64);
    buffers->memory = memory;
    if (!memory)
        return MLF_OUT_OF_MEMORY;
    buffers->span = span;
    buffers->a.values = memory;
    buffers->a.grads = memory + values;
    buffers->b.values = memory + 2 * values;
    buffers->b.grads = memory + 3 * values;
    buffers->x.block = memory + 4 * values;
    buffers->grad_y.block = memory + 4 * values + steps;
    buffers->y_block = memory + 4 * values + 2 * steps;
    buffers->gx_block = memory + 4 * values + 3 * steps;
    buffers->a.weights = memory + 4 * values + 4 * steps;
    buffers->b.weights = memory + 4 * values + 4 * steps + span;
    buffers->a.frames = (int64_t *)(memory + doubles);
    buffers->b.frames = (int64_t *)(memory + doubles) + span;
    return MLF_OK;
}

#endif
