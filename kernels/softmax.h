// Kernel family "softmax": softmax / log_softmax over the rows of a contiguous [rows, n] block
// (the op moves the softmax dim last), forward and fused backward.
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "kernels/family.h"

namespace retort::kernels {
// y = softmax(x) per row (or log_softmax when `log`), max-subtracted for stability.
using SoftmaxForward = void(DType type, const void* x, void* y, int64_t rows, int64_t n, bool log);
// dx from the forward output y and upstream g:
//   softmax:     dx = y * (g - sum(g * y))
//   log_softmax: dx = g - exp(y) * sum(g)
using SoftmaxBackward = void(DType type, const void* y, const void* g, void* dx, int64_t rows, int64_t n, bool log);
}  // namespace retort::kernels

RETORT_DECLARE_KERNEL(softmax_forward, SoftmaxForward)
RETORT_DECLARE_KERNEL(softmax_backward, SoftmaxBackward)
