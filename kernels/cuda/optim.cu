// CUDA fused SGD and AdamW updates: one grid-stride kernel per parameter, in place.
// Reference: kernels/cpu/optim.cpp (same formulas, same order of operations).
#include <cmath>
#include "kernels/cuda/common.cuh"
#include "kernels/optim.h"

namespace retort::cuda {
namespace {
template <typename T, typename A>
__global__ void sgd_kernel(T* p, const T* g, T* buf, int64_t n, A lr, A momentum, A wd, bool use_momentum,
                           bool nesterov) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    A pi = ld(p, i);
    A d = ld(g, i) + wd * pi;
    if (use_momentum) {
      A b = momentum * ld(buf, i) + d;
      st(buf, i, b);
      d = nesterov ? d + momentum * b : b;
    }
    st(p, i, A(pi - lr * d));
  }
}

template <typename T, typename A>
__global__ void adamw_kernel(T* p, const T* g, T* m, T* v, int64_t n, A decay, A beta1, A beta2, A one_minus_beta1,
                             A one_minus_beta2, A step_size, A inv_sqrt_bc2, A eps) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    A gi = ld(g, i);
    A mi = beta1 * ld(m, i) + one_minus_beta1 * gi;
    A vi = beta2 * ld(v, i) + one_minus_beta2 * gi * gi;
    st(m, i, mi);
    st(v, i, vi);
    A denom = ::sqrt(vi) * inv_sqrt_bc2 + eps;
    st(p, i, A(ld(p, i) * decay - step_size * mi / denom));
  }
}
}  // namespace

void sgd_update(DType type, void* param, const void* grad, void* momentum_buf, int64_t n, const SgdHyper& h) {
  if (n == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "sgd_update", [&] {
    using A = typename Acc<scalar_t>::type;
    sgd_kernel<scalar_t, A><<<grid_for(n), 256, 0, stream()>>>(
        static_cast<scalar_t*>(param), static_cast<const scalar_t*>(grad), static_cast<scalar_t*>(momentum_buf), n,
        A(h.lr), A(h.momentum), A(h.weight_decay), h.momentum != 0.0, h.nesterov);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void adamw_update(DType type, void* param, const void* grad, void* exp_avg, void* exp_avg_sq, int64_t n,
                  const AdamWHyper& h) {
  if (n == 0) return;
  const double bc1 = 1.0 - std::pow(h.beta1, double(h.step));
  const double bc2 = 1.0 - std::pow(h.beta2, double(h.step));
  RETORT_CUDA_DISPATCH_FLOAT(type, "adamw_update", [&] {
    using A = typename Acc<scalar_t>::type;
    adamw_kernel<scalar_t, A><<<grid_for(n), 256, 0, stream()>>>(
        static_cast<scalar_t*>(param), static_cast<const scalar_t*>(grad), static_cast<scalar_t*>(exp_avg),
        static_cast<scalar_t*>(exp_avg_sq), n, A(1.0 - h.lr * h.weight_decay), A(h.beta1), A(h.beta2),
        A(1.0 - h.beta1), A(1.0 - h.beta2), A(h.lr / bc1), A(1.0 / std::sqrt(bc2)), A(h.eps));
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace retort::cuda
