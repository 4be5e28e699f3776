// CPU geometry kernels (L2 normalisation rows, pairwise squared distances): the reference for
// kernels/cuda/geometry.cu.
#include <cmath>
#include "kernels/cpu/dispatch.h"
#include "kernels/geometry.h"

namespace retort::cpu {

void l2_normalize_forward(DType type, const void* x, void* y, void* norm, int64_t rows, int64_t n, double eps) {
  RETORT_CPU_DISPATCH_FLOAT(type, "l2_normalize", [&] {
    const scalar_t* px = static_cast<const scalar_t*>(x);
    scalar_t* py = static_cast<scalar_t*>(y);
    acc_t* pn = static_cast<acc_t*>(norm);
    _Pragma("omp parallel for if (rows * n > 32768)")
    for (int64_t r = 0; r < rows; ++r) {
      acc_t ss = 0;
      for (int64_t i = 0; i < n; ++i) ss += acc_t(px[r * n + i]) * acc_t(px[r * n + i]);
      acc_t nr = std::sqrt(ss);
      pn[r] = nr;
      acc_t inv = acc_t(1) / (nr > acc_t(eps) ? nr : acc_t(eps));
      for (int64_t i = 0; i < n; ++i) py[r * n + i] = scalar_t(acc_t(px[r * n + i]) * inv);
    }
  });
}

void l2_normalize_backward(DType type, const void* y, const void* g, const void* norm, void* dx, int64_t rows,
                           int64_t n, double eps) {
  RETORT_CPU_DISPATCH_FLOAT(type, "l2_normalize backward", [&] {
    const scalar_t* py = static_cast<const scalar_t*>(y);
    const scalar_t* pg = static_cast<const scalar_t*>(g);
    const acc_t* pn = static_cast<const acc_t*>(norm);
    scalar_t* pd = static_cast<scalar_t*>(dx);
    _Pragma("omp parallel for if (rows * n > 32768)")
    for (int64_t r = 0; r < rows; ++r) {
      const bool clamped = !(pn[r] > acc_t(eps));
      acc_t dot = 0;
      if (!clamped)
        for (int64_t i = 0; i < n; ++i) dot += acc_t(pg[r * n + i]) * acc_t(py[r * n + i]);
      const acc_t inv = acc_t(1) / (clamped ? acc_t(eps) : pn[r]);
      for (int64_t i = 0; i < n; ++i)
        pd[r * n + i] = scalar_t((acc_t(pg[r * n + i]) - acc_t(py[r * n + i]) * dot) * inv);
    }
  });
}

void pairwise_sq_dist_forward(DType type, const void* a, const void* b, void* out, int64_t N, int64_t M, int64_t D) {
  RETORT_CPU_DISPATCH_FLOAT(type, "pairwise_sq_dist", [&] {
    const scalar_t* pa = static_cast<const scalar_t*>(a);
    const scalar_t* pb = static_cast<const scalar_t*>(b);
    scalar_t* po = static_cast<scalar_t*>(out);
    _Pragma("omp parallel for if (N * M * D > 32768)")
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < M; ++j) {
        acc_t s = 0;
        for (int64_t k = 0; k < D; ++k) {
          acc_t d = acc_t(pa[i * D + k]) - acc_t(pb[j * D + k]);
          s += d * d;
        }
        po[i * M + j] = scalar_t(s);
      }
  });
}

void pairwise_sq_dist_grad(DType type, const void* g, const void* a, const void* b, void* ga, int64_t N, int64_t M,
                           int64_t D) {
  RETORT_CPU_DISPATCH_FLOAT(type, "pairwise_sq_dist backward", [&] {
    const scalar_t* pg = static_cast<const scalar_t*>(g);
    const scalar_t* pa = static_cast<const scalar_t*>(a);
    const scalar_t* pb = static_cast<const scalar_t*>(b);
    scalar_t* po = static_cast<scalar_t*>(ga);
    _Pragma("omp parallel for if (N * M * D > 32768)")
    for (int64_t i = 0; i < N; ++i)
      for (int64_t k = 0; k < D; ++k) {
        const acc_t aik = acc_t(pa[i * D + k]);
        acc_t s = 0;
        for (int64_t j = 0; j < M; ++j) s += acc_t(pg[i * M + j]) * (aik - acc_t(pb[j * D + k]));
        po[i * D + k] = scalar_t(acc_t(2) * s);
      }
  });
}

}  // namespace retort::cpu
