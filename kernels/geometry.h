// Kernel family "geometry": row-wise L2 normalisation ([rows, n] contiguous, the op moves the
// normalised dim last) and pairwise squared Euclidean distances.
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "kernels/family.h"

namespace retort::kernels {
// norm[r] = ||x_r||_2 (float for f32/bf16, double for f64); y_r = x_r / max(norm[r], eps).
using L2NormalizeForward = void(DType type, const void* x, void* y, void* norm, int64_t rows, int64_t n, double eps);
// dx_r = norm > eps ? (g_r - y_r * <g_r, y_r>) / norm : g_r / eps
using L2NormalizeBackward = void(DType type, const void* y, const void* g, const void* norm, void* dx, int64_t rows,
                                 int64_t n, double eps);
// out[i, j] = sum_k (a[i, k] - b[j, k])^2 for a [N, D], b [M, D]. This equals
// ||a_i||^2 + ||b_j||^2 - 2 a_i.b_j clamped at 0, computed without the cancellation.
using PairwiseSqDistForward = void(DType type, const void* a, const void* b, void* out, int64_t N, int64_t M,
                                   int64_t D);
// ga[i, k] = 2 sum_j g[i, j] (a[i, k] - b[j, k]) with g [N, M]; b's gradient is this with
// (g^T, b, a).
using PairwiseSqDistGrad = void(DType type, const void* g, const void* a, const void* b, void* ga, int64_t N,
                                int64_t M, int64_t D);
}  // namespace retort::kernels

RETORT_DECLARE_KERNEL(l2_normalize_forward, L2NormalizeForward)
RETORT_DECLARE_KERNEL(l2_normalize_backward, L2NormalizeBackward)
RETORT_DECLARE_KERNEL(pairwise_sq_dist_forward, PairwiseSqDistForward)
RETORT_DECLARE_KERNEL(pairwise_sq_dist_grad, PairwiseSqDistGrad)
