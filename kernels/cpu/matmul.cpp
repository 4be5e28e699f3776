// CPU GEMM through OpenBLAS (cblas_sgemm / cblas_dgemm), single-threaded BLAS calls spread
// over the OpenMP team: one thread per batch entry, or per block of rows/columns of C.
#include "kernels/cpu/blas.h"
#include "kernels/matmul.h"
#include <cblas.h>
#include <omp.h>
#include <algorithm>
#include "core/check.h"

namespace retort::cpu {
namespace {

template <typename T>
void blas(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
          int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // BLAS would be asked for lda >= 0 with nothing to multiply: C = beta C
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j) c[r * ldc + j] = beta == T(0) ? T(0) : beta * c[r * ldc + j];
    return;
  }
  const CBLAS_TRANSPOSE oa = ta ? CblasTrans : CblasNoTrans, ob = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, oa, ob, blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                beta, c, blasint(ldc));
  else
    cblas_dgemm(CblasRowMajor, oa, ob, blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                beta, c, blasint(ldc));
}

template <typename T>
void run(const GemmArgs& g) {
  const T* A = static_cast<const T*>(g.a);
  const T* B = static_cast<const T*>(g.b);
  T* C = static_cast<T*>(g.c);
  const T alpha = T(g.alpha), beta = T(g.beta);
  const double flops = 2.0 * double(g.batch) * double(g.m) * double(g.n) * double(g.k);
  const int64_t threads = std::max(1, omp_get_max_threads());
  const bool parallel = flops > 2e6 && threads > 1 && !omp_in_parallel();  // no nested teams
  if (g.batch >= threads || !parallel) {
#pragma omp parallel for schedule(static) if (parallel && g.batch > 1)
    for (int64_t i = 0; i < g.batch; ++i)
      blas<T>(g.trans_a, g.trans_b, g.m, g.n, g.k, alpha, A + i * g.stride_a, g.lda, B + i * g.stride_b, g.ldb, beta,
              C + i * g.stride_c, g.ldc);
    return;
  }
  // Few batch entries: cut each product into blocks along the longer of m and n.
  const bool split_rows = g.m >= g.n;
  const int64_t extent = split_rows ? g.m : g.n;
  const int64_t block = std::max<int64_t>((extent + threads - 1) / threads, 1);
  const int64_t blocks = (extent + block - 1) / block;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < g.batch; ++i)
    for (int64_t bi = 0; bi < blocks; ++bi) {
      const int64_t lo = bi * block, len = std::min(block, extent - lo);
      const T* a = A + i * g.stride_a;
      const T* b = B + i * g.stride_b;
      T* c = C + i * g.stride_c;
      if (split_rows)  // rows lo.. of op(A) and C
        blas<T>(g.trans_a, g.trans_b, len, g.n, g.k, alpha, a + (g.trans_a ? lo : lo * g.lda), g.lda, b, g.ldb, beta,
                c + lo * g.ldc, g.ldc);
      else  // columns lo.. of op(B) and C
        blas<T>(g.trans_a, g.trans_b, g.m, len, g.k, alpha, a, g.lda, b + (g.trans_b ? lo * g.ldb : lo), g.ldb, beta,
                c + lo, g.ldc);
    }
}
}  // namespace

void blas_init() {
  static const bool done = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)done;
}

std::string blas_config() {
  const char* config = openblas_get_config();
  return config ? config : "OpenBLAS (configuration unknown)";
}

void gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  blas_init();
  if (g.dtype == DType::f32) run<float>(g);
  else if (g.dtype == DType::f64) run<double>(g);
  else raise("gemm: dtype ", g.dtype, " is not supported by the CPU GEMM (f32, f64; bf16 goes through f32)");
}

}  // namespace retort::cpu
