// Kernel family "conv": 2-D convolution (NCHW, cross-correlation like PyTorch). The CPU
// reference runs im2col + OpenBLAS GEMM per group and col2im for the input gradient; the CUDA
// side calls cuDNN (kernels/cuda/conv.cu). f32 and f64 on the CPU (bf16 is computed in f32 by
// the caller); f32, f64 and bf16 on CUDA. conv2d_bias_act is the inference-only fused
// convolution + bias + residual + ReLU (engine/ops/conv_fused.cpp).
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "kernels/family.h"

namespace retort {

// All tensors contiguous: x [n, c, h, w], weight [oc, c / groups, kh, kw], y [n, oc, oh, ow];
// with channels_last (CUDA only; the CPU kernels refuse it) x, y and their gradients are NHWC
// memory [n, h, w, c] and the weight and its gradient KRSC memory [oc, kh, kw, c / groups].
// conv2d_bias_act is NCHW only.
struct Conv2dGeometry {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t oc = 0, kh = 0, kw = 0;
  int64_t oh = 0, ow = 0;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1;
  int64_t groups = 1;
  bool channels_last = false;
};

}  // namespace retort

namespace retort::kernels {
// y = conv(x, weight) (+ bias when not null).
using Conv2dForward = void(DType type, const Conv2dGeometry& g, const void* x, const void* weight, const void* bias,
                           void* y);
// gx = d(loss)/dx from gy = d(loss)/dy; gx is overwritten.
using Conv2dBackwardInput = void(DType type, const Conv2dGeometry& g, const void* gy, const void* weight, void* gx);
// gw = d(loss)/dweight; gw is overwritten.
using Conv2dBackwardWeight = void(DType type, const Conv2dGeometry& g, const void* x, const void* gy, void* gw);
// gb[c] = sum over n and pixels of gy[n, c, :] (gy contiguous [n, c, plane]).
using Conv2dBackwardBias = void(DType type, const void* gy, void* gb, int64_t n, int64_t c, int64_t plane);
// y = act(conv(x, weight) + bias + residual), forward only: bias [oc] (never null), residual
// contiguous like y or null, act = max(0, .) when relu (NaN passes, like relu) else identity.
// CPU: the plain convolution, then one pass adding bias and residual in that order and applying
// the ReLU. CUDA: cudnnConvolutionBiasActivationForward, or, where cuDNN refuses the fusion
// (NOT_SUPPORTED; said once on stderr), the plain convolution and one elementwise kernel.
using Conv2dBiasAct = void(DType type, const Conv2dGeometry& g, const void* x, const void* weight, const void* bias,
                           const void* residual, bool relu, void* y);
}  // namespace retort::kernels

RETORT_DECLARE_KERNEL(conv2d_forward, Conv2dForward)
RETORT_DECLARE_KERNEL(conv2d_backward_input, Conv2dBackwardInput)
RETORT_DECLARE_KERNEL(conv2d_backward_weight, Conv2dBackwardWeight)
RETORT_DECLARE_KERNEL(conv2d_backward_bias, Conv2dBackwardBias)
RETORT_DECLARE_KERNEL(conv2d_bias_act, Conv2dBiasAct)
