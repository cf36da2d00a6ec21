// The C kernels (lfilter_kernels.c) as PyTorch operators, on the LibTorch stable ABI.
//
// Registered with the dispatcher in the multi_lfilter namespace, so eager Python,
// TorchScript, torch.export, AOTInductor and libtorch C++ programs all call the same
// kernels. Built against the stable ABI of torch 2.10 (TORCH_TARGET_VERSION) with
// CPython's limited API: one build serves every later torch and CPython 3.10+.
//
// The ops take what the Python layer hands every backend: normalised float64
// coefficients of one length K (or K per section for cascades) and inputs whose
// leading dims broadcast (never expanded: each tensor is read through its strides
// over the broadcast batch). They return per-row coefficient and state gradients
// (float64, over the broadcast batch); the callers sum them to their inputs' shapes.
// The waveform's gradient is summed by the kernel itself, rows grouped by waveform
// row so the result is the same bits on any number of threads. Fake kernels and the
// autograd formulas are registered from Python (multi_lfilter/backends/native.py).
//
//   native_filter(waveform, a, b, zi?, samples_per_thread) -> (y, zf)
//   native_filter_adjoint(grad_y?, grad_zf?, waveform, a, b, y, need_waveform,
//                         need_zi, samples_per_thread) -> (gx, ga, gb, gzi)
//   native_sosfilt / native_sosfilt_adjoint: the same for cascades of biquads,
//       (..., S, 3) coefficients and (..., S, 2) states; the adjoint recomputes what
//       it needs from zi instead of reading y.
//   native_varying_filter(waveform, a, b, zi?, hop, samples_per_thread) -> (y, zf)
//   native_varying_filter_adjoint(grad_y?, grad_zf?, waveform, a, b, y, hop,
//                                 need_waveform, need_zi, samples_per_thread)
//       -> (gx, ga, gb, gzi): time-varying transposed direct form II
//       (varying_kernels.c), raw (..., steps, Ka) and (..., steps, Kb) coefficients with
//       a0, in float32 or float64, read as they are (no copy); per-row gradients that
//       the caller sums (float64, or the coefficients' dtype for per-sample ones; the
//       waveform's in its dtype).

#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>
#include <torch/headeronly/util/Exception.h>

#include <algorithm>
#include <numeric>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "lfilter_kernels.h"
#include "varying_kernels.h"

