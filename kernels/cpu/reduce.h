// CPU reference reduction kernels over the inner dimension of a contiguous [outer, inner] block.
#pragma once
#include "engine/dtype.h"

namespace retort {
enum class ReduceOp { sum, max };
}

namespace retort::cpu {
// out[o] = reduce_{i < inner} in[o * inner + i]; accumulates in double for f64, float otherwise
// (pairwise for sums, so long rows keep their precision).
void reduce_rows(ReduceOp op, DType type, const void* in, void* out, int64_t outer, int64_t inner);
}  // namespace retort::cpu
