/*
 * Time-varying filters in transposed direct form II: the forward filter and its
 * adjoint, one chain (row) at a time, rows split over threads.
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
 * gzi = lam after step 0. Each row writes its own gradients, so results do not
 * depend on the number of threads.
 */
#include <pthread.h>
#include <stdlib.h>

#include "varying_kernels.h"

/* The row kernels are written once for any order and instantiated for orders 1 and 2
 * (a constant order lets the compiler unroll the state updates and keep the state in
 * registers) and for the rest. */
#if defined(__GNUC__) || defined(__clang__)
#define ROW_KERNEL static inline __attribute__((always_inline))
#else
#define ROW_KERNEL static inline
#endif

static int64_t offset_of(const mlf_varying_problem *p, const int64_t *strides, int64_t row)
{
    int64_t offset = 0;
    for (int64_t d = p->ndim - 1; d >= 0; --d) {
        offset += (row % p->sizes[d]) * strides[d];
        row /= p->sizes[d];
    }
    return offset;
}

static inline double load_signal(const void *data, int is_double, int64_t index)
{
    return is_double ? ((const double *)data)[index] : (double)((const float *)data)[index];
}

static inline void store_signal(void *data, int is_double, int64_t index, double value)
{
    if (is_double)
        ((double *)data)[index] = value;
    else
        ((float *)data)[index] = (float)value;
}

/* Where step n's coefficients come from: rows first and second of the time axis,
 * mixed as (1 - weight) first + weight second (weight 0: first only). */
typedef struct {
    int64_t first, second;
    double weight;
} step_source;

/* Sample n = frame * hop + offset (hop > 0), kept by counting: no division per step. */
typedef struct {
    int64_t frame, offset;
} frame_clock;

ROW_KERNEL frame_clock clock_at(int64_t n, int64_t hop)
{
    frame_clock clock = {0, 0};
    if (hop > 0) {
        clock.frame = n / hop;
        clock.offset = n - clock.frame * hop;
    }
    return clock;
}

ROW_KERNEL void tick_forward(frame_clock *clock, int64_t hop)
{
    if (hop > 0 && ++clock->offset == hop) {
        clock->offset = 0;
        ++clock->frame;
    }
}

ROW_KERNEL void tick_backward(frame_clock *clock, int64_t hop)
{
    if (hop > 0) {
        if (clock->offset == 0) {
            clock->offset = hop - 1;
            --clock->frame;
        } else {
            --clock->offset;
        }
    }
}

ROW_KERNEL step_source source_of(int64_t n, frame_clock clock, int64_t steps, int64_t hop)
{
    step_source source = {0, 0, 0.0};
    if (steps == 1)
        return source;
    if (hop == 0) {
        source.first = n;
        return source;
    }
    source.first = clock.frame;
    if (clock.offset != 0 && clock.frame + 1 < steps) {
        source.second = clock.frame + 1;
        source.weight = (double)clock.offset / (double)hop;
    }
    return source;
}

/* The coefficients of one step into out[0 .. width), zero-padded to `padded`. */
ROW_KERNEL void read_step(const mlf_varying_coefficients *c, const char *base, const int64_t padded, step_source s,
                          double *out)
{
    const int64_t width = c->width, k_step = c->view.step;
    const int is_double = (int)c->is_double;
    const int64_t first = s.first * c->time_step;
    const int64_t second = s.second * c->time_step;
    for (int64_t k = 0; k < padded; ++k) {
        if (k >= width)
            out[k] = 0.0;
        else if (s.weight == 0.0)
            out[k] = load_signal(base, is_double, first + k * k_step);
        else
            out[k] = load_signal(base, is_double, first + k * k_step) * (1.0 - s.weight) +
                     load_signal(base, is_double, second + k * k_step) * s.weight;
    }
}

/* Adds a step's raw-coefficient gradients (the first `width`) to its frame(s). */
ROW_KERNEL void add_step(double *grad, int64_t width, step_source s, const double *values)
{
    double *first = grad + s.first * width;
    if (s.weight == 0.0) {
        for (int64_t k = 0; k < width; ++k)
            first[k] += values[k];
        return;
    }
    double *second = grad + s.second * width;
    for (int64_t k = 0; k < width; ++k) {
        first[k] += values[k] * (1.0 - s.weight);
        second[k] += values[k] * s.weight;
    }
}