namespace {

using torch::headeronly::ScalarType;
using torch::stable::Tensor;
using Shape = std::vector<int64_t>;

// Outputs from this size on are backed by huge pages where the OS allows it: their
// first write is mostly page faults otherwise (see mlf_advise_huge_pages).
constexpr int64_t kHugePageOutputBytes = int64_t(8) << 20;

std::string describe(const Shape& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    text += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return text + "]";
}

Shape shape_of(const Tensor& tensor) {
  Shape shape;
  for (int64_t d = 0; d < tensor.dim(); ++d) {
    shape.push_back(tensor.size(d));
  }
  return shape;
}

// A tensor's leading (batch) dims: all but its `tail` last ones.
Shape leading(const Tensor& tensor, int64_t tail) {
  STD_TORCH_CHECK(tensor.dim() >= tail, "multi_lfilter: expected at least ", tail, " dims, got ",
                  describe(shape_of(tensor)));
  Shape shape = shape_of(tensor);
  return Shape(shape.begin(), shape.end() - tail);
}

// NumPy broadcasting of the leading shapes.
Shape broadcast(const std::vector<Shape>& shapes) {
  size_t ndim = 0;
  for (const Shape& shape : shapes) ndim = std::max(ndim, shape.size());
  Shape result(ndim, 1);
  for (const Shape& shape : shapes) {
    const size_t offset = ndim - shape.size();
    for (size_t i = 0; i < shape.size(); ++i) {
      int64_t& current = result[offset + i];
      STD_TORCH_CHECK(current == 1 || shape[i] == 1 || shape[i] == current,
                      "multi_lfilter: expected leading dims that broadcast, got ", describe(shape),
                      " against ", describe(result));
      if (current == 1) current = shape[i];
    }
  }
  return result;
}

// A tensor seen over `batch`: its strides along the batch dims (0 where it
// broadcasts), then its step along the last dim and, for (..., S, K) tensors
// (`tail` 2), from one section to the next. An absent tensor reads as zeros.
mlf_view view_of(const std::optional<Tensor>& tensor, const Shape& batch, int64_t tail) {
  mlf_view view{};
  if (!tensor.has_value()) return view;
  const Tensor& t = *tensor;
  const int64_t lead = t.dim() - tail;
  const int64_t missing = static_cast<int64_t>(batch.size()) - lead;
  for (int64_t d = 0; d < static_cast<int64_t>(batch.size()); ++d) {
    const int64_t own = d - missing;
    if (own >= 0 && t.size(own) != 1) view.strides[d] = t.stride(own);
  }
  view.data = t.data_ptr();
  view.step = t.stride(t.dim() - 1);
  view.section_step = tail == 2 ? t.stride(t.dim() - 2) : 0;
  return view;
}

int64_t count(const Shape& batch) {
  int64_t rows = 1;
  for (int64_t size : batch) rows *= size;
  return rows;
}

Shape append(Shape shape, std::initializer_list<int64_t> tail) {
  shape.insert(shape.end(), tail.begin(), tail.end());
  return shape;
}

Tensor empty(const Shape& shape, ScalarType dtype) {
  return torch::stable::empty(shape, dtype, std::nullopt, torch::stable::Device(torch::headeronly::DeviceType::CPU));
}

void check_signal(const Tensor& tensor, const char* name) {
  STD_TORCH_CHECK(tensor.is_cpu(), "multi_lfilter native kernels: expected ", name, " on the CPU");
  const ScalarType type = tensor.scalar_type();
  STD_TORCH_CHECK(type == ScalarType::Float || type == ScalarType::Double,
                  "multi_lfilter native kernels: expected ", name, " to be float32 or float64");
}

void check_coefficients(const Tensor& tensor, const char* name) {
  STD_TORCH_CHECK(tensor.is_cpu() && tensor.scalar_type() == ScalarType::Double,
                  "multi_lfilter native kernels: expected ", name, " to be float64 CPU tensors (normalised)");
}

// zi and grad_zf are tiny: handed to the kernels in float64 whatever their dtype.
std::optional<Tensor> as_float64(const std::optional<Tensor>& tensor, const char* name) {
  if (!tensor.has_value()) return std::nullopt;
  STD_TORCH_CHECK(tensor->is_cpu(), "multi_lfilter native kernels: expected ", name, " on the CPU");
  return torch::stable::to(*tensor, ScalarType::Double);
}

// The checks every op makes of its waveform and coefficients (a filter: tail 1, a
// cascade: tail 2), and what follows from them: (order, sections).
std::pair<int64_t, int64_t> check_inputs(const Tensor& waveform, const Tensor& a_coeffs, const Tensor& b_coeffs,
                                         int64_t tail) {
  check_signal(waveform, "waveform");
  check_coefficients(a_coeffs, "a_coeffs");
  check_coefficients(b_coeffs, "b_coeffs");
  const int64_t length = a_coeffs.size(a_coeffs.dim() - 1);
  STD_TORCH_CHECK(length == b_coeffs.size(b_coeffs.dim() - 1) && length >= 1,
                  "multi_lfilter native kernels: expected a and b of one length K >= 1");
  return {length - 1, tail == 2 ? a_coeffs.size(a_coeffs.dim() - 2) : 1};
}

// The broadcast batch of the inputs' leading dims.
Shape batch_of(const Tensor& waveform, const Tensor& a_coeffs, const Tensor& b_coeffs,
               const std::optional<Tensor>& zi, int64_t tail) {
  std::vector<Shape> shapes{leading(waveform, 1), leading(a_coeffs, tail), leading(b_coeffs, tail)};
  if (zi.has_value()) shapes.push_back(leading(*zi, tail));
  return broadcast(shapes);
}

// The common part of every problem: batch, length, order, sections, dtype, threads.
mlf_problem make_problem(const Shape& batch, int64_t length, int64_t order, int64_t sections,
                         ScalarType dtype, int64_t samples_per_thread) {
  STD_TORCH_CHECK(static_cast<int64_t>(batch.size()) <= MAX_DIMS, "multi_lfilter native kernels: expected at most ",
                  MAX_DIMS, " batch dims, got ", describe(batch));
  STD_TORCH_CHECK(order >= 0 && order <= MAX_ORDER, "multi_lfilter native kernels: expected an order of at most ",
                  MAX_ORDER, ", got ", order);
  STD_TORCH_CHECK(sections >= 1 && sections <= MAX_SECTIONS && (sections == 1 || order == 2),
                  "multi_lfilter native kernels: expected at most ", MAX_SECTIONS,
                  " sections of order 2, got ", sections, " of order ", order);
  mlf_problem problem{};
  problem.ndim = static_cast<int64_t>(batch.size());
  for (size_t d = 0; d < batch.size(); ++d) problem.sizes[d] = batch[d];
  problem.rows = count(batch);
  problem.length = length;
  problem.order = order;
  problem.sections = sections;
  problem.is_double = dtype == ScalarType::Double;
  const int64_t wanted = std::max<int64_t>(1, problem.rows * length / std::max<int64_t>(samples_per_thread, 1));
  problem.n_threads = std::min<int64_t>(torch::stable::get_num_threads(), wanted);
  return problem;
}

void run(int (*kernel)(const mlf_problem*), const mlf_problem& problem) {
  if (problem.rows == 0) return;
  const int status = kernel(&problem);
  STD_TORCH_CHECK(status != MLF_OUT_OF_MEMORY, "multi_lfilter native kernels: out of memory for their work buffers");
  STD_TORCH_CHECK(status == MLF_OK, "multi_lfilter native kernels refused the problem (code ", status, ")");
}

// The forward of a filter (tail 1) or a cascade (tail 2): (y, zf).
std::tuple<Tensor, Tensor> forward(const Tensor& waveform, const Tensor& a_coeffs, const Tensor& b_coeffs,
                                   const std::optional<Tensor>& zi, int64_t tail, int64_t samples_per_thread) {
  const auto [order, sections] = check_inputs(waveform, a_coeffs, b_coeffs, tail);
  const std::optional<Tensor> zi_double = as_float64(zi, "zi");
  const Shape batch = batch_of(waveform, a_coeffs, b_coeffs, zi_double, tail);
  const int64_t length = waveform.size(waveform.dim() - 1);
  const ScalarType dtype = waveform.scalar_type();

  Tensor y = empty(append(batch, {length}), dtype);
  const int64_t output_bytes = y.numel() * static_cast<int64_t>(y.element_size());
  if (output_bytes >= kHugePageOutputBytes) mlf_advise_huge_pages(y.data_ptr(), output_bytes);
  Tensor zf = tail == 2 ? empty(append(batch, {sections, order}), dtype) : empty(append(batch, {order}), dtype);

  mlf_problem problem = make_problem(batch, length, order, sections, dtype, samples_per_thread);
  problem.waveform = view_of(waveform, batch, 1);
  problem.a = view_of(a_coeffs, batch, tail);
  problem.b = view_of(b_coeffs, batch, tail);
  problem.zi = view_of(zi_double, batch, tail);
  problem.y = y.data_ptr();
  problem.zf = zf.data_ptr();
  run(mlf_forward, problem);
  return {y, zf};
}

// Rows sorted by where each row's waveform gradient goes, so rows that add into the
// same waveform row are contiguous and one thread owns them whatever the split.
std::vector<int64_t> rows_by_waveform_row(const mlf_view& view, const Shape& batch) {
  const int64_t rows = count(batch);
  std::vector<int64_t> offsets(static_cast<size_t>(rows), 0);
  for (int64_t row = 0; row < rows; ++row) {
    int64_t rest = row;
    int64_t offset = 0;
    for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
      offset += (rest % batch[d]) * view.strides[d];
      rest /= batch[d];
    }
    offsets[static_cast<size_t>(row)] = offset;
  }
  std::vector<int64_t> order(static_cast<size_t>(rows));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t left, int64_t right) {
    return offsets[static_cast<size_t>(left)] < offsets[static_cast<size_t>(right)];
  });
  return order;
}

