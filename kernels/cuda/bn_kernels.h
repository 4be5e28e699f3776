// The CUDA batch-norm implementations behind retort::cuda::batch_norm_forward/backward
// (kernels/cuda/norm.cu picks one): for NCHW, full chip (bn_chip_forward.cu,
// bn_chip_backward.cu: many blocks per channel, the default) or one block per channel
// (bn_block.cu), see batch_norm_kernels() in kernels/norm.h; for channels-last, bn_nhwc.cu.
// Each has kernels/norm.h's batch-norm semantics for its one layout (no channels_last flag).
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "kernels/norm.h"

namespace retort::cuda {
using BatchNormForwardIn = void(DType type, const void* x, const void* weight, const void* bias, int64_t N, int64_t C,
                                int64_t S, bool use_batch_stats, double eps, const kernels::BnEpilogue& epi,
                                void* mean, void* var, void* invstd, void* y);
using BatchNormBackwardIn = void(DType type, const void* grad_y, const void* x, const void* weight, const void* mean,
                                 const void* invstd, int64_t N, int64_t C, int64_t S, bool use_batch_stats,
                                 const void* relu_y, void* grad_x, void* grad_weight, void* grad_bias,
                                 void* grad_residual);

BatchNormForwardIn batch_norm_forward_chip;
BatchNormBackwardIn batch_norm_backward_chip;
BatchNormForwardIn batch_norm_forward_block;
BatchNormBackwardIn batch_norm_backward_block;
BatchNormForwardIn batch_norm_forward_nhwc;
BatchNormBackwardIn batch_norm_backward_nhwc;
}  // namespace retort::cuda
