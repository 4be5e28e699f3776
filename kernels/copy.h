// Kernel family "copy": strided copies with dtype conversion, and fills.
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "core/layout.h"
#include "kernels/family.h"

namespace retort::kernels {
// dst[i] = convert(src[i]) for every linear index i of the (shared) shape; both strided.
using StridedCopy = void(void* dst, DType dst_type, const Layout& dst_layout, const void* src, DType src_type,
                         const Layout& src_layout);
// Contiguous fill of n elements.
using Fill = void(void* dst, DType type, int64_t n, double value);
}  // namespace retort::kernels

RETORT_DECLARE_KERNEL(strided_copy, StridedCopy)
RETORT_DECLARE_KERNEL(fill, Fill)