// The adjoint of a filter (tail 1, reads y) or a cascade (tail 2, recomputes from zi):
// (grad_waveform or empty, per-row grad_a, per-row grad_b, per-row grad_zi or empty).
std::tuple<Tensor, Tensor, Tensor, Tensor> adjoint(
    const std::optional<Tensor>& grad_y, const std::optional<Tensor>& grad_zf, const Tensor& waveform,
    const Tensor& a_coeffs, const Tensor& b_coeffs, const std::optional<Tensor>& y, const std::optional<Tensor>& zi,
    bool need_waveform, bool need_zi, int64_t tail, int64_t samples_per_thread) {
  const auto [order, sections] = check_inputs(waveform, a_coeffs, b_coeffs, tail);
  const ScalarType dtype = waveform.scalar_type();
  const std::optional<Tensor> zi_double = as_float64(zi, "zi");
  const std::optional<Tensor> grad_zf_double = as_float64(grad_zf, "grad_zf");
  Shape batch;
  std::optional<Tensor> y_contiguous;
  if (y.has_value()) {  // the forward's own output: contiguous already, so no copy
    check_signal(*y, "y");
    y_contiguous = torch::stable::contiguous(*y);
    batch = leading(*y, 1);
  } else {
    batch = batch_of(waveform, a_coeffs, b_coeffs, zi_double, tail);
  }
  if (grad_y.has_value()) {
    check_signal(*grad_y, "grad_y");
    STD_TORCH_CHECK(grad_y->scalar_type() == dtype, "multi_lfilter native kernels: expected grad_y in the waveform's dtype");
  }
  const int64_t length = waveform.size(waveform.dim() - 1);
  const Shape coefficient_shape = tail == 2 ? append(batch, {sections, order + 1}) : append(batch, {order + 1});
  const Shape state_shape = tail == 2 ? append(batch, {sections, order}) : append(batch, {order});

  Tensor grad_a = empty(coefficient_shape, ScalarType::Double);
  Tensor grad_b = empty(coefficient_shape, ScalarType::Double);
  Tensor grad_zi = need_zi ? empty(state_shape, ScalarType::Double) : empty({0}, ScalarType::Double);
  Tensor grad_waveform = empty({0}, dtype);
  if (need_waveform) {
    grad_waveform = empty(shape_of(waveform), dtype);
    torch::stable::zero_(grad_waveform);
  }

  mlf_problem problem = make_problem(batch, length, order, sections, dtype, samples_per_thread);
  problem.waveform = view_of(waveform, batch, 1);
  problem.a = view_of(a_coeffs, batch, tail);
  problem.b = view_of(b_coeffs, batch, tail);
  problem.zi = view_of(zi_double, batch, tail);
  problem.grad_y = view_of(grad_y, batch, 1);
  problem.grad_zf = view_of(grad_zf_double, batch, tail);
  problem.y = y_contiguous.has_value() ? y_contiguous->data_ptr() : nullptr;
  std::vector<int64_t> row_order;
  if (need_waveform) {
    problem.grad_waveform = view_of(grad_waveform, batch, 1);
    row_order = rows_by_waveform_row(problem.grad_waveform, batch);
    problem.row_order = row_order.data();
  }
  problem.grad_a = static_cast<double*>(grad_a.data_ptr());
  problem.grad_b = static_cast<double*>(grad_b.data_ptr());
  problem.grad_zi = need_zi ? static_cast<double*>(grad_zi.data_ptr()) : nullptr;
  run(mlf_adjoint, problem);
  return {grad_waveform, grad_a, grad_b, grad_zi};
}

