// CPU reference reduction kernels over the inner dimension of a contiguous [outer, inner] block,
// and the column sum over its leading dimension.
#pragma once
#include "engine/dtype.h"

namespace retort {
enum class ReduceOp { sum, max };
}

namespace retort::cpu {
// out[o] = reduce_{i < inner} in[o * inner + i]; accumulates in double for f64, float otherwise
// (pairwise for sums, so long rows keep their precision).
void reduce_rows(ReduceOp op, DType type, const void* in, void* out, int64_t outer, int64_t inner);
// out[c] = sum_{r < rows} in[r * cols + c]: the sum over the leading dim of a contiguous
// [rows, cols] block, bit for bit reduce_rows(sum) of its transpose (same pairwise order).
void sum_cols(DType type, const void* in, void* out, int64_t rows, int64_t cols);
}  // namespace retort::cpu
