// softmax and log_softmax over any dim: the dim is moved last and made contiguous, the fused
// row kernels run forward and backward, and the result is laid back out in the input's order.
#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "kernels/softmax.h"
#include "kernels/cuda/cuda_api.h"
#include "engine/kernel_call.h"

namespace retort {
namespace {
// x (contiguous, softmax dim last) -> y of the same layout.
Tensor softmax_rows_forward(const Tensor& x, bool log) {
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  int64_t n = x.dim() == 0 ? 1 : x.shape().back();
  int64_t rows = n == 0 ? 0 : x.numel() / n;
  RETORT_KERNEL(x.device(), softmax_forward, x.dtype(), x.raw_data(), y.raw_data(), rows, n, log);
  return y;
}
Tensor softmax_rows_backward(const Tensor& y, const Tensor& g, bool log) {
  Tensor dx = Tensor::empty(y.shape(), y.dtype(), y.device());
  int64_t n = y.dim() == 0 ? 1 : y.shape().back();
  int64_t rows = n == 0 ? 0 : y.numel() / n;
  RETORT_KERNEL(y.device(), softmax_backward, y.dtype(), y.raw_data(), g.raw_data(), dx.raw_data(), rows, n, log);
  return dx;
}

Tensor softmax_impl(const Tensor& a_ac, int64_t dim_in, bool log, const char* op) {
  const Tensor a = autocast::to_f32(a_ac);
  RETORT_PROFILE_OP(op, a);
  RETORT_CHECK(a.defined(), "{}: undefined operand", op);
  RETORT_CHECK(is_floating(a.dtype()), "{}: expects a floating tensor, got {}", op, a.str());
  // A 0-d tensor is one row of one element.
  const int64_t nd = a.dim() == 0 ? 1 : a.dim();
  const int64_t d = wrap_dim(dim_in, nd, op);
  const int64_t last = nd - 1;
  Tensor x = a.detach();
  if (a.dim() == 0) x = x.reshape({1});
  Tensor rows_y;
  Tensor out;
  {
    NoGradGuard ng;
    Tensor rows_x = x.transpose(d, last).contiguous();
    rows_y = softmax_rows_forward(rows_x, log);
    out = rows_y.transpose(d, last).contiguous().reshape(a.shape());
  }
  if (needs_grad({&a})) {
    Shape in_shape = a.shape(), x_shape = x.shape();
    record(out, op, {a}, [rows_y, d, last, log, in_shape, x_shape](const Tensor& g) {
      Tensor rows_g = g.reshape(x_shape).transpose(d, last).contiguous();
      Tensor rows_dx = softmax_rows_backward(rows_y, rows_g, log);
      return std::vector<Tensor>{rows_dx.transpose(d, last).contiguous().reshape(in_shape)};
    });
  }
  return out;
}
}  // namespace

Tensor softmax(const Tensor& a, int64_t dim) { return softmax_impl(a, dim, false, "softmax"); }
Tensor log_softmax(const Tensor& a, int64_t dim) { return softmax_impl(a, dim, true, "log_softmax"); }

}  // namespace retort
