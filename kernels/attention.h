// Kernel family "attention": scaled dot-product attention, forward and backward. q [BH, Lq, D],
// k/v [BH, Lk, D], out [BH, Lq, D], all contiguous; lse [BH, Lq] (log-sum-exp of each query's
// scaled scores) is in the accumulation dtype (f64 for f64 inputs, f32 otherwise). Causal
// masking is top-left aligned like PyTorch: query i sees keys j <= i. The CPU reference
// computes the scores directly; the CUDA kernel is fused flash-style (kernels/cuda/attention.cu),
// head dim D up to kFlashMaxHeadDim.
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "kernels/family.h"

namespace retort::kernels {
using AttentionForward = void(DType type, const void* q, const void* k, const void* v, int64_t BH, int64_t Lq,
                              int64_t Lk, int64_t D, bool causal, double scale, void* out, void* lse);
// Recomputes the probabilities from q, k and lse. Gradient pointers may be nullptr.
using AttentionBackward = void(DType type, const void* grad_out, const void* q, const void* k, const void* v,
                               const void* out, const void* lse, int64_t BH, int64_t Lq, int64_t Lk, int64_t D,
                               bool causal, double scale, void* grad_q, void* grad_k, void* grad_v);
}  // namespace retort::kernels

RETORT_DECLARE_KERNEL(attention_forward, AttentionForward)
RETORT_DECLARE_KERNEL(attention_backward, AttentionBackward)

namespace retort::cuda {
constexpr int64_t kFlashMaxHeadDim = 128;  // the CUDA kernel's largest head dim
}
