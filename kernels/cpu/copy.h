// CPU reference kernels for strided copies with dtype conversion, and fills.
#pragma once
#include "engine/dtype.h"
#include "kernels/layout.h"

namespace retort::cpu {

// dst[i] = convert(src[i]) for every linear index i of the (shared) shape; both strided.
void strided_copy(void* dst, DType dst_type, const Layout& dst_layout, const void* src, DType src_type,
                  const Layout& src_layout);
// Contiguous fill of n elements.
void fill(void* dst, DType type, int64_t n, double value);

}  // namespace retort::cpu
