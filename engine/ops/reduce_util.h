// Shared planning for reductions: which dims reduce, the output shapes, and the input
// rearranged as contiguous [outer, inner] rows.
#pragma once
#include <vector>
#include "engine/tensor.h"
#include "kernels/cpu/reduce.h"

namespace retort {

struct ReducePlan {
  Shape out_shape;   // result shape (keepdim applied)
  Shape keep_shape;  // result shape with reduced dims kept as 1
  int64_t outer = 1, inner = 1;
  Tensor rows;       // detached, contiguous, reduced dims last
};

ReducePlan plan_reduction(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim, const char* op);
Tensor reduce_rows(ReduceOp op, const ReducePlan& plan, DType dtype, Device device);

}  // namespace retort
