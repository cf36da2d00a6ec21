/*
 * The tile kernels' building blocks, shared by the translation units that instantiate
 * them: lfilter_forward.c (the forward filter and cascade), lfilter_adjoint.c and
 * lfilter_cascade_adjoint.c (their adjoints) and lfilter_kernels.c (the entry points,
 * threads and checks). The layout of the work and the recurrences are described in
 * lfilter_kernels.c. Separate files so the parts, each compiled for three instruction
 * sets, build in parallel.
 */
#ifndef MULTI_LFILTER_TILES_H
#define MULTI_LFILTER_TILES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lfilter_kernels.h"

/* Runtime choice of instruction set: the kernels are compiled for AVX-512, AVX2+FMA and
 * baseline x86-64, and the loader picks the best the CPU has. The build flags stay
 * portable (no -march=native). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MLF_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MLF_CLONES
#endif
#define MLF_INLINE static inline __attribute__((always_inline))

#define LANES 8
#define BLOCK 64

typedef double vec __attribute__((vector_size(LANES * sizeof(double))));

/* A vector with every lane equal to `s`. Spelled out lane by lane because GCC lowers
 * `(vec){0} + s` for vectors wider than a register into sixteen scalar stores and a
 * reload (a store-forwarding stall in the innermost loop), but this into a broadcast. */
#define SPLAT(s) ((vec){(s), (s), (s), (s), (s), (s), (s), (s)})
_Static_assert(LANES == 8, "SPLAT spells out LANES lanes");

/* Tile buffers are plain double arrays, [time][lane]: writing one lane of a vector that
 * lives in memory makes GCC reload and store the whole vector (a store-forwarding stall
 * per element), while plain scalar stores followed by one vector load are cheap. */
MLF_INLINE vec load_vec(const double *from)
{
    vec value;
    __builtin_memcpy(&value, from, sizeof value);
    return value;
}

MLF_INLINE void store_vec(double *to, vec value) { __builtin_memcpy(to, &value, sizeof value); }

MLF_INLINE int64_t row_offset(const mlf_problem *p, const int64_t *strides, int64_t row)
{
    int64_t offset = 0;
    for (int64_t d = p->ndim - 1; d >= 0; --d) {
        offset += (row % p->sizes[d]) * strides[d];
        row /= p->sizes[d];
    }
    return offset;
}

MLF_INLINE double load(const void *data, int is_double, int64_t index)
{
    return is_double ? ((const double *)data)[index] : (double)((const float *)data)[index];
}

MLF_INLINE void store(void *data, int is_double, int64_t index, double value)
{
    if (is_double)
        ((double *)data)[index] = value;
    else
        ((float *)data)[index] = (float)value;
}

/* The rows of one tile; lanes past the end of the batch repeat the tile's first row
 * (their results are computed and dropped, which keeps the vector code branch-free). */
typedef struct {
    int64_t row[LANES];
    int lanes;
} tile_rows;

/* 8 x 8 transpose with portable shuffles (24 of them): rows[i][j] -> rows[j][i]. */
typedef float vecf __attribute__((vector_size(LANES * sizeof(float))));
#define SHUFFLE(u, v, ...) __builtin_shufflevector(u, v, __VA_ARGS__)

