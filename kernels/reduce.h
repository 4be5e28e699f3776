// Kernel family "reduce": reductions over the inner dimension of a contiguous [outer, inner]
// block (sum, max; max with its first index), the column sum over its leading dimension, and
// the scatter that max's backward uses.
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "kernels/family.h"

namespace retort {
enum class ReduceOp { sum, max };
}

namespace retort::kernels {
// out[o] = reduce_{i < inner} in[o * inner + i]; accumulates in double for f64, float otherwise
// (pairwise for sums, so long rows keep their precision).
using ReduceRows = void(ReduceOp op, DType type, const void* in, void* out, int64_t outer, int64_t inner);
// index[o] = first i maximising in[o * inner + i] (a NaN counts as larger than any number, the
// first NaN wins); values[o] = that element when `values` is not null. inner must be > 0.
using MaxRows = void(DType type, const void* in, void* values, int64_t* index, int64_t outer, int64_t inner);
// out[o * inner + i] = (i == index[o]) ? g[o] : 0.
using ScatterRows = void(DType type, const void* g, const int64_t* index, void* out, int64_t outer, int64_t inner);
}  // namespace retort::kernels

RETORT_DECLARE_KERNEL(reduce_rows, ReduceRows)
RETORT_DECLARE_KERNEL(max_rows, MaxRows)
RETORT_DECLARE_KERNEL(scatter_rows, ScatterRows)

namespace retort::cpu {
// CPU only (CUDA sums a transposed copy by rows): out[c] = sum_{r < rows} in[r * cols + c], the
// sum over the leading dim of a contiguous [rows, cols] block, bit for bit reduce_rows(sum) of
// its transpose (same pairwise order).
void sum_cols(DType type, const void* in, void* out, int64_t rows, int64_t cols);
}  // namespace retort::cpu
