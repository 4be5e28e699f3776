// CUDA fused optimizer updates; same semantics as kernels/cpu/optim.h.
#pragma once
#include "kernels/cpu/optim.h"

namespace retort::cuda {
void sgd_update(DType type, void* param, const void* grad, void* momentum_buf, int64_t n, const SgdHyper& h);
void adamw_update(DType type, void* param, const void* grad, void* exp_avg, void* exp_avg_sq, int64_t n,
                  const AdamWHyper& h);
}  // namespace retort::cuda
