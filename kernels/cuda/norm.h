// CUDA batch norm and layer norm kernels; same signatures and semantics as kernels/cpu/norm.h.
#pragma once
#include <cstdint>
#include "engine/dtype.h"

namespace retort::cuda {

void batch_norm_forward(DType type, const void* x, const void* weight, const void* bias, int64_t N, int64_t C,
                        int64_t S, bool use_batch_stats, double eps, void* mean, void* var, void* invstd, void* y);
void batch_norm_backward(DType type, const void* grad_y, const void* x, const void* weight, const void* mean,
                         const void* invstd, int64_t N, int64_t C, int64_t S, bool use_batch_stats, void* grad_x,
                         void* grad_weight, void* grad_bias);
void layer_norm_forward(DType type, const void* x, const void* weight, const void* bias, int64_t rows,
                        int64_t cols, double eps, void* y, void* mean, void* rstd);
void layer_norm_backward(DType type, const void* grad_y, const void* x, const void* weight, const void* mean,
                         const void* rstd, int64_t rows, int64_t cols, void* grad_x, void* grad_weight,
                         void* grad_bias);

}  // namespace retort::cuda
