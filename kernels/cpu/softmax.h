// CPU reference kernels for softmax / log_softmax over the rows of a contiguous [rows, n]
// block (the op moves the softmax dim last), forward and fused backward.
#pragma once
#include <cstdint>
#include "engine/dtype.h"

namespace retort::cpu {
// y = softmax(x) per row (or log_softmax when `log`), max-subtracted for stability.
void softmax_forward(DType type, const void* x, void* y, int64_t rows, int64_t n, bool log);
// dx from the forward output y and upstream g:
//   softmax:     dx = y * (g - sum(g * y))
//   log_softmax: dx = g - exp(y) * sum(g)
void softmax_backward(DType type, const void* y, const void* g, void* dx, int64_t rows, int64_t n, bool log);
}  // namespace retort::cpu
