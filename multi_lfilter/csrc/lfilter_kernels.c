/*
 * Fused CPU kernels for banks of IIR filters: the forward filter and its adjoint.
 *
 * Plain C with GCC/Clang vector extensions, no PyTorch or Python headers; the op
 * library (native_ops.cpp) registers them with PyTorch's dispatcher and describes
 * every tensor by a data pointer and its strides over the broadcast batch
 * (lfilter_kernels.h), so a broadcast waveform is read in place, never expanded.
 *
 * Layout of the work. The batch of R rows (one row = one signal through one filter)
 * is cut into tiles of LANES rows; one SIMD vector holds one time step of a whole
 * tile, the filter state lives in registers, and threads take ranges of tiles. The
 * time axis is walked in blocks of BLOCK steps: a block of input is transposed into
 * an L1-resident [time][lane] buffer (or read once when every lane shares the same
 * input row, the common bank case), the recurrence runs over it, and the block of
 * output is transposed back into the row-major result.
 *
 * Arithmetic is float64 whatever the I/O dtype: float32 signals are widened on load
 * and rounded once on store.
 *
 * Forward (transposed direct form II, scipy's state convention, a[0] == 1):
 *     y[n]   = b0 x[n] + s0
 *     s_k    = s_{k+1} + b_{k+1} x[n] - a_{k+1} y[n]      (s_N = 0)
 * Adjoint, walking time backwards with history hist[k] = gv[n + k] (initially the
 * gradient of the final state):
 *     gv[n]  = g[n] - sum_k a_k hist[k]
 *     gx[n]  = b0 gv[n] + sum_k b_k hist[k]
 *     ga_k  -= hist[k] y[n],  gb_k += hist[k] x[n],  gb_0 += gv[n] x[n]
 * and after the walk gzi[k] = gv[k] = hist[k + 1].
 *
 * Cascades of S second-order sections (sections > 1) run in one pass: per sample, every
 * section in turn, with every section's state in registers; y is written once. Their
 * adjoint keeps no intermediate signal: per tile, a forward pre-pass stores the section
 * states at the start of every block (checkpoints: 2 S values per BLOCK samples per
 * row), then, walking the blocks backwards, each block is recomputed from its
 * checkpoint (every section's input and output, in an L1-sized buffer) and the
 * adjoint above runs through the sections from last to first at each sample, the
 * gradient of a section's input being the next section's output gradient.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "lfilter_tiles.h"

typedef struct {
    const mlf_problem *problem;
    int64_t tile_begin, tile_end;
    int adjoint;
    cascade_buffers buffers; /* the cascade adjoint's, per thread */
} thread_work;

static void *run_work(void *argument)
{
    thread_work *work = (thread_work *)argument;
    if (work->adjoint && work->problem->sections > 1)
        mlf_cascade_adjoint_tiles(work->problem, work->tile_begin, work->tile_end, &work->buffers);
    else if (work->adjoint)
        mlf_adjoint_tiles(work->problem, work->tile_begin, work->tile_end);
    else
        mlf_forward_tiles(work->problem, work->tile_begin, work->tile_end);
    return NULL;
}

/* Waveform-gradient offset of the row at sorted position `position`. */
static int64_t sorted_gx_offset(const mlf_problem *p, int64_t position)
{
    const int64_t row = p->row_order ? p->row_order[position] : position;
    return row_offset(p, p->grad_waveform.strides, row);
}

/* Whether threads may split the tiles before tile `tile`: always, unless both sides
 * add into one waveform row (rows are sorted by waveform row when that gradient is
 * needed, so a row's tiles are contiguous). */
static int may_split_before(const mlf_problem *p, int64_t tile)
{
    if (p->grad_waveform.data == NULL)
        return 1;
    return sorted_gx_offset(p, tile * LANES - 1) != sorted_gx_offset(p, tile * LANES);
}

/* The problem as the op library should have built it: the kernels trust nothing else. */
static int check_problem(const mlf_problem *p, int adjoint)
{
    if (p == NULL)
        return MLF_MISSING_POINTER;
    if (p->order < 0 || p->order > MAX_ORDER)
        return MLF_BAD_ORDER;
    if (p->sections < 1 || p->sections > MAX_SECTIONS || (p->sections > 1 && p->order != 2))
        return MLF_BAD_ORDER;
    if (p->ndim < 0 || p->ndim > MAX_DIMS)
        return MLF_BAD_DIMS;
    int64_t rows = 1;
    for (int64_t d = 0; d < p->ndim; ++d) {
        if (p->sizes[d] < 0)
            return MLF_BAD_SIZES;
        rows *= p->sizes[d];
    }
    if (p->rows != rows || p->length < 0)
        return MLF_BAD_SIZES;
    if (p->rows == 0)
        return MLF_OK;
    if (!p->a.data || !p->b.data)
        return MLF_MISSING_POINTER;
    /* The cascade adjoint recomputes y rather than reading it. */
    const int reads_y = !(adjoint && p->sections > 1);
    if (p->length > 0 && (!p->waveform.data || (reads_y && !p->y)))
        return MLF_MISSING_POINTER;
    if (!adjoint && p->order > 0 && !p->zf)
        return MLF_MISSING_POINTER;
    if (adjoint && (!p->grad_a || !p->grad_b))
        return MLF_MISSING_POINTER;
    return MLF_OK;
}

