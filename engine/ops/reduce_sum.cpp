// sum over dims (keepdim): the reduction every backward needs. Moves the reduced dims last,
// then reduces contiguous rows on CPU or CUDA; on the CPU, a contiguous input whose reduced dims
// lead is summed by columns where it lies (the same bits, no transposed copy).
#include "engine/autocast.h"
#include <algorithm>
#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/ops/reduce_util.h"
#include "kernels/reduce.h"
#include "kernels/cuda/cuda_api.h"
#include "engine/kernel_call.h"

namespace retort {

ReducePlan plan_reduction(const Tensor& a, const std::vector<int64_t>& dims_in, bool keepdim, const char* op,
                          bool allow_columns) {
  ReducePlan p;
  std::vector<bool> reduced(size_t(a.dim()), dims_in.empty());
  for (int64_t d : dims_in) {
    int64_t w = wrap_dim(d, a.dim(), op);
    RETORT_CHECK(!reduced[size_t(w)] || dims_in.empty(), "{}: dim {} listed twice", op, d);
    reduced[size_t(w)] = true;
  }
  std::vector<int64_t> perm;
  p.outer = 1;
  p.inner = 1;
  for (int64_t d = 0; d < a.dim(); ++d)
    if (!reduced[size_t(d)]) {
      perm.push_back(d);
      p.outer *= a.shape()[size_t(d)];
      p.out_shape.push_back(a.shape()[size_t(d)]);
      p.keep_shape.push_back(a.shape()[size_t(d)]);
    } else {
      p.keep_shape.push_back(1);
    }
  for (int64_t d = 0; d < a.dim(); ++d)
    if (reduced[size_t(d)]) {
      perm.push_back(d);
      p.inner *= a.shape()[size_t(d)];
    }
  if (keepdim) p.out_shape = p.keep_shape;
  NoGradGuard ng;
  Tensor permuted = a.detach().permute(perm);
  // Reduced dims leading (0..k-1 reduced, k.. kept): memory already holds [inner, outer].
  int64_t k = 0;
  while (k < a.dim() && reduced[size_t(k)]) ++k;
  bool leading = k > 0 && k < a.dim();
  for (int64_t d = k; d < a.dim(); ++d) leading = leading && !reduced[size_t(d)];
  if (allow_columns && leading && a.device().is_cpu() && a.is_contiguous() && !permuted.is_contiguous()) {
    p.rows = a.detach();
    p.columns = true;
    return p;
  }
  p.rows = permuted.contiguous();
  return p;
}

Tensor reduce_rows(ReduceOp op, const ReducePlan& p, DType dtype, Device device) {
  Tensor out = Tensor::empty(p.out_shape, dtype, device);
  if (p.columns) {
    RETORT_CHECK(op == ReduceOp::sum && device.is_cpu(), "reduce: a column plan serves CPU sums only");
    cpu::sum_cols(dtype, p.rows.raw_data(), out.raw_data(), p.inner, p.outer);
  } else RETORT_KERNEL(device, reduce_rows, op, dtype, p.rows.raw_data(), out.raw_data(), p.outer, p.inner);
  return out;
}

Tensor sum(const Tensor& a_ac, const std::vector<int64_t>& dims, bool keepdim) {
  const Tensor a = autocast::to_f32(a_ac);
  RETORT_PROFILE_OP("sum", a);
  RETORT_CHECK(a.defined(), "sum: undefined operand");
  ReducePlan p = plan_reduction(a, dims, keepdim, "sum", true);
  Tensor out = reduce_rows(ReduceOp::sum, p, a.dtype(), a.device());
  if (needs_grad({&a})) {
    Shape keep = p.keep_shape, in_shape = a.shape();
    record(out, "sum", {a}, [keep, in_shape](const Tensor& g) {
      return std::vector<Tensor>{g.reshape(keep).expand(in_shape)};
    });
  }
  return out;
}

}  // namespace retort
