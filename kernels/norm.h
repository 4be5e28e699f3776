// Kernel family "norm": batch norm (per channel) and layer norm (per row). All tensors are
// dense. Statistics (mean, var, invstd/rstd) and weight/bias gradients are in the accumulation
// dtype: f64 for f64 inputs, f32 otherwise. Layer norm's weight/bias are in the input dtype;
// batch norm's are in the accumulation dtype (a bf16 activation is normalised with f32
// parameters and written in bf16, as autocast wants it). weight/bias may be nullptr (no affine
// transform); any gradient pointer may be nullptr (not wanted).
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "kernels/family.h"

namespace retort::kernels {
// What batch norm's forward may add after the normalisation, in one pass:
//   y = relu?(bn(x) + residual?)      (relu as the relu op: x < 0 ? 0 : x, NaN passes)
// residual (x's dtype and memory order) may be null. Its backward then first takes the ReLU's
// mask from the output: g' = y > 0 ? g : 0, uses g' as the normalisation's output gradient and
// writes it as the residual's gradient when asked.
struct BnEpilogue {
  const void* residual = nullptr;
  bool relu = false;
};

// x, y: [N, C, S] in memory, or [N, S, C] when channels_last (NHWC, S = H*W). use_batch_stats:
// mean and var (biased) are computed from x and written; otherwise mean and var are read (the
// running statistics). invstd = 1/sqrt(var + eps) is written.
using BatchNormForward = void(DType type, const void* x, const void* weight, const void* bias, int64_t N, int64_t C,
                              int64_t S, bool channels_last, bool use_batch_stats, double eps, const BnEpilogue& epi,
                              void* mean, void* var, void* invstd, void* y);
// Closed-form backward; with use_batch_stats the statistics' dependence on x is included
// (dx = w*invstd/M * (M*g - sum(g) - xhat*sum(g*xhat)), M = N*S), otherwise dx = g*w*invstd.
// grad_y and grad_x are in x's memory order. relu_y: the forward's output when it applied a
// ReLU (its mask is taken from it), else null; grad_residual (may be null): where g' goes.
using BatchNormBackward = void(DType type, const void* grad_y, const void* x, const void* weight, const void* mean,
                               const void* invstd, int64_t N, int64_t C, int64_t S, bool channels_last,
                               bool use_batch_stats, const void* relu_y, void* grad_x, void* grad_weight,
                               void* grad_bias, void* grad_residual);
// x, y: [rows, cols], normalised over cols; mean and rstd: [rows].
using LayerNormForward = void(DType type, const void* x, const void* weight, const void* bias, int64_t rows,
                              int64_t cols, double eps, void* y, void* mean, void* rstd);
using LayerNormBackward = void(DType type, const void* grad_y, const void* x, const void* weight, const void* mean,
                               const void* rstd, int64_t rows, int64_t cols, void* grad_x, void* grad_weight,
                               void* grad_bias);
}  // namespace retort::kernels

RETORT_DECLARE_KERNEL(batch_norm_forward, BatchNormForward)
RETORT_DECLARE_KERNEL(batch_norm_backward, BatchNormBackward)
RETORT_DECLARE_KERNEL(layer_norm_forward, LayerNormForward)
RETORT_DECLARE_KERNEL(layer_norm_backward, LayerNormBackward)

namespace retort::cuda {
// Which CUDA batch-norm kernels batch_norm_forward/backward run: full_chip (the default; many
// blocks per channel, kernels/cuda/bn_chip_*.cu, deterministic: the same input gives the same
// bits on the same GPU) or block_per_channel (the earlier one block per channel,
// kernels/cuda/bn_block.cu). RETORT_CUDA_BN=block (or =chip) picks it, read once at the first
// use; set_batch_norm_kernels switches it afterwards (tests). Defined in CUDA builds only: call
// through RETORT_CUDA_CALL (kernels/cuda/cuda_api.h).
enum class BatchNormKernels { full_chip, block_per_channel };
BatchNormKernels batch_norm_kernels();
void set_batch_norm_kernels(BatchNormKernels kernels);
}  // namespace retort::cuda
