// Kernel family "loss": fused cross-entropy (log-softmax + label smoothing) over [rows,
// classes] logits, and the elementwise KL-divergence and smooth-L1 terms.
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "kernels/family.h"

namespace retort {
// Elementwise loss terms of (a, b):
//   kl_div:            b * (log b - a), with 0 * log 0 = 0   (a = log q, b = p)
//   kl_div_log_target: exp(b) * (b - a)                       (a = log q, b = log p)
//   smooth_l1:         |d| < beta ? 0.5 d^2 / beta : |d| - 0.5 beta, d = a - b (beta 0: |d|)
enum class PointwiseLoss { kl_div, kl_div_log_target, smooth_l1 };
}  // namespace retort

namespace retort::kernels {
// Per row r with q = (1 - eps) onehot(target[r]) + eps / C:
//   loss[r] = -sum_j q_j log_softmax(x_r)_j,   lse[r] = logsumexp(x_r)
// lse is float for f32/bf16 logits and double for f64. Targets outside [0, C) are not read:
// *bad_row becomes min(*bad_row, r) for each such row (the caller reports it; on CUDA bad_row
// is device memory).
using CrossEntropyForward = void(DType type, const void* logits, const int64_t* target, void* loss, void* lse,
                                 int64_t rows, int64_t classes, double smoothing, int64_t* bad_row);
// dx[r, j] = grad[r] * (exp(x_rj - lse[r]) - q_j)
using CrossEntropyBackward = void(DType type, const void* logits, const int64_t* target, const void* lse,
                                  const void* grad, void* dx, int64_t rows, int64_t classes, double smoothing);
// out[i] = term(a[i], b[i]); all contiguous with n elements.
using PointwiseLossForward = void(PointwiseLoss kind, DType type, const void* a, const void* b, void* out, int64_t n,
                                  double beta);
// ga[i] = g[i] * dterm/da, gb[i] = g[i] * dterm/db (each skipped when null). For kl_div the
// b-gradient at b == 0 takes the 0 * log 0 term as constant: -a.
using PointwiseLossBackward = void(PointwiseLoss kind, DType type, const void* a, const void* b, const void* g,
                                   void* ga, void* gb, int64_t n, double beta);
}  // namespace retort::kernels

RETORT_DECLARE_KERNEL(cross_entropy_forward, CrossEntropyForward)
RETORT_DECLARE_KERNEL(cross_entropy_backward, CrossEntropyBackward)
RETORT_DECLARE_KERNEL(pointwise_loss_forward, PointwiseLossForward)
RETORT_DECLARE_KERNEL(pointwise_loss_backward, PointwiseLossBackward)
