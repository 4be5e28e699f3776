// 2-D convolution (NCHW, cross-correlation like PyTorch) geometry shared by the CPU and CUDA
// backends, and the CPU kernels: im2col + OpenBLAS GEMM per group, col2im for the input gradient.
#pragma once
#include <cstdint>
#include "engine/dtype.h"

namespace retort {

// All tensors contiguous: x [n, c, h, w], weight [oc, c / groups, kh, kw], y [n, oc, oh, ow].
struct Conv2dGeometry {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t oc = 0, kh = 0, kw = 0;
  int64_t oh = 0, ow = 0;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1;
  int64_t groups = 1;
};

}  // namespace retort

namespace retort::cpu {
// f32 and f64 (bf16 is computed in f32 by the caller). bias may be null.
void conv2d_forward(DType type, const Conv2dGeometry& g, const void* x, const void* weight, const void* bias, void* y);
// gx = d(loss)/dx from gy = d(loss)/dy; gx is overwritten.
void conv2d_backward_input(DType type, const Conv2dGeometry& g, const void* gy, const void* weight, void* gx);
// gw = d(loss)/dweight; gw is overwritten.
void conv2d_backward_weight(DType type, const Conv2dGeometry& g, const void* x, const void* gy, void* gw);
// gb[c] = sum over n and pixels of gy[n, c, :] (gy contiguous [n, c, plane]).
void conv2d_backward_bias(DType type, const void* gy, void* gb, int64_t n, int64_t c, int64_t plane);
}  // namespace retort::cpu
