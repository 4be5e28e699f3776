// Kernel family "optim": fused optimizer updates, one pass over a contiguous parameter, in
// place; the arithmetic runs in float for f32/bf16 and in double for f64. The multi-tensor
// forms update a list of parameters in one call (one CUDA launch per up to ~100 tensors) and
// can be told, through a flag in device memory, to write nothing. The per-element formulas
// live in kernels/optim_math.h, shared by both backends and both forms. Also the multi-tensor
// sum of squares behind the global gradient norm.
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
  bool operator==(const SgdHyper&) const = default;
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
  bool operator==(const AdamWHyper&) const = default;
};

// One parameter of a multi-tensor SGD update: n dense elements at each pointer, all of one
// dtype on one device. momentum_buf is null exactly when the hyper-parameters have no momentum.
struct SgdTensor {
  void* param = nullptr;
  const void* grad = nullptr;
  void* momentum_buf = nullptr;
  int64_t n = 0;
};

// One parameter of a multi-tensor AdamW update: n dense elements at each pointer.
struct AdamwTensor {
  void* param = nullptr;
  const void* grad = nullptr;
  void* exp_avg = nullptr;
  void* exp_avg_sq = nullptr;
  int64_t n = 0;
};

// One tensor a multi-tensor reduction reads: n dense elements.
struct DenseInput {
  const void* data = nullptr;
  int64_t n = 0;
};

// The CPU's sum_squares_multi adds each run of this many elements, then the runs in order.
inline constexpr int64_t kSumSquaresRun = 16384;

}  // namespace retort

namespace retort::kernels {
using SgdUpdate = void(DType type, void* param, const void* grad, void* momentum_buf, int64_t n, const SgdHyper& h);
using AdamwUpdate = void(DType type, void* param, const void* grad, void* exp_avg, void* exp_avg_sq, int64_t n,
                         const AdamWHyper& h);

// Multi-tensor updates: tensors[0..count) share one dtype, one device and the hyper-parameters
// h, and each is updated exactly as sgd_update / adamw_update would (bitwise the same on the
// CPU). `skip` points to one float on the tensors' device, or is null (never skip); when it
// holds a nonzero value (NaN included) no parameter and no state is written. It is read where
// the kernels run (on the GPU by the kernel, once per block) and never copied to the host, so
// deciding to skip (say, on a non-finite gradient norm) costs no synchronisation.
// `lr` is null (the learning rate is h.lr) or points to one f64 on the tensors' device holding
// it (an optimizer's DeviceRates, engine/optim/device_rates.h): the factors are then computed
// from that value where the kernels run (once per block on a GPU, in double like the host), so
// a replayed CUDA graph takes the learning rate written before each replay. Same bits either way.
using SgdMultiUpdate = void(DType type, const SgdTensor* tensors, int64_t count, const SgdHyper& h,
                            const float* skip, const double* lr);
// AdamW's `step_count` is null (the step being taken is h.step) or points to one f64 on the
// tensors' device holding it (an optimizer's DeviceStepCounter, engine/optim/step_counter.h):
// then the bias corrections are computed where the kernels run, from that value, so a replayed
// CUDA graph takes each replay's own step. On the CPU both give the same bits.
using AdamwMultiUpdate = void(DType type, const AdamwTensor* tensors, int64_t count, const AdamWHyper& h,
                              const float* skip, const double* step_count, const double* lr);
// The sum over tensors[0..count) (one dtype, one device) of every element squared, each element
// converted to double before it is squared and added, written to *out: one f64 on the tensors'
// device, overwritten (0 without elements). The global gradient norm's square in one pass, for
// clipping and for the step's finiteness check: a NaN element makes it NaN, an infinite one +inf,
// and no finite f32 or bf16 can overflow it. Deterministic on each backend, not the same bits:
// the CPU adds runs of kSumSquaresRun elements (each in vector lanes), then the runs in order,
// whatever the thread count; CUDA adds each block's chunk by a tree, then the chunks in a fixed
// order. One launch per up to ~190 tensors plus one, and nothing read back.
using SumSquaresMulti = void(DType type, const DenseInput* tensors, int64_t count, double* out);
}  // namespace retort::kernels

RETORT_DECLARE_KERNEL(sgd_update, SgdUpdate)
RETORT_DECLARE_KERNEL(adamw_update, AdamwUpdate)
RETORT_DECLARE_KERNEL(sgd_multi_update, SgdMultiUpdate)
RETORT_DECLARE_KERNEL(adamw_multi_update, AdamwMultiUpdate)
RETORT_DECLARE_KERNEL(sum_squares_multi, SumSquaresMulti)
