// Kernel family "copy": strided copies with dtype conversion, fills, and in-place scalar adds.
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
// data[i] += value for n contiguous elements, in place: computed in double and rounded once to
// the dtype (integers exactly while below 2^53). A counter on the device advances with one
// launch and no host value baked in, so a CUDA graph's replays advance it too.
using AddScalarInPlace = void(void* data, DType type, int64_t n, double value);
}  // namespace retort::kernels

RETORT_DECLARE_KERNEL(strided_copy, StridedCopy)
RETORT_DECLARE_KERNEL(fill, Fill)
RETORT_DECLARE_KERNEL(add_scalar_in_place, AddScalarInPlace)
