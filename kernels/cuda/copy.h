// CUDA strided copy / cast / fill; same semantics as kernels/cpu/copy.h.
#pragma once
#include "engine/dtype.h"
#include "kernels/layout.h"

namespace retort::cuda {
void strided_copy(void* dst, DType dst_type, const Layout& dst_layout, const void* src, DType src_type,
                  const Layout& src_layout);
void fill(void* dst, DType type, int64_t n, double value);
}  // namespace retort::cuda
