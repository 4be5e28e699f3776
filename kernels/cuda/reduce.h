// CUDA row reductions; same semantics as kernels/cpu/reduce.h.
#pragma once
#include "kernels/cpu/reduce.h"

namespace retort::cuda {
void reduce_rows(ReduceOp op, DType type, const void* in, void* out, int64_t outer, int64_t inner);
}  // namespace retort::cuda
