// Shared planning for reductions: which dims reduce, the output shapes, and the input
// rearranged as contiguous [outer, inner] rows (or, for CPU sums whose reduced dims lead a
// contiguous input, left as it is: [inner, outer] columns).
#pragma once
#include <vector>
#include "engine/tensor.h"
#include "kernels/reduce.h"

namespace retort {

struct ReducePlan {
  Shape out_shape;   // result shape (keepdim applied)
  Shape keep_shape;  // result shape with reduced dims kept as 1
  int64_t outer = 1, inner = 1;
  Tensor rows;       // detached, contiguous, reduced dims last; reduced dims first if `columns`
  bool columns = false;
};

// allow_columns: a sum on the CPU may take a contiguous input whose reduced dims are its leading
// ones as it is (columns = true; reduce_rows then sums columns, with the same bits) instead of
// a transposed copy. A Linear's bias gradient, the sum of [N, out] over N, is such a sum.
ReducePlan plan_reduction(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim, const char* op,
                          bool allow_columns = false);
Tensor reduce_rows(ReduceOp op, const ReducePlan& plan, DType dtype, Device device);

}  // namespace retort
