/*
 * The time-varying filter kernels' interface (varying_kernels.c): transposed direct
 * form II with coefficients per sample, constant, or per frame (interpolated inside
 * the kernel). Filled in by the op library (native_ops.cpp) from PyTorch tensors.
 */
#ifndef MULTI_LFILTER_VARYING_KERNELS_H
#define MULTI_LFILTER_VARYING_KERNELS_H

#include <stdint.h>

#include "lfilter_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Coefficients over the broadcast batch and time: element (row, step, k) is at
 * data + offset(row) + step * time_step + k * view.step (time_step is 0 where
 * there is one step). Raw: a0 included, not normalised, in their own dtype and
 * length (the shorter read as zero-padded to order + 1). */
typedef struct {
    mlf_view view;
    int64_t time_step;
    int64_t steps;     /* T (per sample), 1 (constant) or F (frames, with a hop) */
    int64_t width;     /* Ka or Kb */
    int64_t is_double; /* 0 float32, 1 float64 */
} mlf_varying_coefficients;

typedef struct {
    int64_t ndim;
    int64_t sizes[MAX_DIMS];
    int64_t rows;
    int64_t length;          /* T */
    int64_t order;           /* N: K - 1 */
    int64_t hop;             /* samples between frames; 0: per sample or constant */
    int64_t is_double;       /* I/O dtype of the signals */
    int64_t n_threads;
    mlf_view waveform;       /* I/O dtype */
    mlf_varying_coefficients a, b;
    mlf_view zi;             /* float64 */
    mlf_view grad_y;         /* I/O dtype, adjoint only; data NULL: zero */
    mlf_view grad_zf;        /* float64, adjoint only; data NULL: zero */
    void *y;                 /* forward output, adjoint input: (rows, T) contiguous, I/O dtype */
    double *zf;              /* forward output: (rows, N) contiguous */
    void *grad_waveform;     /* adjoint output per row: (rows, T), I/O dtype; NULL: not needed */
    /* Adjoint outputs per row, (rows, steps, width): where a step's gradient is written
     * once (per-sample coefficients: *_direct), in the coefficients' own dtype;
     * otherwise (constant or frames) float64, zero-filled, accumulated. */
    void *grad_a;
    void *grad_b;
    int64_t grad_a_direct, grad_b_direct;
    double *grad_zi;         /* (rows, N); NULL: not needed */
} mlf_varying_problem;

int mlf_varying_forward(const mlf_varying_problem *problem);
int mlf_varying_adjoint(const mlf_varying_problem *problem);

#ifdef __cplusplus
}
#endif

#endif
