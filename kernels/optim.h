// Kernel family "optim": fused optimizer updates, one pass over a contiguous parameter, in
// place; the arithmetic runs in float for f32/bf16 and in double for f64.
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "kernels/family.h"

namespace retort {

// SGD with PyTorch semantics (dampening 0):
//   g = grad + weight_decay * p
//   momentum != 0:  buf = momentum * buf + g;  g = nesterov ? g + momentum * buf : buf
//   p -= lr * g
// `momentum_buf` may be null when momentum == 0. A fresh buffer starts at zero, which
// gives PyTorch's first step (buf = g).
struct SgdHyper {
  double lr = 0.01;
  double momentum = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

// AdamW with decoupled weight decay (PyTorch semantics), for step t >= 1:
//   p *= 1 - lr * weight_decay
//   m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g^2
//   p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
struct AdamWHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
  int64_t step = 1;  // the step being taken (1 for the first update)
};

}  // namespace retort

namespace retort::kernels {
using SgdUpdate = void(DType type, void* param, const void* grad, void* momentum_buf, int64_t n, const SgdHyper& h);
using AdamwUpdate = void(DType type, void* param, const void* grad, void* exp_avg, void* exp_avg_sq, int64_t n,
                         const AdamWHyper& h);
}  // namespace retort::kernels

RETORT_DECLARE_KERNEL(sgd_update, SgdUpdate)
RETORT_DECLARE_KERNEL(adamw_update, AdamwUpdate)