/* A step's gradients into the row's buffer at `base`: written in the coefficients'
 * dtype where each step has its own row (`direct`), else added to its frame(s). */
ROW_KERNEL void write_step(void *grad, int64_t direct, const mlf_varying_coefficients *c, int64_t base,
                           step_source s, const double *values)
{
    if (direct) {
        for (int64_t k = 0; k < c->width; ++k)
            store_signal(grad, (int)c->is_double, base + s.first * c->width + k, values[k]);
        return;
    }
    add_step((double *)grad + base, c->width, s, values);
}

/* A row's coefficients (offsets count elements of their own dtype). */
static const char *coefficient_base(const mlf_varying_problem *p, const mlf_varying_coefficients *c, int64_t row)
{
    const int64_t offset = offset_of(p, c->view.strides, row);
    return c->is_double ? (const char *)((const double *)c->view.data + offset)
                        : (const char *)((const float *)c->view.data + offset);
}

ROW_KERNEL void forward_row_of(const mlf_varying_problem *p, int64_t row, const int64_t order)
{
    const int64_t width = order + 1, length = p->length;
    const int is_double = (int)p->is_double;
    const char *a_base = coefficient_base(p, &p->a, row), *b_base = coefficient_base(p, &p->b, row);
    const void *x = p->waveform.data;
    const int64_t x_base = offset_of(p, p->waveform.strides, row), x_step = p->waveform.step;
    double state[MAX_ORDER + 1] = {0.0};
    if (p->zi.data) {
        const double *zi = (const double *)p->zi.data + offset_of(p, p->zi.strides, row);
        for (int64_t k = 0; k < order; ++k)
            state[k] = zi[k * p->zi.step];
    }
    double a[MAX_ORDER + 1], b[MAX_ORDER + 1];
    frame_clock clock = clock_at(0, p->hop);
    for (int64_t n = 0; n < length; ++n, tick_forward(&clock, p->hop)) {
        read_step(&p->a, a_base, width, source_of(n, clock, p->a.steps, p->hop), a);
        read_step(&p->b, b_base, width, source_of(n, clock, p->b.steps, p->hop), b);
        const double inverse = 1.0 / a[0];
        const double input = load_signal(x, is_double, x_base + n * x_step);
        const double output = b[0] * inverse * input + state[0];
        for (int64_t k = 0; k < order; ++k)
            state[k] = state[k + 1] + b[k + 1] * inverse * input - a[k + 1] * inverse * output;
        store_signal(p->y, is_double, row * length + n, output);
    }
    for (int64_t k = 0; k < order; ++k)
        p->zf[row * order + k] = state[k];
}

