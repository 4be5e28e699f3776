// CUDA loss kernels; same semantics as kernels/cpu/loss.h (bad_row is device memory here).
#pragma once
#include "kernels/cpu/loss.h"

namespace retort::cuda {
void cross_entropy_forward(DType type, const void* logits, const int64_t* target, void* loss, void* lse,
                           int64_t rows, int64_t classes, double smoothing, int64_t* bad_row);
void cross_entropy_backward(DType type, const void* logits, const int64_t* target, const void* lse,
                            const void* grad, void* dx, int64_t rows, int64_t classes, double smoothing);
void pointwise_loss_forward(PointwiseLoss kind, DType type, const void* a, const void* b, void* out, int64_t n,
                            double beta);
void pointwise_loss_backward(PointwiseLoss kind, DType type, const void* a, const void* b, const void* g, void* ga,
                             void* gb, int64_t n, double beta);
}  // namespace retort::cuda