std::tuple<Tensor, Tensor> native_filter(Tensor waveform, Tensor a_coeffs, Tensor b_coeffs, std::optional<Tensor> zi,
                                         int64_t samples_per_thread) {
  return forward(waveform, a_coeffs, b_coeffs, zi, 1, samples_per_thread);
}

std::tuple<Tensor, Tensor, Tensor, Tensor> native_filter_adjoint(
    std::optional<Tensor> grad_y, std::optional<Tensor> grad_zf, Tensor waveform, Tensor a_coeffs, Tensor b_coeffs,
    Tensor y, bool need_waveform, bool need_zi, int64_t samples_per_thread) {
  return adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, y, std::nullopt, need_waveform, need_zi, 1,
                 samples_per_thread);
}

std::tuple<Tensor, Tensor> native_sosfilt(Tensor waveform, Tensor a_coeffs, Tensor b_coeffs, std::optional<Tensor> zi,
                                          int64_t samples_per_thread) {
  return forward(waveform, a_coeffs, b_coeffs, zi, 2, samples_per_thread);
}

std::tuple<Tensor, Tensor, Tensor, Tensor> native_sosfilt_adjoint(
    std::optional<Tensor> grad_y, std::optional<Tensor> grad_zf, Tensor waveform, Tensor a_coeffs, Tensor b_coeffs,
    std::optional<Tensor> zi, bool need_waveform, bool need_zi, int64_t samples_per_thread) {
  return adjoint(grad_y, grad_zf, waveform, a_coeffs, b_coeffs, std::nullopt, zi, need_waveform, need_zi, 2,
                 samples_per_thread);
}