ROW_KERNEL void adjoint_row_of(const mlf_varying_problem *p, int64_t row, const int64_t order)
{
    const int64_t width = order + 1, length = p->length;
    const int is_double = (int)p->is_double;
    const char *a_base = coefficient_base(p, &p->a, row), *b_base = coefficient_base(p, &p->b, row);
    const void *x = p->waveform.data;
    const int64_t x_base = offset_of(p, p->waveform.strides, row), x_step = p->waveform.step;
    const int64_t gy_base = p->grad_y.data ? offset_of(p, p->grad_y.strides, row) : 0;
    double lam[MAX_ORDER + 1] = {0.0};
    if (p->grad_zf.data) {
        const double *gzf = (const double *)p->grad_zf.data + offset_of(p, p->grad_zf.strides, row);
        for (int64_t k = 0; k < order; ++k)
            lam[k] = gzf[k * p->grad_zf.step];
    }
    const int64_t grad_a_base = row * p->a.steps * p->a.width, grad_b_base = row * p->b.steps * p->b.width;
    double a[MAX_ORDER + 1], b[MAX_ORDER + 1], ga[MAX_ORDER + 1], gb[MAX_ORDER + 1];
    frame_clock clock = clock_at(length - 1, p->hop);
    for (int64_t n = length - 1; n >= 0; --n, tick_backward(&clock, p->hop)) {
        const step_source a_source = source_of(n, clock, p->a.steps, p->hop);
        const step_source b_source = source_of(n, clock, p->b.steps, p->hop);
        read_step(&p->a, a_base, width, a_source, a);
        read_step(&p->b, b_base, width, b_source, b);
        const double inverse = 1.0 / a[0];
        const double input = load_signal(x, is_double, x_base + n * x_step);
        const double output = load_signal(p->y, is_double, row * length + n);
        double g = p->grad_y.data ? load_signal(p->grad_y.data, is_double, gy_base + n * p->grad_y.step) : 0.0;
        for (int64_t k = 1; k <= order; ++k)
            g -= a[k] * inverse * lam[k - 1];
        if (p->grad_waveform) {
            double gx = b[0] * inverse * g;
            for (int64_t k = 1; k <= order; ++k)
                gx += b[k] * inverse * lam[k - 1];
            store_signal(p->grad_waveform, is_double, row * length + n, gx);
        }
        /* Gradients of the normalised step, then of the raw one (b / a0, a / a0). */
        double to_leading = g * input * b[0];
        gb[0] = g * input * inverse;
        ga[0] = 0.0;
        for (int64_t k = 1; k <= order; ++k) {
            gb[k] = lam[k - 1] * input * inverse;
            ga[k] = -lam[k - 1] * output * inverse;
            to_leading += lam[k - 1] * (input * b[k] - output * a[k]);
        }
        ga[0] = -to_leading * inverse * inverse;
        write_step(p->grad_a, p->grad_a_direct, &p->a, grad_a_base, a_source, ga);
        write_step(p->grad_b, p->grad_b_direct, &p->b, grad_b_base, b_source, gb);
        for (int64_t k = order - 1; k > 0; --k)
            lam[k] = lam[k - 1];
        if (order > 0)
            lam[0] = g;
    }
    if (p->grad_zi)
        for (int64_t k = 0; k < order; ++k)
            p->grad_zi[row * order + k] = lam[k];
}

static void forward_row(const mlf_varying_problem *p, int64_t row)
{
    switch (p->order) {
    case 1: forward_row_of(p, row, 1); break;
    case 2: forward_row_of(p, row, 2); break;
    default: forward_row_of(p, row, p->order);
    }
}

static void adjoint_row(const mlf_varying_problem *p, int64_t row)
{
    switch (p->order) {
    case 1: adjoint_row_of(p, row, 1); break;
    case 2: adjoint_row_of(p, row, 2); break;
    default: adjoint_row_of(p, row, p->order);
    }
}

typedef struct {
    const mlf_varying_problem *problem;
    int64_t begin, end;
    int adjoint;
} varying_work;

static void *run_rows(void *argument)
{
    const varying_work *work = (const varying_work *)argument;
    for (int64_t row = work->begin; row < work->end; ++row) {
        if (work->adjoint)
            adjoint_row(work->problem, row);
        else
            forward_row(work->problem, row);
    }
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
    int64_t n_threads = p->n_threads < 1 ? 1 : p->n_threads;
    if (n_threads > p->rows)
        n_threads = p->rows;
    varying_work *work = calloc((size_t)n_threads, sizeof(varying_work));
    pthread_t *threads = calloc((size_t)n_threads, sizeof(pthread_t));
    if (!work || !threads) {
        free(work);
        free(threads);
        return MLF_OUT_OF_MEMORY;
    }
    for (int64_t i = 0; i < n_threads; ++i) {
        work[i].problem = p;
        work[i].begin = p->rows * i / n_threads;
        work[i].end = p->rows * (i + 1) / n_threads;
        work[i].adjoint = adjoint;
    }
    int64_t started = 1;
    for (int64_t i = 1; i < n_threads; ++i, ++started)
        if (pthread_create(&threads[i], NULL, run_rows, &work[i]) != 0)
            break;
    run_rows(&work[0]);
    for (int64_t i = 1; i < started; ++i)
        pthread_join(threads[i], NULL);
    for (int64_t i = started; i < n_threads; ++i) /* threads that could not start */
        run_rows(&work[i]);
    free(work);
    free(threads);
    return MLF_OK;
}

int mlf_varying_forward(const mlf_varying_problem *problem) { return run(problem, 0); }

int mlf_varying_adjoint(const mlf_varying_problem *problem) { return run(problem, 1); }
