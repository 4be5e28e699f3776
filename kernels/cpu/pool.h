// 2-D pooling (NCHW, planes = N * C) geometry shared by CPU and CUDA, and the CPU kernels:
// max (indices saved for backward), average (count_include_pad) and adaptive average
// (PyTorch's window rule: start = floor(o * in / out), end = ceil((o + 1) * in / out)).
#pragma once
#include <cstdint>
#include "engine/dtype.h"

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

namespace retort::cpu {
// idx[p, oy, ox] = iy * w + ix of the (first) maximum; NaN propagates like PyTorch.
void max_pool2d_forward(DType type, const Pool2dGeometry& g, const void* x, void* y, int64_t* idx);
void max_pool2d_backward(DType type, const Pool2dGeometry& g, const void* gy, const int64_t* idx, void* gx);
void avg_pool2d_forward(DType type, const Pool2dGeometry& g, bool count_include_pad, const void* x, void* y);
void avg_pool2d_backward(DType type, const Pool2dGeometry& g, bool count_include_pad, const void* gy, void* gx);
void adaptive_avg_pool2d_forward(DType type, const Pool2dGeometry& g, const void* x, void* y);
void adaptive_avg_pool2d_backward(DType type, const Pool2dGeometry& g, const void* gy, void* gx);
}  // namespace retort::cpu
