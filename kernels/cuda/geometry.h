// CUDA geometry kernels; same semantics as kernels/cpu/geometry.h.
#pragma once
#include "kernels/cpu/geometry.h"

namespace retort::cuda {
void l2_normalize_forward(DType type, const void* x, void* y, void* norm, int64_t rows, int64_t n, double eps);
void l2_normalize_backward(DType type, const void* y, const void* g, const void* norm, void* dx, int64_t rows,
                           int64_t n, double eps);
void pairwise_sq_dist_forward(DType type, const void* a, const void* b, void* out, int64_t N, int64_t M, int64_t D);
void pairwise_sq_dist_grad(DType type, const void* g, const void* a, const void* b, void* ga, int64_t N, int64_t M,
                           int64_t D);
}  // namespace retort::cuda
