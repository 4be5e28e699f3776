// CPU reference kernels for scaled dot-product attention. q [BH, Lq, D], k/v [BH, Lk, D],
// out [BH, Lq, D], all contiguous; lse [BH, Lq] (log-sum-exp of each query's scaled scores)
// is in the accumulation dtype (f64 for f64 inputs, f32 otherwise). Causal masking is
// top-left aligned like PyTorch: query i sees keys j <= i.
#pragma once
#include <cstdint>
#include "engine/dtype.h"

namespace retort::cpu {

void attention_forward(DType type, const void* q, const void* k, const void* v, int64_t BH, int64_t Lq, int64_t Lk,
                       int64_t D, bool causal, double scale, void* out, void* lse);
// Recomputes the probabilities from q, k and lse. Gradient pointers may be nullptr.
void attention_backward(DType type, const void* grad_out, const void* q, const void* k, const void* v,
                        const void* out, const void* lse, int64_t BH, int64_t Lq, int64_t Lk, int64_t D, bool causal,
                        double scale, void* grad_q, void* grad_k, void* grad_v);

}  // namespace retort::cpu
