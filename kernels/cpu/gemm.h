// Batched GEMM arguments shared by the CPU (OpenBLAS) and CUDA (cuBLAS) backends, and the
// CPU entry point. All matrices are row-major views with a leading dimension; a transposed
// operand (trans_* = true) is stored as the row-major transpose, i.e. column-major.
#pragma once
#include <cstdint>
#include <string>
#include "engine/dtype.h"

namespace retort {

struct GemmArgs {
  DType dtype = DType::f32;
  int64_t batch = 1, m = 0, n = 0, k = 0;
  const void* a = nullptr;  // op(A) is [m, k]
  bool trans_a = false;
  int64_t lda = 0, stride_a = 0;  // stride_a: elements between batch entries (0 = shared)
  const void* b = nullptr;  // op(B) is [k, n]
  bool trans_b = false;
  int64_t ldb = 0, stride_b = 0;
  void* c = nullptr;  // C is [m, n] row-major, never transposed
  int64_t ldc = 0, stride_c = 0;
  double alpha = 1.0, beta = 0.0;  // C = alpha op(A) op(B) + beta C
};

}  // namespace retort

namespace retort::cpu {
// f32 (sgemm) and f64 (dgemm); bf16 is computed in f32 by the caller. Work is split over the
// OpenMP team (batch entries, else blocks of rows or columns), each block one BLAS call;
// inside a parallel region it runs on the calling thread alone.
void gemm(const GemmArgs& g);
// Puts OpenBLAS in single-threaded mode (once per process): the engine threads with OpenMP,
// and OpenBLAS's own spinning workers would otherwise compete with the OpenMP team.
void blas_init();
// OpenBLAS's build and the kernel set it chose for this CPU, e.g. "OpenBLAS 0.3.21 NO_LAPACKE
// DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64". Kernel sets sum in different orders, so
// the same program gives different digits under different ones (OPENBLAS_CORETYPE picks one).
std::string blas_config();
}  // namespace retort::cpu
