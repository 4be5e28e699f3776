// CUDA loss kernels: cross-entropy with a fused log-softmax (one block per row: max, sum of
// exp and sum of shifted logits), its elementwise backward, and the KL / smooth-L1 terms.
// Reference: kernels/cpu/loss.cpp.
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/loss.h"

namespace retort::cuda {
namespace {
template <typename A>
__device__ __forceinline__ A term(PointwiseLoss kind, A a, A b, A beta) {
  switch (kind) {
    case PointwiseLoss::kl_div: return (b == A(0) ? A(0) : b * ::log(b)) - b * a;
    case PointwiseLoss::kl_div_log_target: return ::exp(b) * (b - a);
    case PointwiseLoss::smooth_l1: {
      A ad = ::fabs(a - b);
      return ad < beta ? A(0.5) * (a - b) * (a - b) / beta : ad - A(0.5) * beta;
    }
  }
  return A(0);
}
template <typename A>
__device__ __forceinline__ void term_grad(PointwiseLoss kind, A a, A b, A beta, A& da, A& db) {
  switch (kind) {
    case PointwiseLoss::kl_div:
      da = -b;
      db = (b == A(0) ? A(0) : ::log(b) + A(1)) - a;
      return;
    case PointwiseLoss::kl_div_log_target: {
      A e = ::exp(b);
      da = -e;
      db = e * (b - a + A(1));
      return;
    }
    case PointwiseLoss::smooth_l1: {
      A d = a - b;
      A s = ::fabs(d) < beta ? d / beta : (d > A(0) ? A(1) : (d < A(0) ? A(-1) : A(0)));
      da = s;
      db = -s;
      return;
    }
  }
}

template <typename T>
__global__ void ce_forward_kernel(const T* x, const int64_t* target, T* loss, typename Acc<T>::type* lse,
                                  int64_t rows, int64_t classes, double smoothing, int64_t* bad_row) {
  using A = typename Acc<T>::type;
  const A eps = A(smoothing), C = A(classes);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * classes;
    A m = -INFINITY;
    for (int64_t j = threadIdx.x; j < classes; j += blockDim.x) m = MaxOp{}(m, ld(xr, j));
    m = block_max(m);
    A s = 0, shifted = 0;
    for (int64_t j = threadIdx.x; j < classes; j += blockDim.x) {
      A d = ld(xr, j) - m;
      s += ::exp(d);
      shifted += d;
    }
    s = block_sum(s);
    shifted = block_sum(shifted);
    if (threadIdx.x == 0) {
      A log_s = ::log(s);
      lse[r] = m + log_s;
      const int64_t t = target[r];
      if (t < 0 || t >= classes) {
        atomicMin(reinterpret_cast<unsigned long long*>(bad_row), static_cast<unsigned long long>(r));
        st(loss, r, A(NAN));
      } else {
        st(loss, r, A(log_s - (A(1) - eps) * (ld(xr, t) - m) - eps / C * shifted));
      }
    }
  }
}

template <typename T>
__global__ void ce_backward_kernel(const T* x, const int64_t* target, const typename Acc<T>::type* lse, const T* g,
                                   T* dx, int64_t rows, int64_t classes, double smoothing) {
  using A = typename Acc<T>::type;
  const A eps = A(smoothing), off = eps / A(classes), on = A(1) - eps + off;
  const int64_t n = rows * classes;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = k / classes, j = k % classes;
    const A q = j == target[r] ? on : off;
    st(dx, k, A(ld(g, r) * (::exp(ld(x, k) - lse[r]) - q)));
  }
}

template <typename T>
__global__ void pointwise_forward_kernel(PointwiseLoss kind, const T* a, const T* b, T* out, int64_t n, double beta) {
  using A = typename Acc<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(out, i, term<A>(kind, ld(a, i), ld(b, i), A(beta)));
}

template <typename T>
__global__ void pointwise_backward_kernel(PointwiseLoss kind, const T* a, const T* b, const T* g, T* ga, T* gb,
                                          int64_t n, double beta) {
  using A = typename Acc<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    A da = 0, db = 0;
    term_grad<A>(kind, ld(a, i), ld(b, i), A(beta), da, db);
    const A gi = ld(g, i);
    if (ga) st(ga, i, A(gi * da));
    if (gb) st(gb, i, A(gi * db));
  }
}
}  // namespace

void cross_entropy_forward(DType type, const void* logits, const int64_t* target, void* loss, void* lse,
                           int64_t rows, int64_t classes, double smoothing, int64_t* bad_row) {
  if (rows == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "cross_entropy", [&] {
    using A = typename Acc<scalar_t>::type;
    ce_forward_kernel<scalar_t><<<row_grid(rows), row_block_threads(classes), 0, stream()>>>(
        static_cast<const scalar_t*>(logits), target, static_cast<scalar_t*>(loss), static_cast<A*>(lse), rows,
        classes, smoothing, bad_row);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void cross_entropy_backward(DType type, const void* logits, const int64_t* target, const void* lse,
                            const void* grad, void* dx, int64_t rows, int64_t classes, double smoothing) {
  if (rows * classes == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "cross_entropy backward", [&] {
    using A = typename Acc<scalar_t>::type;
    ce_backward_kernel<scalar_t><<<grid_for(rows * classes), 256, 0, stream()>>>(
        static_cast<const scalar_t*>(logits), target, static_cast<const A*>(lse), static_cast<const scalar_t*>(grad),
        static_cast<scalar_t*>(dx), rows, classes, smoothing);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void pointwise_loss_forward(PointwiseLoss kind, DType type, const void* a, const void* b, void* out, int64_t n,
                            double beta) {
  if (n == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "loss", [&] {
    pointwise_forward_kernel<scalar_t><<<grid_for(n), 256, 0, stream()>>>(
        kind, static_cast<const scalar_t*>(a), static_cast<const scalar_t*>(b), static_cast<scalar_t*>(out), n, beta);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

void pointwise_loss_backward(PointwiseLoss kind, DType type, const void* a, const void* b, const void* g, void* ga,
                             void* gb, int64_t n, double beta) {
  if (n == 0) return;
  RETORT_CUDA_DISPATCH_FLOAT(type, "loss backward", [&] {
    pointwise_backward_kernel<scalar_t><<<grid_for(n), 256, 0, stream()>>>(
        kind, static_cast<const scalar_t*>(a), static_cast<const scalar_t*>(b), static_cast<const scalar_t*>(g),
        static_cast<scalar_t*>(ga), static_cast<scalar_t*>(gb), n, beta);
    RETORT_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace retort::cuda
