// Reductions beyond sum: mean, max (gradient to the first maximal element), var and argmax.
// All plan through plan_reduction (reduced dims moved last, contiguous [outer, inner] rows).
#include "engine/autocast.h"
#include <algorithm>
#include <limits>
#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/ops/reduce_util.h"
#include "kernels/reduce.h"
#include "kernels/cuda/cuda_api.h"
#include "engine/kernel_call.h"

namespace retort {
namespace {
// The permutation plan_reduction applied (kept dims, then reduced dims) and its inverse.
struct ReducePerm {
  std::vector<int64_t> perm, inverse;
  Shape permuted_shape;
};
ReducePerm reduction_perm(const Tensor& a, const std::vector<int64_t>& dims, const char* op) {
  std::vector<bool> reduced(size_t(a.dim()), dims.empty());
  for (int64_t d : dims) reduced[size_t(wrap_dim(d, a.dim(), op))] = true;
  ReducePerm r;
  for (int pass = 0; pass < 2; ++pass)
    for (int64_t d = 0; d < a.dim(); ++d)
      if (reduced[size_t(d)] == (pass == 1)) r.perm.push_back(d);
  r.inverse.resize(r.perm.size());
  for (size_t i = 0; i < r.perm.size(); ++i) {
    r.inverse[size_t(r.perm[i])] = int64_t(i);
    r.permuted_shape.push_back(a.shape()[size_t(r.perm[i])]);
  }
  return r;
}

void check_float_input(const Tensor& a, const char* op) {
  RETORT_CHECK(a.defined(), "{}: undefined operand", op);
  RETORT_CHECK(is_floating(a.dtype()), "{}: expects a floating tensor, got {}", op, a.str());
}

// Values and first-max indices of each row of the plan; `values` may be skipped.
void run_max_rows(const ReducePlan& p, DType dtype, Device device, Tensor* values, Tensor& index) {
  index = Tensor::empty({p.outer}, DType::i64, device);
  void* vp = values ? values->raw_data() : nullptr;
  RETORT_KERNEL(device, max_rows, dtype, p.rows.raw_data(), vp, index.data<int64_t>(), p.outer, p.inner);
}
}  // namespace

Tensor mean(const Tensor& a_ac, const std::vector<int64_t>& dims, bool keepdim) {
  const Tensor a = autocast::to_f32(a_ac);
  RETORT_PROFILE_OP("mean", a);
  check_float_input(a, "mean");
  ReducePlan p = plan_reduction(a, dims, keepdim, "mean", true);
  Tensor total = reduce_rows(ReduceOp::sum, p, a.dtype(), a.device());
  const double inv = p.inner > 0 ? 1.0 / double(p.inner) : std::numeric_limits<double>::quiet_NaN();
  Tensor out;
  {
    NoGradGuard ng;
    out = mul(total, inv);
  }
  if (needs_grad({&a})) {
    Shape keep = p.keep_shape, in_shape = a.shape();
    record(out, "mean", {a}, [keep, in_shape, inv](const Tensor& g) {
      return std::vector<Tensor>{mul(g.reshape(keep), inv).expand(in_shape)};
    });
  }
  return out;
}

Tensor max(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  RETORT_PROFILE_OP("max", a);
  check_float_input(a, "max");
  ReducePlan p = plan_reduction(a, dims, keepdim, "max");
  RETORT_CHECK(p.inner > 0, "max: cannot reduce over an empty dim of {}", a.str());
  Tensor out = Tensor::empty(p.out_shape, a.dtype(), a.device());
  Tensor index;
  run_max_rows(p, a.dtype(), a.device(), &out, index);
  if (needs_grad({&a})) {
    ReducePerm rp = reduction_perm(a, dims, "max");
    int64_t outer = p.outer, inner = p.inner;
    record(out, "max", {a}, [rp, index, outer, inner](const Tensor& g_in) {
      Tensor g = g_in.contiguous();
      Tensor rows = Tensor::empty({outer, inner}, g.dtype(), g.device());
      RETORT_KERNEL(g.device(), scatter_rows, g.dtype(), g.raw_data(), index.data<int64_t>(),
                    rows.raw_data(), outer, inner);
      return std::vector<Tensor>{rows.view(rp.permuted_shape).permute(rp.inverse)};
    });
  }
  return out;
}

Tensor var(const Tensor& a_ac, const std::vector<int64_t>& dims, bool keepdim, bool unbiased) {
  const Tensor a = autocast::to_f32(a_ac);
  RETORT_PROFILE_OP("var", a);
  check_float_input(a, "var");
  ReducePlan p = plan_reduction(a, dims, keepdim, "var");  // validates dims, gives the count
  const int64_t n = p.inner;
  const double denom = double(unbiased ? n - 1 : n);
  const double scale = denom > 0 ? 1.0 / denom : std::numeric_limits<double>::quiet_NaN();
  // Two-pass: centred squares summed, so large means do not cancel precision away.
  Tensor centred = sub(a, mean(a, dims, true));
  return mul(sum(mul(centred, centred), dims, keepdim), scale);
}

Tensor argmax(const Tensor& a, int64_t dim, bool keepdim) {
  RETORT_PROFILE_OP("argmax", a);
  check_float_input(a, "argmax");
  ReducePlan p = plan_reduction(a, {dim}, keepdim, "argmax");
  RETORT_CHECK(p.inner > 0, "argmax: dim {} of {} is empty", dim, a.str());
  Tensor index;
  run_max_rows(p, a.dtype(), a.device(), nullptr, index);
  return index.view(p.out_shape);
}

}  // namespace retort
