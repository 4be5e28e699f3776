// CPU reference kernels for index-producing row reductions (max with its first index, argmax)
// and the matching scatter used by max's backward. Rows are a contiguous [outer, inner] block.
#pragma once
#include <cstdint>
#include "engine/dtype.h"

namespace retort::cpu {
// index[o] = first i maximising in[o * inner + i] (a NaN counts as larger than any number, the
// first NaN wins); values[o] = that element when `values` is not null. inner must be > 0.
void max_rows(DType type, const void* in, void* values, int64_t* index, int64_t outer, int64_t inner);
// out[o * inner + i] = (i == index[o]) ? g[o] : 0.
void scatter_rows(DType type, const void* g, const int64_t* index, void* out, int64_t outer, int64_t inner);
}  // namespace retort::cpu
