// Per-element arithmetic of the fused optimizer updates (SGD, AdamW), compiled for the host
// (kernels/cpu/optim.cpp) and the device (kernels/cuda/optim.cu) from this one source, so a
// backend's single-tensor and multi-tensor kernels compute the same bits. A is the compute type:
// float (f32, bf16) or double (f64). The factors are computed once per call on the host, in
// double, like PyTorch's host-side math, then rounded to A (with a step count or a learning
// rate on the device: once per block on the device, in double).
#pragma once
#include <math.h>
#include <cmath>
#include "core/layout.h"
#include "kernels/optim.h"

#if defined(__CUDACC__)
#define RETORT_OPTIM_INLINE __forceinline__
#else
#define RETORT_OPTIM_INLINE [[gnu::always_inline]] inline
#endif

namespace retort::optim_math {

RETORT_OPTIM_INLINE RETORT_HD float square_root(float x) { return ::sqrtf(x); }
RETORT_OPTIM_INLINE RETORT_HD double square_root(double x) { return ::sqrt(x); }

// SGD's hyper-parameters in the compute type.
template <typename A> struct SgdFactors {
  A lr, momentum, weight_decay;
  bool use_momentum, nesterov;
};

template <typename A> RETORT_OPTIM_INLINE RETORT_HD SgdFactors<A> sgd_factors(const SgdHyper& h) {
  return {A(h.lr), A(h.momentum), A(h.weight_decay), h.momentum != 0.0, h.nesterov};
}

// One element of SGD (kernels/optim.h has the formulas): returns the new parameter. `buf` is
// the momentum buffer's value, read and updated when momentum is on, untouched otherwise.
template <typename A> RETORT_OPTIM_INLINE RETORT_HD A sgd_element(const SgdFactors<A>& f, A p, A g, A& buf) {
  A d = g + f.weight_decay * p;
  if (f.use_momentum) {
    buf = f.momentum * buf + d;
    d = f.nesterov ? d + f.momentum * buf : buf;
  }
  return p - f.lr * d;
}

// AdamW's hyper-parameters and step-dependent bias corrections in the compute type.
template <typename A> struct AdamWFactors {
  A decay, beta1, beta2, one_minus_beta1, one_minus_beta2, step_size, inv_sqrt_bc2, eps;
};

// For step `step` (h.step unless the step count lives on the device: then each CUDA block
// computes them from it, in double like the host).
template <typename A> RETORT_OPTIM_INLINE RETORT_HD AdamWFactors<A> adamw_factors(const AdamWHyper& h, double step) {
  const double bc1 = 1.0 - ::pow(h.beta1, step);
  const double bc2 = 1.0 - ::pow(h.beta2, step);
  return {A(1.0 - h.lr * h.weight_decay), A(h.beta1),       A(h.beta2),
          A(1.0 - h.beta1),               A(1.0 - h.beta2), A(h.lr / bc1),
          A(1.0 / ::sqrt(bc2)),           A(h.eps)};
}
template <typename A> inline AdamWFactors<A> adamw_factors(const AdamWHyper& h) {
  return adamw_factors<A>(h, double(h.step));
}

// One element of AdamW: returns the new parameter and updates the moments m and v in place.
template <typename A> RETORT_OPTIM_INLINE RETORT_HD A adamw_element(const AdamWFactors<A>& f, A p, A g, A& m, A& v) {
  m = f.beta1 * m + f.one_minus_beta1 * g;
  v = f.beta2 * v + f.one_minus_beta2 * g * g;
  const A denom = square_root(v) * f.inv_sqrt_bc2 + f.eps;
  return p * f.decay - f.step_size * m / denom;
}

}  // namespace retort::optim_math