// A fresh output the time-varying kernels write once (y, and the adjoint's per-row
// gradients, as large as y or K times larger): backed by huge pages from
// kHugePageOutputBytes on, as the LTI forward's y, because its first write is
// otherwise mostly page faults.
Tensor empty_output(const Shape& shape, ScalarType dtype) {
  Tensor output = empty(shape, dtype);
  const int64_t bytes = output.numel() * static_cast<int64_t>(output.element_size());
  if (bytes >= kHugePageOutputBytes) mlf_advise_huge_pages(output.data_ptr(), bytes);
  return output;
}

// The time-varying kernels' common part: checks, batch, problem.
mlf_varying_problem varying_problem(const Tensor& waveform, const Tensor& a_coeffs, const Tensor& b_coeffs,
                                    const std::optional<Tensor>& zi, int64_t hop, int64_t samples_per_thread,
                                    Shape& batch) {
  check_signal(waveform, "waveform");
  check_signal(a_coeffs, "a_coeffs");
  check_signal(b_coeffs, "b_coeffs");
  STD_TORCH_CHECK(a_coeffs.dim() >= 2 && b_coeffs.dim() >= 2,
                  "multi_lfilter native kernels: expected coefficients of shape (..., steps, K)");
  const int64_t width = std::max(a_coeffs.size(a_coeffs.dim() - 1), b_coeffs.size(b_coeffs.dim() - 1));
  STD_TORCH_CHECK(a_coeffs.size(a_coeffs.dim() - 1) >= 1 && b_coeffs.size(b_coeffs.dim() - 1) >= 1,
                  "multi_lfilter native kernels: expected at least one coefficient in a and b");
  STD_TORCH_CHECK(hop >= 0, "multi_lfilter native kernels: expected hop >= 0");
  std::vector<Shape> shapes{leading(waveform, 1), leading(a_coeffs, 2), leading(b_coeffs, 2)};
  if (zi.has_value()) shapes.push_back(leading(*zi, 1));
  batch = broadcast(shapes);
  const int64_t length = waveform.size(waveform.dim() - 1);
  mlf_problem common = make_problem(batch, length, width - 1, 1, waveform.scalar_type(), samples_per_thread);
  mlf_varying_problem problem{};
  problem.ndim = common.ndim;
  for (int64_t d = 0; d < common.ndim; ++d) problem.sizes[d] = common.sizes[d];
  problem.rows = common.rows;
  problem.length = length;
  problem.order = width - 1;
  problem.hop = hop;
  problem.is_double = common.is_double;
  problem.n_threads = common.n_threads;
  problem.waveform = view_of(waveform, batch, 1);
  for (auto [target, tensor] : {std::make_pair(&problem.a, &a_coeffs), std::make_pair(&problem.b, &b_coeffs)}) {
    target->view = view_of(*tensor, batch, 2);  // section_step: the time axis's stride
    target->steps = tensor->size(tensor->dim() - 2);
    target->time_step = target->steps == 1 ? 0 : target->view.section_step;
    target->width = tensor->size(tensor->dim() - 1);
    target->is_double = tensor->scalar_type() == ScalarType::Double;
  }
  problem.zi = view_of(zi, batch, 1);
  return problem;
}

