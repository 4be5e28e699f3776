// CPU reference kernels for the fused SGD and AdamW updates (see kernels/cpu/optim.h).
#include "kernels/optim.h"
#include <cmath>
#include "kernels/cpu/dispatch.h"

namespace retort::cpu {

void sgd_update(DType type, void* param, const void* grad, void* momentum_buf, int64_t n, const SgdHyper& h) {
  RETORT_CPU_DISPATCH_FLOAT(type, "sgd_update", [&] {
    scalar_t* p = static_cast<scalar_t*>(param);
    const scalar_t* g = static_cast<const scalar_t*>(grad);
    scalar_t* buf = static_cast<scalar_t*>(momentum_buf);
    const acc_t lr = acc_t(h.lr), momentum = acc_t(h.momentum), wd = acc_t(h.weight_decay);
    const bool use_momentum = h.momentum != 0.0, nesterov = h.nesterov;
    _Pragma("omp parallel for if (n > 32768)")
    for (int64_t i = 0; i < n; ++i) {
      acc_t pi = acc_t(p[i]);
      acc_t d = acc_t(g[i]) + wd * pi;
      if (use_momentum) {
        acc_t b = momentum * acc_t(buf[i]) + d;
        buf[i] = scalar_t(b);
        d = nesterov ? d + momentum * b : b;
      }
      p[i] = scalar_t(pi - lr * d);
    }
  });
}

void adamw_update(DType type, void* param, const void* grad, void* exp_avg, void* exp_avg_sq, int64_t n,
                  const AdamWHyper& h) {
  RETORT_CPU_DISPATCH_FLOAT(type, "adamw_update", [&] {
    scalar_t* p = static_cast<scalar_t*>(param);
    const scalar_t* g = static_cast<const scalar_t*>(grad);
    scalar_t* m = static_cast<scalar_t*>(exp_avg);
    scalar_t* v = static_cast<scalar_t*>(exp_avg_sq);
    // Step-dependent factors are computed once, in double, like PyTorch's host-side math.
    const double bc1 = 1.0 - std::pow(h.beta1, double(h.step));
    const double bc2 = 1.0 - std::pow(h.beta2, double(h.step));
    const acc_t decay = acc_t(1.0 - h.lr * h.weight_decay);
    const acc_t beta1 = acc_t(h.beta1), beta2 = acc_t(h.beta2);
    const acc_t one_minus_beta1 = acc_t(1.0 - h.beta1), one_minus_beta2 = acc_t(1.0 - h.beta2);
    const acc_t step_size = acc_t(h.lr / bc1), inv_sqrt_bc2 = acc_t(1.0 / std::sqrt(bc2)), eps = acc_t(h.eps);
    _Pragma("omp parallel for if (n > 32768)")
    for (int64_t i = 0; i < n; ++i) {
      acc_t gi = acc_t(g[i]);
      acc_t mi = beta1 * acc_t(m[i]) + one_minus_beta1 * gi;
      acc_t vi = beta2 * acc_t(v[i]) + one_minus_beta2 * gi * gi;
      m[i] = scalar_t(mi);
      v[i] = scalar_t(vi);
      acc_t denom = std::sqrt(vi) * inv_sqrt_bc2 + eps;
      p[i] = scalar_t(acc_t(p[i]) * decay - step_size * mi / denom);
    }
  });
}

}  // namespace retort::cpu