MLF_INLINE void transpose8(vec *rows)
{
    vec a[8], b[8];
    for (int i = 0; i < 8; i += 2) {
        a[i] = SHUFFLE(rows[i], rows[i + 1], 0, 8, 2, 10, 4, 12, 6, 14);
        a[i + 1] = SHUFFLE(rows[i], rows[i + 1], 1, 9, 3, 11, 5, 13, 7, 15);
    }
    for (int i = 0; i < 8; i += 4) {
        for (int j = 0; j < 2; ++j) {
            b[i + j] = SHUFFLE(a[i + j], a[i + j + 2], 0, 1, 8, 9, 4, 5, 12, 13);
            b[i + j + 2] = SHUFFLE(a[i + j], a[i + j + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        }
    }
    for (int j = 0; j < 4; ++j) {
        rows[j] = SHUFFLE(b[j], b[j + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        rows[j + 4] = SHUFFLE(b[j], b[j + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}

/* Eight consecutive samples of a contiguous row, widened to float64. */
MLF_INLINE vec load8(const void *data, const int is_double, int64_t index)
{
    if (is_double)
        return load_vec((const double *)data + index);
    vecf narrow;
    __builtin_memcpy(&narrow, (const float *)data + index, sizeof narrow);
    return __builtin_convertvector(narrow, vec);
}

MLF_INLINE void store8(void *data, const int is_double, int64_t index, vec value)
{
    if (is_double) {
        store_vec((double *)data + index, value);
        return;
    }
    const vecf narrow = __builtin_convertvector(value, vecf);
    __builtin_memcpy((float *)data + index, &narrow, sizeof narrow);
}

/* Gathers one coefficient (or state) per lane into a vector: element k of each lane's
 * row of `view` (float64). Absent views read as zeros. */
MLF_INLINE vec gather_section(const mlf_problem *p, const tile_rows *tile, const mlf_view *view,
                              int section, int k)
{
    double lanes[LANES] __attribute__((aligned(64)));
    for (int lane = 0; lane < LANES; ++lane) {
        lanes[lane] = 0.0;
        if (view->data) {
            const int64_t offset = row_offset(p, view->strides, tile->row[lane]);
            lanes[lane] = ((const double *)view->data)[offset + section * view->section_step + k * view->step];
        }
    }
    return load_vec(lanes);
}

MLF_INLINE vec gather_lanes(const mlf_problem *p, const tile_rows *tile, const mlf_view *view,
                            int k)
{
    return gather_section(p, tile, view, 0, k);
}

/* Per-lane signal offsets; returns 1 where every lane reads the same row. */
MLF_INLINE int tile_offsets(const mlf_problem *p, const tile_rows *tile, const mlf_view *view,
                            int64_t *offsets)
{
    int shared = 1;
    for (int lane = 0; lane < LANES; ++lane) {
        offsets[lane] = row_offset(p, view->strides, tile->row[lane]);
        shared &= offsets[lane] == offsets[0];
    }
    return shared;
}

/* Transpose `count` steps from `start` of each lane's row into buffer[t * LANES + lane]:
 * eight steps at a time through registers where the rows are contiguous in time. */
MLF_INLINE void gather_block(const void *data, const int is_double, const int64_t *offsets,
                             int64_t step, int64_t start, int count, double *buffer)
{
    int t = 0;
    if (step == 1) {
        for (; t + 8 <= count; t += 8) {
            vec rows[8];
            for (int lane = 0; lane < LANES; ++lane)
                rows[lane] = load8(data, is_double, offsets[lane] + start + t);
            transpose8(rows);
            for (int j = 0; j < 8; ++j)
                store_vec(&buffer[(t + j) * LANES], rows[j]);
        }
    }
    for (int lane = 0; lane < LANES; ++lane)
        for (int u = t; u < count; ++u)
            buffer[u * LANES + lane] = load(data, is_double, offsets[lane] + (start + u) * step);
}

/* The inverse: buffer[t * LANES + lane] into `count` steps of the first `lanes` rows
 * of a contiguous (rows, T) output. */
MLF_INLINE void scatter_block(void *data, const int is_double, const int64_t *rows_index,
                              int lanes, int64_t length, int64_t start, int count,
                              const double *buffer)
{
    int t = 0;
    if (lanes == LANES) {
        for (; t + 8 <= count; t += 8) {
            vec columns[8];
            for (int j = 0; j < 8; ++j)
                columns[j] = load_vec(&buffer[(t + j) * LANES]);
            transpose8(columns);
            for (int j = 0; j < 8; ++j)
                store8(data, is_double, rows_index[j] * length + start + t, columns[j]);
        }
    }
    for (int lane = 0; lane < lanes; ++lane)
        for (int u = t; u < count; ++u)
            store(data, is_double, rows_index[lane] * length + start + u, buffer[u * LANES + lane]);
}

/* The adjoint walks time backwards through many rows at once, a pattern the hardware
 * prefetchers follow poorly (the loads of g and y dominated: benchmarks/results-2026-12-03.md, D7);
 * asking for the next block of every lane ahead of time fixes that. */
MLF_INLINE void prefetch_block(const void *data, const int is_double, const int64_t *offsets,
                               int64_t step, int64_t start, int count)
{
    if (step != 1 || start < 0)
        return;
    const int64_t element = is_double ? 8 : 4;
    for (int lane = 0; lane < LANES; ++lane) {
        const char *first = (const char *)data + (offsets[lane] + start) * element;
        for (int64_t byte = 0; byte < count * element; byte += 64)
            __builtin_prefetch(first + byte);
    }
}

MLF_INLINE void gather_shared_block(const void *data, const int is_double, int64_t offset,
                                    int64_t step, int64_t start, int count, double *buffer)
{
    for (int t = 0; t < count; ++t)
        buffer[t] = load(data, is_double, offset + (start + t) * step);
}

/* The signal of one tile over one block: either one row every lane shares (the bank
 * case: one input through many filters, read once) or a transposed [time][lane] block. */
typedef struct {
    int64_t offsets[LANES];
    int shared;
    double block[BLOCK * LANES] __attribute__((aligned(64)));
} tile_signal;

MLF_INLINE void tile_signal_init(const mlf_problem *p, const tile_rows *tile,
                                 const mlf_view *view, tile_signal *signal)
{
    signal->shared = view->data ? tile_offsets(p, tile, view, signal->offsets) : 1;
}

MLF_INLINE void tile_signal_read(const mlf_view *view, const int is_double, int64_t start,
                                 int count, tile_signal *signal)
{
    if (!view->data)
        memset(signal->block, 0, sizeof(double) * (size_t)count);
    else if (signal->shared)
        gather_shared_block(view->data, is_double, signal->offsets[0], view->step, start, count,
                            signal->block);
    else
        gather_block(view->data, is_double, signal->offsets, view->step, start, count,
                     signal->block);
}

MLF_INLINE vec tile_signal_at(const tile_signal *signal, int t)
{
    return signal->shared ? SPLAT(signal->block[t]) : load_vec(&signal->block[t * LANES]);
}

/* The forward pass over TILES_AT_ONCE tiles together. Each tile's recurrence is one
 * dependency chain (about ten cycles a step); stepping two independent tiles in the
 * same loop lets the core overlap them (benchmarks/results-2026-12-03.md, D8). */
#define TILES_AT_ONCE 2

MLF_INLINE void
forward_tiles_together(const mlf_problem *p, const tile_rows *tiles, const int order,
                       const int is_double)
{
    vec a[TILES_AT_ONCE][MAX_ORDER + 1], b[TILES_AT_ONCE][MAX_ORDER + 1];
    vec state[TILES_AT_ONCE][MAX_ORDER + 1];
    tile_signal x[TILES_AT_ONCE];
    double y_block[TILES_AT_ONCE][BLOCK * LANES] __attribute__((aligned(64)));
    const int64_t length = p->length;

    for (int u = 0; u < TILES_AT_ONCE; ++u) {
        for (int k = 0; k <= order; ++k) {
            a[u][k] = gather_lanes(p, &tiles[u], &p->a, k);
            b[u][k] = gather_lanes(p, &tiles[u], &p->b, k);
            state[u][k] = k < order ? gather_lanes(p, &tiles[u], &p->zi, k) : (vec){0};
        }
        tile_signal_init(p, &tiles[u], &p->waveform, &x[u]);
    }

    for (int64_t start = 0; start < length; start += BLOCK) {
        const int count = length - start < BLOCK ? (int)(length - start) : BLOCK;
        for (int u = 0; u < TILES_AT_ONCE; ++u)
            tile_signal_read(&p->waveform, is_double, start, count, &x[u]);
        for (int t = 0; t < count; ++t) {
            for (int u = 0; u < TILES_AT_ONCE; ++u) {
                const vec input = tile_signal_at(&x[u], t);
                vec y;
                if (order == 0) {
                    y = b[u][0] * input;
                } else {
                    y = b[u][0] * input + state[u][0];
                    for (int k = 0; k < order - 1; ++k)
                        state[u][k] = state[u][k + 1] + b[u][k + 1] * input - a[u][k + 1] * y;
                    state[u][order - 1] = b[u][order] * input - a[u][order] * y;
                }
                store_vec(&y_block[u][t * LANES], y);
            }
        }
        for (int u = 0; u < TILES_AT_ONCE; ++u)
            scatter_block(p->y, is_double, tiles[u].row, tiles[u].lanes, length, start, count,
                          y_block[u]);
    }
    double final_state[(MAX_ORDER + 1) * LANES] __attribute__((aligned(64)));
    for (int u = 0; u < TILES_AT_ONCE; ++u) {
        for (int k = 0; k < order; ++k)
            store_vec(&final_state[k * LANES], state[u][k]);
        for (int lane = 0; lane < tiles[u].lanes; ++lane)
            for (int k = 0; k < order; ++k)
                store(p->zf, is_double, tiles[u].row[lane] * order + k, final_state[k * LANES + lane]);
    }
}

/* Adds one lane's block of waveform gradient into its waveform row. A waveform row is
 * only ever written by the thread that owns every tile adding into it (see run), and
 * those tiles add in ascending order: the result does not depend on the thread count. */
MLF_INLINE void add_waveform_gradient(const mlf_problem *p, int64_t offset, int64_t start, int count,
                                      const double *block, int lane, const int is_double)
{
    void *out = (void *)p->grad_waveform.data;
    const int64_t step = p->grad_waveform.step;
    for (int t = 0; t < count; ++t) {
        const int64_t index = offset + (start + t) * step;
        store(out, is_double, index, load(out, is_double, index) + block[t * LANES + lane]);
    }
}

/* Adds a tile's block of waveform gradient ([t][lane]) into the waveform rows; where every
 * lane adds into the same row, the lanes are summed first (in place, into lane 0). */
MLF_INLINE void add_tile_waveform_gradient(const mlf_problem *p, const tile_rows *tile,
                                           const int64_t *gx_offsets, int gx_shared, int64_t start,
                                           int count, double *gx_block, const int is_double)
{
    if (gx_shared) {
        for (int t = 0; t < count; ++t) {
            double total = 0.0;
            for (int lane = 0; lane < tile->lanes; ++lane)
                total += gx_block[t * LANES + lane];
            gx_block[t * LANES] = total;
        }
        add_waveform_gradient(p, gx_offsets[0], start, count, gx_block, 0, is_double);
    } else {
        for (int lane = 0; lane < tile->lanes; ++lane)
            add_waveform_gradient(p, gx_offsets[lane], start, count, gx_block, lane, is_double);
    }
}

MLF_INLINE void
adjoint_tile(const mlf_problem *p, const tile_rows *tile, const int order, const int is_double)
{
    vec a[MAX_ORDER + 1], b[MAX_ORDER + 1], history[MAX_ORDER + 1];
    vec grad_a[MAX_ORDER + 1], grad_b[MAX_ORDER + 1];
    tile_signal g, x;
    double y_block[BLOCK * LANES] __attribute__((aligned(64)));
    double gx_block[BLOCK * LANES] __attribute__((aligned(64)));
    int64_t y_offsets[LANES], gx_offsets[LANES];
    const int64_t length = p->length;
    const int need_gx = p->grad_waveform.data != NULL;

    /* Every slot zeroed, not only those the order uses: GCC cannot tell that the
     * walk reads only those, and warned that history[1] may be uninitialised. */
    for (int k = 0; k <= MAX_ORDER; ++k)
        history[k] = (vec){0};
    for (int k = 0; k <= order; ++k) {
        a[k] = gather_lanes(p, tile, &p->a, k);
        b[k] = gather_lanes(p, tile, &p->b, k);
        grad_a[k] = (vec){0};
        grad_b[k] = (vec){0};
        if (k < order)
            history[k + 1] = gather_lanes(p, tile, &p->grad_zf, k);
    }
    tile_signal_init(p, tile, &p->grad_y, &g);
    tile_signal_init(p, tile, &p->waveform, &x);
    const int gx_shared = need_gx && tile_offsets(p, tile, &p->grad_waveform, gx_offsets);
    for (int lane = 0; lane < LANES; ++lane)
        y_offsets[lane] = tile->row[lane] * length;

    for (int64_t start = ((length - 1) / BLOCK) * BLOCK; start >= 0 && length > 0; start -= BLOCK) {
        const int count = length - start < BLOCK ? (int)(length - start) : BLOCK;
        tile_signal_read(&p->grad_y, is_double, start, count, &g);
        tile_signal_read(&p->waveform, is_double, start, count, &x);
        gather_block(p->y, is_double, y_offsets, 1, start, count, y_block);
        prefetch_block(p->y, is_double, y_offsets, 1, start - BLOCK, BLOCK);
        if (p->grad_y.data && !g.shared)
            prefetch_block(p->grad_y.data, is_double, g.offsets, p->grad_y.step, start - BLOCK, BLOCK);
        if (!x.shared)
            prefetch_block(p->waveform.data, is_double, x.offsets, p->waveform.step, start - BLOCK, BLOCK);

        for (int t = count - 1; t >= 0; --t) {
            vec grad_v = tile_signal_at(&g, t);
            /* Oldest history first: only the last operation waits for the newest gv. */
            for (int k = order; k >= 1; --k)
                grad_v -= a[k] * history[k];
            const vec input = tile_signal_at(&x, t);
            const vec y = load_vec(&y_block[t * LANES]);
            if (need_gx) {
                vec gx = b[0] * grad_v;
                for (int k = 1; k <= order; ++k)
                    gx += b[k] * history[k];
                store_vec(&gx_block[t * LANES], gx);
            }
            grad_b[0] += grad_v * input;
            for (int k = 1; k <= order; ++k) {
                grad_a[k] -= history[k] * y;
                grad_b[k] += history[k] * input;
            }
            for (int k = order; k >= 2; --k)
                history[k] = history[k - 1];
            history[1] = grad_v;
        }

        if (need_gx)
            add_tile_waveform_gradient(p, tile, gx_offsets, gx_shared, start, count, gx_block, is_double);
    }

    /* After the walk history[k + 1] = gv[k], the gradient of zi[k]; for an empty or short
     * signal it still holds the final state's gradient where no sample came after. */
    double sums[3 * (MAX_ORDER + 1) * LANES] __attribute__((aligned(64)));
    double *sums_a = sums, *sums_b = sums + (MAX_ORDER + 1) * LANES,
           *sums_zi = sums + 2 * (MAX_ORDER + 1) * LANES;
    for (int k = 0; k <= order; ++k) {
        store_vec(&sums_a[k * LANES], grad_a[k]);
        store_vec(&sums_b[k * LANES], grad_b[k]);
        if (k < order)
            store_vec(&sums_zi[k * LANES], history[k + 1]);
    }
    for (int lane = 0; lane < tile->lanes; ++lane) {
        const int64_t row = tile->row[lane];
        for (int k = 0; k <= order; ++k) {
            p->grad_a[row * (order + 1) + k] = sums_a[k * LANES + lane];
            p->grad_b[row * (order + 1) + k] = sums_b[k * LANES + lane];
        }
        if (p->grad_zi)
            for (int k = 0; k < order; ++k)
                p->grad_zi[row * order + k] = sums_zi[k * LANES + lane];
    }
}


/* ---- Cascades of second-order sections ------------------------------------------ */

/* One tile's sections: coefficients and states, indexed [section]. */
typedef struct {
    vec b0[MAX_SECTIONS], b1[MAX_SECTIONS], b2[MAX_SECTIONS], a1[MAX_SECTIONS], a2[MAX_SECTIONS];
} cascade_coefficients;

MLF_INLINE void load_cascade(const mlf_problem *p, const tile_rows *tile, const int sections,
                             cascade_coefficients *c)
{
    for (int s = 0; s < sections; ++s) {
        c->b0[s] = gather_section(p, tile, &p->b, s, 0);
        c->b1[s] = gather_section(p, tile, &p->b, s, 1);
        c->b2[s] = gather_section(p, tile, &p->b, s, 2);
        c->a1[s] = gather_section(p, tile, &p->a, s, 1);
        c->a2[s] = gather_section(p, tile, &p->a, s, 2);
    }
}

/* One sample through every section (transposed direct form II each); returns the
 * cascade's output. */
MLF_INLINE vec cascade_step(const cascade_coefficients *c, const int sections, vec *state0, vec *state1,
                            vec input)
{
    for (int s = 0; s < sections; ++s) {
        const vec y = c->b0[s] * input + state0[s];
        state0[s] = state1[s] + c->b1[s] * input - c->a1[s] * y;
        state1[s] = c->b2[s] * input - c->a2[s] * y;
        input = y;
    }
    return input;
}

MLF_INLINE void forward_cascade_tiles_together(const mlf_problem *p, const tile_rows *tiles,
                                               const int sections, const int is_double)
{
    cascade_coefficients c[TILES_AT_ONCE];
    vec state0[TILES_AT_ONCE][MAX_SECTIONS], state1[TILES_AT_ONCE][MAX_SECTIONS];
    tile_signal x[TILES_AT_ONCE];
    double y_block[TILES_AT_ONCE][BLOCK * LANES] __attribute__((aligned(64)));
    const int64_t length = p->length;

    for (int u = 0; u < TILES_AT_ONCE; ++u) {
        load_cascade(p, &tiles[u], sections, &c[u]);
        for (int s = 0; s < sections; ++s) {
            state0[u][s] = gather_section(p, &tiles[u], &p->zi, s, 0);
            state1[u][s] = gather_section(p, &tiles[u], &p->zi, s, 1);
        }
        tile_signal_init(p, &tiles[u], &p->waveform, &x[u]);
    }
    for (int64_t start = 0; start < length; start += BLOCK) {
        const int count = length - start < BLOCK ? (int)(length - start) : BLOCK;
        for (int u = 0; u < TILES_AT_ONCE; ++u)
            tile_signal_read(&p->waveform, is_double, start, count, &x[u]);
        for (int t = 0; t < count; ++t)
            for (int u = 0; u < TILES_AT_ONCE; ++u)
                store_vec(&y_block[u][t * LANES],
                          cascade_step(&c[u], sections, state0[u], state1[u], tile_signal_at(&x[u], t)));
        for (int u = 0; u < TILES_AT_ONCE; ++u)
            scatter_block(p->y, is_double, tiles[u].row, tiles[u].lanes, length, start, count, y_block[u]);
    }
    double final_state[2 * MAX_SECTIONS * LANES] __attribute__((aligned(64)));
    for (int u = 0; u < TILES_AT_ONCE; ++u) {
        for (int s = 0; s < sections; ++s) {
            store_vec(&final_state[(2 * s) * LANES], state0[u][s]);
            store_vec(&final_state[(2 * s + 1) * LANES], state1[u][s]);
        }
        for (int lane = 0; lane < tiles[u].lanes; ++lane)
            for (int k = 0; k < 2 * sections; ++k)
                store(p->zf, is_double, tiles[u].row[lane] * 2 * sections + k, final_state[k * LANES + lane]);
    }
}

/* Per-thread buffers of the cascade adjoint. */
typedef struct {
    double *checkpoints; /* [block][section][2][LANES] */
    double *signals;     /* [section + 1][t][LANES]: each section's input, then the output */
} cascade_buffers;

MLF_INLINE int64_t cascade_blocks(const mlf_problem *p) { return (p->length + BLOCK - 1) / BLOCK; }

MLF_INLINE void adjoint_cascade_tile(const mlf_problem *p, const tile_rows *tile, const int sections,
                                     const int is_double, const cascade_buffers *buffers)
{
    cascade_coefficients c;
    vec state0[MAX_SECTIONS], state1[MAX_SECTIONS];
    vec history1[MAX_SECTIONS], history2[MAX_SECTIONS];
    vec grad_a1[MAX_SECTIONS], grad_a2[MAX_SECTIONS];
    vec grad_b0[MAX_SECTIONS], grad_b1[MAX_SECTIONS], grad_b2[MAX_SECTIONS];
    tile_signal g, x;
    double gx_block[BLOCK * LANES] __attribute__((aligned(64)));
    int64_t gx_offsets[LANES];
    const int64_t length = p->length;
    const int64_t n_blocks = cascade_blocks(p);
    const int need_gx = p->grad_waveform.data != NULL;
    double *const checkpoints = buffers->checkpoints;
    double *const signals = buffers->signals;

    load_cascade(p, tile, sections, &c);
    for (int s = 0; s < sections; ++s) {
        state0[s] = gather_section(p, tile, &p->zi, s, 0);
        state1[s] = gather_section(p, tile, &p->zi, s, 1);
        history1[s] = gather_section(p, tile, &p->grad_zf, s, 0);
        history2[s] = gather_section(p, tile, &p->grad_zf, s, 1);
        grad_a1[s] = grad_a2[s] = grad_b0[s] = grad_b1[s] = grad_b2[s] = (vec){0};
    }
    tile_signal_init(p, tile, &p->grad_y, &g);
    tile_signal_init(p, tile, &p->waveform, &x);
    const int gx_shared = need_gx && tile_offsets(p, tile, &p->grad_waveform, gx_offsets);

    /* Forward pre-pass: the states entering every block. */
    for (int64_t block = 0; block < n_blocks; ++block) {
        for (int s = 0; s < sections; ++s) {
            store_vec(&checkpoints[((block * sections + s) * 2) * LANES], state0[s]);
            store_vec(&checkpoints[((block * sections + s) * 2 + 1) * LANES], state1[s]);
        }
        if (block + 1 == n_blocks)
            break; /* the last block's end state is not needed */
        const int64_t start = block * BLOCK;
        tile_signal_read(&p->waveform, is_double, start, BLOCK, &x);
        for (int t = 0; t < BLOCK; ++t)
            cascade_step(&c, sections, state0, state1, tile_signal_at(&x, t));
    }

    for (int64_t block = n_blocks - 1; block >= 0; --block) {
        const int64_t start = block * BLOCK;
        const int count = length - start < BLOCK ? (int)(length - start) : BLOCK;
        /* Recompute the block from its checkpoint, keeping every section's input. */
        for (int s = 0; s < sections; ++s) {
            state0[s] = load_vec(&checkpoints[((block * sections + s) * 2) * LANES]);
            state1[s] = load_vec(&checkpoints[((block * sections + s) * 2 + 1) * LANES]);
        }
        tile_signal_read(&p->waveform, is_double, start, count, &x);
        for (int t = 0; t < count; ++t) {
            vec input = tile_signal_at(&x, t);
            store_vec(&signals[t * LANES], input);
            for (int s = 0; s < sections; ++s) {
                const vec y = c.b0[s] * input + state0[s];
                state0[s] = state1[s] + c.b1[s] * input - c.a1[s] * y;
                state1[s] = c.b2[s] * input - c.a2[s] * y;
                input = y;
                store_vec(&signals[((s + 1) * BLOCK + t) * LANES], y);
            }
        }
        tile_signal_read(&p->grad_y, is_double, start, count, &g);

        for (int t = count - 1; t >= 0; --t) {
            vec grad = tile_signal_at(&g, t);
            for (int s = sections - 1; s >= 0; --s) {
                const vec input = load_vec(&signals[(s * BLOCK + t) * LANES]);
                const vec output = load_vec(&signals[((s + 1) * BLOCK + t) * LANES]);
                const vec grad_v = grad - c.a1[s] * history1[s] - c.a2[s] * history2[s];
                grad = c.b0[s] * grad_v + c.b1[s] * history1[s] + c.b2[s] * history2[s];
                grad_b0[s] += grad_v * input;
                grad_b1[s] += history1[s] * input;
                grad_b2[s] += history2[s] * input;
                grad_a1[s] -= history1[s] * output;
                grad_a2[s] -= history2[s] * output;
                history2[s] = history1[s];
                history1[s] = grad_v;
            }
            if (need_gx)
                store_vec(&gx_block[t * LANES], grad);
        }

        if (need_gx)
            add_tile_waveform_gradient(p, tile, gx_offsets, gx_shared, start, count, gx_block, is_double);
    }

    /* Per section: 3 a-gradients (a0's is zero), 3 b-gradients, 2 state gradients. */
    double sums[8 * LANES] __attribute__((aligned(64)));
    for (int s = 0; s < sections; ++s) {
        const vec values[8] = {(vec){0}, grad_a1[s], grad_a2[s], grad_b0[s], grad_b1[s], grad_b2[s],
                               history1[s], history2[s]};
        for (int i = 0; i < 8; ++i)
            store_vec(&sums[i * LANES], values[i]);
        for (int lane = 0; lane < tile->lanes; ++lane) {
            const int64_t row = tile->row[lane];
            for (int k = 0; k < 3; ++k) {
                p->grad_a[(row * sections + s) * 3 + k] = sums[k * LANES + lane];
                p->grad_b[(row * sections + s) * 3 + k] = sums[(3 + k) * LANES + lane];
            }
            if (p->grad_zi)
                for (int k = 0; k < 2; ++k)
                    p->grad_zi[(row * sections + s) * 2 + k] = sums[(6 + k) * LANES + lane];
        }
    }
}

MLF_INLINE void make_tile(const mlf_problem *p, int64_t tile_index, tile_rows *tile)
{
    const int64_t first = tile_index * LANES;
    tile->lanes = p->rows - first < LANES ? (int)(p->rows - first) : LANES;
    for (int lane = 0; lane < LANES; ++lane) {
        const int64_t position = first + (lane < tile->lanes ? lane : 0);
        tile->row[lane] = p->row_order ? p->row_order[position] : position;
    }
}

/* The commonest orders (one-pole smoothers, biquads) get a copy of the tile kernel with
 * the order a constant, so the state arrays become registers and the loops over k
 * unroll. Every copy costs build time (seconds each, times three instruction sets), so
 * the other orders share one generic copy. */
#define FOR_EACH_SPECIALISED_ORDER(CASE) CASE(1) CASE(2)

/* Runs tiles [begin, end) of a forward problem (lfilter_forward.c). */
void mlf_forward_tiles(const mlf_problem *p, int64_t begin, int64_t end);

/* Runs tiles [begin, end) of the adjoint of one filter (lfilter_adjoint.c). */
void mlf_adjoint_tiles(const mlf_problem *p, int64_t begin, int64_t end);

/* Runs tiles [begin, end) of the adjoint of a cascade (lfilter_cascade_adjoint.c), with
 * its per-thread buffers. */
void mlf_cascade_adjoint_tiles(const mlf_problem *p, int64_t begin, int64_t end, const cascade_buffers *buffers);

#endif
