// CUDA softmax / log_softmax rows; same semantics as kernels/cpu/softmax.h.
#pragma once
#include "kernels/cpu/softmax.h"

namespace retort::cuda {
void softmax_forward(DType type, const void* x, void* y, int64_t rows, int64_t n, bool log);
void softmax_backward(DType type, const void* y, const void* g, void* dx, int64_t rows, int64_t n, bool log);
}  // namespace retort::cuda
