/*
 * The C kernels' interface (lfilter_kernels.c): one call's problem, described by data
 * pointers and strides over the broadcast batch, and the entry points. Filled in by
 * the op library (native_ops.cpp) from PyTorch tensors.
 */
#ifndef MULTI_LFILTER_KERNELS_H
#define MULTI_LFILTER_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MAX_DIMS 8
#define MAX_ORDER 32
#define MAX_SECTIONS 32

/* One tensor seen over the broadcast batch: element (row, i) is at
 * data + offset(row) + i * step, offset(row) = sum_d index_d(row) * strides[d]. */
typedef struct {
    const void *data; /* NULL for an absent optional tensor (read as zeros) */
    int64_t strides[MAX_DIMS];
    int64_t step;
    int64_t section_step; /* cascades: from one section's values to the next's */
} mlf_view;

/* Everything one call needs. */
typedef struct {
    int64_t ndim;              /* batch dims */
    int64_t sizes[MAX_DIMS];   /* broadcast batch shape */
    int64_t rows;              /* product of sizes */
    int64_t length;            /* T */
    int64_t order;             /* N (2 for cascades) */
    int64_t sections;          /* S: 1 for one filter, more for a cascade of biquads */
    int64_t is_double;         /* I/O dtype of signals: 0 float32, 1 float64 */
    int64_t n_threads;
    mlf_view waveform;         /* I/O dtype */
    mlf_view a;                /* float64, normalised */
    mlf_view b;                /* float64 */
    mlf_view zi;               /* float64, forward only */
    mlf_view grad_y;           /* I/O dtype, adjoint only */
    mlf_view grad_zf;          /* float64, adjoint only */
    mlf_view grad_waveform;    /* I/O dtype, adjoint output, zero-filled; data NULL: not needed */
    const int64_t *row_order;  /* adjoint: rows sorted by waveform offset; NULL: identity */
    void *y;                   /* forward output, (rows, T) contiguous; adjoint input */
    void *zf;                  /* forward output, (rows, S, N) contiguous, I/O dtype */
    double *grad_a;            /* adjoint outputs, (rows, S, N + 1) contiguous */
    double *grad_b;
    double *grad_zi;           /* (rows, S, N) contiguous; NULL: not needed */
} mlf_problem;

/* Distinct failures (the op library turns them into errors). */
enum {
    MLF_OK = 0,
    MLF_OUT_OF_MEMORY = -1,
    MLF_BAD_ORDER = -2,
    MLF_BAD_DIMS = -3,
    MLF_BAD_SIZES = -4,
    MLF_MISSING_POINTER = -5,
};

/* The filter (or cascade) forward and its adjoint; both return MLF_OK or a failure. */
int mlf_forward(const mlf_problem *problem);
int mlf_adjoint(const mlf_problem *problem);

/* Asks the OS to back a fresh buffer with huge pages (see the source). */
int mlf_advise_huge_pages(void *data, int64_t bytes);

#ifdef __cplusplus
}
#endif

#endif
