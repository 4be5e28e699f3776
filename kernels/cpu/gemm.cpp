// CPU GEMM through OpenBLAS (cblas_sgemm / cblas_dgemm), one call per batch entry.
#include "kernels/cpu/gemm.h"
#include <cblas.h>
#include "engine/error.h"

namespace retort::cpu {

void gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  const CBLAS_TRANSPOSE ta = g.trans_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = g.trans_b ? CblasTrans : CblasNoTrans;
  const blasint m = blasint(g.m), n = blasint(g.n), k = blasint(g.k);
  const blasint lda = blasint(g.lda), ldb = blasint(g.ldb), ldc = blasint(g.ldc);
  for (int64_t i = 0; i < g.batch; ++i) {
    if (g.dtype == DType::f32) {
      const float* a = static_cast<const float*>(g.a) + i * g.stride_a;
      const float* b = static_cast<const float*>(g.b) + i * g.stride_b;
      float* c = static_cast<float*>(g.c) + i * g.stride_c;
      if (g.k == 0) {
        for (int64_t r = 0; r < g.m; ++r)
          for (int64_t j = 0; j < g.n; ++j) c[r * g.ldc + j] = g.beta == 0 ? 0.f : float(g.beta) * c[r * g.ldc + j];
        continue;
      }
      cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, float(g.alpha), a, lda, b, ldb, float(g.beta), c, ldc);
    } else if (g.dtype == DType::f64) {
      const double* a = static_cast<const double*>(g.a) + i * g.stride_a;
      const double* b = static_cast<const double*>(g.b) + i * g.stride_b;
      double* c = static_cast<double*>(g.c) + i * g.stride_c;
      if (g.k == 0) {
        for (int64_t r = 0; r < g.m; ++r)
          for (int64_t j = 0; j < g.n; ++j) c[r * g.ldc + j] = g.beta == 0 ? 0.0 : g.beta * c[r * g.ldc + j];
        continue;
      }
      cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, g.alpha, a, lda, b, ldb, g.beta, c, ldc);
    } else {
      fail("gemm: dtype {} is not supported by the CPU GEMM (f32, f64; bf16 goes through f32)", dtype_name(g.dtype));
    }
  }
}

}  // namespace retort::cpu
