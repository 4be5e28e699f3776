// CUDA max-with-index row reduction and scatter; same semantics as kernels/cpu/reduce_arg.h.
#pragma once
#include "kernels/cpu/reduce_arg.h"

namespace retort::cuda {
void max_rows(DType type, const void* in, void* values, int64_t* index, int64_t outer, int64_t inner);
void scatter_rows(DType type, const void* g, const int64_t* index, void* out, int64_t outer, int64_t inner);
}  // namespace retort::cuda
