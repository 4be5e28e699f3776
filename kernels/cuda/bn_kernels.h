// The two CUDA batch-norm implementations behind retort::cuda::batch_norm_forward/backward
// (kernels/cuda/norm.cu picks one, see batch_norm_kernels() in kernels/norm.h): full chip
// (bn_chip_forward.cu, bn_chip_backward.cu: many blocks per channel) and one block per channel
// (bn_block.cu). Each has the signature, and semantics, of kernels/norm.h's batch-norm functions.
#pragma once
#include "kernels/norm.h"

namespace retort::cuda {
kernels::BatchNormForward batch_norm_forward_chip;
kernels::BatchNormBackward batch_norm_backward_chip;
kernels::BatchNormForward batch_norm_forward_block;
kernels::BatchNormBackward batch_norm_backward_block;
}  // namespace retort::cuda