void run_varying(int (*kernel)(const mlf_varying_problem*), const mlf_varying_problem& problem) {
  const int status = kernel(&problem);
  STD_TORCH_CHECK(status != MLF_OUT_OF_MEMORY, "multi_lfilter native kernels: out of memory for their work buffers");
  STD_TORCH_CHECK(status == MLF_OK, "multi_lfilter native kernels refused the problem (code ", status, ")");
}

std::tuple<Tensor, Tensor> native_varying_filter(Tensor waveform, Tensor a_coeffs, Tensor b_coeffs,
                                                 std::optional<Tensor> zi, int64_t hop, int64_t samples_per_thread) {
  const std::optional<Tensor> zi_double = as_float64(zi, "zi");
  Shape batch;
  mlf_varying_problem problem = varying_problem(waveform, a_coeffs, b_coeffs, zi_double, hop, samples_per_thread, batch);
  Tensor y = empty_output(append(batch, {problem.length}), waveform.scalar_type());
  Tensor zf = empty(append(batch, {problem.order}), ScalarType::Double);
  problem.y = y.data_ptr();
  problem.zf = static_cast<double*>(zf.data_ptr());
  run_varying(mlf_varying_forward, problem);
  return {y, zf};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> native_varying_filter_adjoint(
    std::optional<Tensor> grad_y, std::optional<Tensor> grad_zf, Tensor waveform, Tensor a_coeffs, Tensor b_coeffs,
    Tensor y, int64_t hop, bool need_waveform, bool need_zi, int64_t samples_per_thread) {
  const std::optional<Tensor> grad_zf_double = as_float64(grad_zf, "grad_zf");
  Shape batch;
  mlf_varying_problem problem = varying_problem(waveform, a_coeffs, b_coeffs, std::nullopt, hop, samples_per_thread, batch);
  check_signal(y, "y");
  STD_TORCH_CHECK(shape_of(y) == append(batch, {problem.length}) && y.scalar_type() == waveform.scalar_type(),
                  "multi_lfilter native kernels: expected y of the forward's shape and dtype");
  const Tensor y_contiguous = torch::stable::contiguous(y);
  if (grad_y.has_value()) {
    check_signal(*grad_y, "grad_y");
    STD_TORCH_CHECK(grad_y->scalar_type() == waveform.scalar_type(),
                    "multi_lfilter native kernels: expected grad_y in the waveform's dtype");
  }
  // Per-sample coefficients get each step's gradient once: written in their own dtype,
  // no zero fill; constant and frame-rate ones accumulate in float64.
  problem.grad_a_direct = problem.hop == 0 && problem.a.steps > 1;
  problem.grad_b_direct = problem.hop == 0 && problem.b.steps > 1;
  Tensor grad_a = empty_output(append(batch, {problem.a.steps, problem.a.width}),
                               problem.grad_a_direct ? a_coeffs.scalar_type() : ScalarType::Double);
  Tensor grad_b = empty_output(append(batch, {problem.b.steps, problem.b.width}),
                               problem.grad_b_direct ? b_coeffs.scalar_type() : ScalarType::Double);
  if (!problem.grad_a_direct) torch::stable::zero_(grad_a);
  if (!problem.grad_b_direct) torch::stable::zero_(grad_b);
  Tensor grad_zi = need_zi ? empty(append(batch, {problem.order}), ScalarType::Double) : empty({0}, ScalarType::Double);
  Tensor grad_waveform = need_waveform ? empty_output(append(batch, {problem.length}), waveform.scalar_type())
                                       : empty({0}, waveform.scalar_type());
  problem.grad_y = view_of(grad_y, batch, 1);
  problem.grad_zf = view_of(grad_zf_double, batch, 1);
  problem.y = y_contiguous.data_ptr();
  problem.grad_waveform = need_waveform ? grad_waveform.data_ptr() : nullptr;
  problem.grad_a = grad_a.data_ptr();
  problem.grad_b = grad_b.data_ptr();
  problem.grad_zi = need_zi ? static_cast<double*>(grad_zi.data_ptr()) : nullptr;
  run_varying(mlf_varying_adjoint, problem);
  return {grad_waveform, grad_a, grad_b, grad_zi};
}

}  // namespace

