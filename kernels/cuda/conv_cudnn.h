// CUDA convolution through cuDNN; same semantics and geometry as kernels/cpu/conv.h.
#pragma once
#include "kernels/cpu/conv.h"

namespace retort::cuda {
void conv2d_forward(DType type, const Conv2dGeometry& g, const void* x, const void* weight, const void* bias, void* y);
void conv2d_backward_input(DType type, const Conv2dGeometry& g, const void* gy, const void* weight, void* gx);
void conv2d_backward_weight(DType type, const Conv2dGeometry& g, const void* x, const void* gy, void* gw);
void conv2d_backward_bias(DType type, const void* gy, void* gb, int64_t n, int64_t c, int64_t plane);
}  // namespace retort::cuda
