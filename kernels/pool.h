// Kernel family "pool": 2-D pooling (NCHW, planes = N * C): max (indices saved for backward),
// average (count_include_pad) and adaptive average (PyTorch's window rule: start =
// floor(o * in / out), end = ceil((o + 1) * in / out)).
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "kernels/family.h"

namespace retort {

// All tensors contiguous: x [planes, h, w], y [planes, oh, ow]. Kernel, stride and padding
// are unused by the adaptive pool.
struct Pool2dGeometry {
  int64_t planes = 0, h = 0, w = 0, oh = 0, ow = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
};

// Adaptive pooling window [start, end) of output o for in -> out.
inline constexpr int64_t adaptive_start(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
inline constexpr int64_t adaptive_end(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }

}  // namespace retort

namespace retort::kernels {
// idx[p, oy, ox] = iy * w + ix of the (first) maximum; NaN propagates like PyTorch.
using MaxPool2dForward = void(DType type, const Pool2dGeometry& g, const void* x, void* y, int64_t* idx);
using MaxPool2dBackward = void(DType type, const Pool2dGeometry& g, const void* gy, const int64_t* idx, void* gx);
using AvgPool2dForward = void(DType type, const Pool2dGeometry& g, bool count_include_pad, const void* x, void* y);
using AvgPool2dBackward = void(DType type, const Pool2dGeometry& g, bool count_include_pad, const void* gy, void* gx);
using AdaptiveAvgPool2dForward = void(DType type, const Pool2dGeometry& g, const void* x, void* y);
using AdaptiveAvgPool2dBackward = void(DType type, const Pool2dGeometry& g, const void* gy, void* gx);
}  // namespace retort::kernels

RETORT_DECLARE_KERNEL(max_pool2d_forward, MaxPool2dForward)
RETORT_DECLARE_KERNEL(max_pool2d_backward, MaxPool2dBackward)
RETORT_DECLARE_KERNEL(avg_pool2d_forward, AvgPool2dForward)
RETORT_DECLARE_KERNEL(avg_pool2d_backward, AvgPool2dBackward)
RETORT_DECLARE_KERNEL(adaptive_avg_pool2d_forward, AdaptiveAvgPool2dForward)
RETORT_DECLARE_KERNEL(adaptive_avg_pool2d_backward, AdaptiveAvgPool2dBackward)
