// CUDA pooling kernels; same semantics and geometry as kernels/cpu/pool.h.
#pragma once
#include "kernels/cpu/pool.h"

namespace retort::cuda {
void max_pool2d_forward(DType type, const Pool2dGeometry& g, const void* x, void* y, int64_t* idx);
void max_pool2d_backward(DType type, const Pool2dGeometry& g, const void* gy, const int64_t* idx, void* gx);
void avg_pool2d_forward(DType type, const Pool2dGeometry& g, bool count_include_pad, const void* x, void* y);
void avg_pool2d_backward(DType type, const Pool2dGeometry& g, bool count_include_pad, const void* gy, void* gx);
void adaptive_avg_pool2d_forward(DType type, const Pool2dGeometry& g, const void* x, void* y);
void adaptive_avg_pool2d_backward(DType type, const Pool2dGeometry& g, const void* gy, void* gx);
}  // namespace retort::cuda
