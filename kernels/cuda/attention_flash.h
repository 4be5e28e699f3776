// CUDA fused (flash-style) scaled dot-product attention; same signatures and semantics as
// kernels/cpu/attention.h. Head dim D up to kFlashMaxHeadDim.
#pragma once
#include <cstdint>
#include "engine/dtype.h"

namespace retort::cuda {

constexpr int64_t kFlashMaxHeadDim = 128;

void attention_forward(DType type, const void* q, const void* k, const void* v, int64_t BH, int64_t Lq, int64_t Lk,
                       int64_t D, bool causal, double scale, void* out, void* lse);
void attention_backward(DType type, const void* grad_out, const void* q, const void* k, const void* v,
                        const void* out, const void* lse, int64_t BH, int64_t Lq, int64_t Lk, int64_t D, bool causal,
                        double scale, void* grad_q, void* grad_k, void* grad_v);

}  // namespace retort::cuda
