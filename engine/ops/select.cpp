// Comparisons and selection: gt, eq (u8 masks, no gradient), where, masked_fill,
// index_select and gather (gradients by index_add / scatter_add into zeros).
#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/ops/broadcast.h"
#include "kernels/select.h"
#include "kernels/cuda/cuda_api.h"
#include "engine/kernel_call.h"

namespace retort {
namespace {

void check_index_tensor(const Tensor& index, const Tensor& a, const char* op) {
  RETORT_CHECK(index.defined(), "{}: the index is undefined", op);
  RETORT_CHECK(index.dtype() == DType::i64, "{}: the index must be i64, got {}", op, index.str());
  RETORT_CHECK(index.device() == a.device(), "{}: device mismatch, input {} vs index {}", op, a.str(), index.str());
}

// index_add into zeros of `shape`: the adjoint of index_select (no autograd of its own).
// bf16 accumulates in f32 (then rounds once), so repeated indices do not lose precision.
Tensor index_add_zeros(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  if (src.dtype() == DType::bf16) return index_add_zeros(shape, dim, index, src.to(DType::f32)).to(DType::bf16);
  Tensor out = Tensor::zeros(shape, src.dtype(), src.device());
  Tensor s = src.contiguous(), idx = index.contiguous();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= shape[size_t(d)];
  for (int64_t d = dim + 1; d < int64_t(shape.size()); ++d) inner *= shape[size_t(d)];
  const int64_t k = idx.numel(), dst = shape[size_t(dim)];
  RETORT_KERNEL(out.device(), index_add, s.dtype(), s.raw_data(), outer, k, inner, idx.data<int64_t>(), dst,
                out.raw_data());
  return out;
}

// scatter_add into zeros of `shape`: the adjoint of gather (no autograd of its own).
// bf16 accumulates in f32 (then rounds once), so repeated indices do not lose precision.
Tensor scatter_add_zeros(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  if (src.dtype() == DType::bf16) return scatter_add_zeros(shape, dim, index, src.to(DType::f32)).to(DType::bf16);
  Tensor out = Tensor::zeros(shape, src.dtype(), src.device());
  Tensor s = src.contiguous();
  Layout li = make_layout(index.shape(), index.strides()), lo = make_layout(out.shape(), out.strides());
  RETORT_KERNEL(out.device(), scatter_add, s.dtype(), s.raw_data(), index.data<int64_t>(), li, int(dim), out.raw_data(),
                lo, s.numel());
  return out;
}
}  // namespace

Tensor gt(const Tensor& a, double s) {
  RETORT_PROFILE_OP("gt", a);
  RETORT_CHECK(a.defined(), "gt: the operand is undefined");
  Tensor out = Tensor::empty(a.shape(), DType::u8, a.device());
  Layout l = make_layout(a.shape(), a.strides());
  RETORT_KERNEL(a.device(), gt_scalar, a.dtype(), a.raw_data(), l, s, out.data<uint8_t>(), out.numel());
  return out;
}

Tensor eq(const Tensor& a, const Tensor& b) {
  RETORT_PROFILE_OP("eq", a, b);
  check_same(a, b, "eq");
  Shape shape = broadcast_shapes(a.shape(), b.shape(), "eq");
  Tensor out = Tensor::empty(shape, DType::u8, a.device());
  Layout la = broadcast_layout(a, shape), lb = broadcast_layout(b, shape);
  RETORT_KERNEL(a.device(), eq, a.dtype(), a.raw_data(), la, b.raw_data(), lb, out.data<uint8_t>(), out.numel());
  return out;
}

Tensor where(const Tensor& mask, const Tensor& a_ac, const Tensor& b_ac) {
  const auto promoted = autocast::promote(a_ac, b_ac);
  const Tensor& a = promoted.first;
  const Tensor& b = promoted.second;
  RETORT_PROFILE_OP("where", mask, a, b);
  RETORT_CHECK(mask.defined() && a.defined() && b.defined(), "where: an operand is undefined");
  RETORT_CHECK(mask.dtype() == DType::u8, "where: the mask must be u8 (from gt/eq), got {}", mask.str());
  RETORT_CHECK(a.dtype() == b.dtype(), "where: dtype mismatch, a {} vs b {}", a.str(), b.str());
  RETORT_CHECK(a.device() == b.device() && mask.device() == a.device(),
               "where: device mismatch, mask {}, a {}, b {}", mask.str(), a.str(), b.str());
  Shape ab;
  try {
    ab = broadcast_shapes(broadcast_shapes(a.shape(), b.shape(), "where"), mask.shape(), "where");
  } catch (const Error&) {
    fail("where: shapes mask {}, a {} and b {} do not broadcast", shape_str(mask.shape()), shape_str(a.shape()),
         shape_str(b.shape()));
  }
  Tensor out = Tensor::empty(ab, a.dtype(), a.device());
  Layout lm = broadcast_layout(mask, ab), la = broadcast_layout(a, ab), lb = broadcast_layout(b, ab);
  const size_t es = dtype_size(a.dtype());
  RETORT_KERNEL(a.device(), where, es, mask.data<uint8_t>(), lm, a.raw_data(), la, b.raw_data(), lb, out.raw_data(),
                out.numel());
  if (needs_grad({&a, &b})) {
    Tensor m = mask.detach();
    Shape sa = a.shape(), sb = b.shape();
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record(out, "where", {a, b}, [m, sa, sb, ga, gb](const Tensor& g) {
      Tensor zero = Tensor::scalar(0.0, g.dtype(), g.device());
      return std::vector<Tensor>{ga ? sum_to(where(m, g, zero), sa) : Tensor(),
                                 gb ? sum_to(where(m, zero, g), sb) : Tensor()};
    });
  }
  return out;
}

Tensor masked_fill(const Tensor& a, const Tensor& mask, double value) {
  RETORT_PROFILE_OP("masked_fill", a, mask);
  RETORT_CHECK(a.defined() && mask.defined(), "masked_fill: an operand is undefined");
  RETORT_CHECK(mask.dtype() == DType::u8, "masked_fill: the mask must be u8 (from gt/eq), got {}", mask.str());
  bool fits = mask.dim() <= a.dim();
  for (int64_t i = 1; fits && i <= mask.dim(); ++i) {
    int64_t m = mask.shape()[size_t(mask.dim() - i)], s = a.shape()[size_t(a.dim() - i)];
    fits = m == s || m == 1;
  }
  RETORT_CHECK(fits, "masked_fill: mask {} does not broadcast to the input's shape {}", shape_str(mask.shape()),
               shape_str(a.shape()));
  return where(mask, Tensor::scalar(value, a.dtype(), a.device()), a);
}

Tensor index_select(const Tensor& a, int64_t dim_in, const Tensor& index) {
  RETORT_PROFILE_OP("index_select", a, index);
  RETORT_CHECK(a.defined(), "index_select: the input is undefined");
  check_index_tensor(index, a, "index_select");
  RETORT_CHECK(a.dim() >= 1, "index_select: the input must have at least 1 dim, got {}", a.str());
  RETORT_CHECK(index.dim() <= 1, "index_select: the index must be 1-d, got {}", index.str());
  const int64_t dim = wrap_dim(dim_in, a.dim(), "index_select");
  Tensor src = a.detach().contiguous(), idx = index.contiguous();
  Shape shape = a.shape();
  shape[size_t(dim)] = idx.numel();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= shape[size_t(d)];
  for (int64_t d = dim + 1; d < a.dim(); ++d) inner *= shape[size_t(d)];
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  const size_t es = dtype_size(a.dtype());
  const int64_t size = a.shape()[size_t(dim)], k = idx.numel();
  RETORT_KERNEL(a.device(), index_select, es, src.raw_data(), outer, size, inner, idx.data<int64_t>(), k,
                out.raw_data());
  if (needs_grad({&a})) {
    Shape in_shape = a.shape();
    record(out, "index_select", {a}, [in_shape, dim, idx](const Tensor& g) {
      return std::vector<Tensor>{index_add_zeros(in_shape, dim, idx, g)};
    });
  }
  return out;
}

Tensor gather(const Tensor& a, int64_t dim_in, const Tensor& index) {
  RETORT_PROFILE_OP("gather", a, index);
  RETORT_CHECK(a.defined(), "gather: the input is undefined");
  check_index_tensor(index, a, "gather");
  RETORT_CHECK(a.dim() >= 1, "gather: the input must have at least 1 dim, got {}", a.str());
  RETORT_CHECK(index.dim() == a.dim(), "gather: the index {} must have as many dims as the input {}", index.str(),
               a.str());
  const int64_t dim = wrap_dim(dim_in, a.dim(), "gather");
  for (int64_t d = 0; d < a.dim(); ++d)
    RETORT_CHECK(d == dim || index.shape()[size_t(d)] <= a.shape()[size_t(d)],
                 "gather: index {} is larger than the input {} in dim {}", shape_str(index.shape()),
                 shape_str(a.shape()), d);
  Tensor out = Tensor::empty(index.shape(), a.dtype(), a.device());
  Layout la = make_layout(a.shape(), a.strides()), li = make_layout(index.shape(), index.strides());
  const size_t es = dtype_size(a.dtype());
  RETORT_KERNEL(a.device(), gather, es, a.raw_data(), la, int(dim), index.data<int64_t>(), li, out.raw_data(),
                out.numel());
  if (needs_grad({&a})) {
    Shape in_shape = a.shape();
    Tensor idx = index.detach();
    record(out, "gather", {a}, [in_shape, dim, idx](const Tensor& g) {
      return std::vector<Tensor>{scatter_add_zeros(in_shape, dim, idx, g)};
    });
  }
  return out;
}

}  // namespace retort