// Below this many output samples per thread, starting a thread costs more than it
// saves (benchmarks/results-2026-12-03.md, D9).
#define MLF_SAMPLES_PER_THREAD "131072"

STABLE_TORCH_LIBRARY(multi_lfilter, m) {
  m.def("native_filter(Tensor waveform, Tensor a_coeffs, Tensor b_coeffs, Tensor? zi, "
        "int samples_per_thread=" MLF_SAMPLES_PER_THREAD ") -> (Tensor, Tensor)");
  m.def("native_filter_adjoint(Tensor? grad_y, Tensor? grad_zf, Tensor waveform, Tensor a_coeffs, "
        "Tensor b_coeffs, Tensor y, bool need_waveform, bool need_zi, "
        "int samples_per_thread=" MLF_SAMPLES_PER_THREAD ") -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("native_sosfilt(Tensor waveform, Tensor a_coeffs, Tensor b_coeffs, Tensor? zi, "
        "int samples_per_thread=" MLF_SAMPLES_PER_THREAD ") -> (Tensor, Tensor)");
  m.def("native_sosfilt_adjoint(Tensor? grad_y, Tensor? grad_zf, Tensor waveform, Tensor a_coeffs, "
        "Tensor b_coeffs, Tensor? zi, bool need_waveform, bool need_zi, "
        "int samples_per_thread=" MLF_SAMPLES_PER_THREAD ") -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("native_varying_filter(Tensor waveform, Tensor a_coeffs, Tensor b_coeffs, Tensor? zi, int hop, "
        "int samples_per_thread=" MLF_SAMPLES_PER_THREAD ") -> (Tensor, Tensor)");
  m.def("native_varying_filter_adjoint(Tensor? grad_y, Tensor? grad_zf, Tensor waveform, Tensor a_coeffs, "
        "Tensor b_coeffs, Tensor y, int hop, bool need_waveform, bool need_zi, "
        "int samples_per_thread=" MLF_SAMPLES_PER_THREAD ") -> (Tensor, Tensor, Tensor, Tensor)");
}

STABLE_TORCH_LIBRARY_IMPL(multi_lfilter, CPU, m) {
  m.impl("native_filter", TORCH_BOX(&native_filter));
  m.impl("native_filter_adjoint", TORCH_BOX(&native_filter_adjoint));
  m.impl("native_sosfilt", TORCH_BOX(&native_sosfilt));
  m.impl("native_sosfilt_adjoint", TORCH_BOX(&native_sosfilt_adjoint));
  m.impl("native_varying_filter", TORCH_BOX(&native_varying_filter));
  m.impl("native_varying_filter_adjoint", TORCH_BOX(&native_varying_filter_adjoint));
}