/* Split the tiles over threads and run them; returns MLF_OK or a failure above. */
static int run(const mlf_problem *p, int adjoint)
{
    const int status = check_problem(p, adjoint);
    if (status != MLF_OK)
        return status;
    const int64_t n_tiles = (p->rows + LANES - 1) / LANES;
    int64_t n_threads = p->n_threads < 1 ? 1 : p->n_threads;
    if (n_threads > n_tiles)
        n_threads = n_tiles < 1 ? 1 : n_tiles;

    thread_work *work = calloc((size_t)n_threads, sizeof(thread_work));
    pthread_t *threads = calloc((size_t)n_threads, sizeof(pthread_t));
    if (!work || !threads) {
        free(work);
        free(threads);
        return MLF_OUT_OF_MEMORY;
    }
    int64_t begin = 0;
    for (int64_t i = 0; i < n_threads; ++i) {
        /* About an equal share of tiles, moved on to where no waveform row spans the
         * split: the adjoint's waveform gradient then needs no shared writes. */
        int64_t end = i + 1 == n_threads ? n_tiles : n_tiles * (i + 1) / n_threads;
        if (end < begin)
            end = begin;
        if (adjoint)
            while (end > begin && end < n_tiles && !may_split_before(p, end))
                ++end;
        work[i].problem = p;
        work[i].adjoint = adjoint;
        work[i].tile_begin = begin;
        work[i].tile_end = end;
        begin = end;
    }
    int out_of_memory = 0;
    if (adjoint && p->sections > 1) {
        const size_t checkpoints = (size_t)cascade_blocks(p) * (size_t)p->sections * 2 * LANES;
        const size_t signals = (size_t)(p->sections + 1) * BLOCK * LANES;
        for (int64_t i = 0; i < n_threads; ++i) {
            work[i].buffers.checkpoints = malloc(sizeof(double) * (checkpoints ? checkpoints : 1));
            work[i].buffers.signals = malloc(sizeof(double) * signals);
            out_of_memory |= !work[i].buffers.checkpoints || !work[i].buffers.signals;
        }
    }
    if (out_of_memory) {
        for (int64_t i = 0; i < n_threads; ++i) {
            free(work[i].buffers.checkpoints);
            free(work[i].buffers.signals);
        }
        free(work);
        free(threads);
        return MLF_OUT_OF_MEMORY;
    }
    int64_t started = 0;
    for (int64_t i = 1; i < n_threads; ++i) {
        if (pthread_create(&threads[i], NULL, run_work, &work[i]) != 0)
            break;
        started = i;
    }
    run_work(&work[0]);
    /* Threads that could not be started run here, in the calling thread. */
    for (int64_t i = started + 1; i < n_threads; ++i)
        run_work(&work[i]);
    for (int64_t i = 1; i <= started; ++i)
        pthread_join(threads[i], NULL);
    for (int64_t i = 0; i < n_threads; ++i) {
        free(work[i].buffers.checkpoints);
        free(work[i].buffers.signals);
    }
    free(work);
    free(threads);
    return MLF_OK;
}

/* Public entry points (lfilter_kernels.h). Both return MLF_OK (0) or a failure code. */
int mlf_forward(const mlf_problem *problem) { return run(problem, 0); }

int mlf_adjoint(const mlf_problem *problem) { return run(problem, 1); }

/* Asks the OS to back the 2 MiB-aligned inside of a fresh, untouched buffer with huge
 * pages. The forward kernel writes an output that is often hundreds of megabytes and
 * was just allocated: with 4 KiB pages, the page faults of that first write cost more
 * than the filtering (benchmarks/results-2026-12-03.md, D6). Returns madvise's status; a no-op returning 0 where the
 * system has no such advice. */
int mlf_advise_huge_pages(void *data, int64_t bytes)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    const uintptr_t begin = ((uintptr_t)data + huge - 1) & ~(huge - 1);
    const uintptr_t end = ((uintptr_t)data + (uintptr_t)bytes) & ~(huge - 1);
    if (end <= begin)
        return 0;
    return madvise((void *)begin, end - begin, MADV_HUGEPAGE);
#else
    (void)data;
    (void)bytes;
    return 0;
#endif
}
