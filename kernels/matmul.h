// Kernel family "matmul": batched GEMM through the BLAS of each backend (OpenBLAS on the CPU,
// cuBLAS on CUDA). All matrices are row-major views with a leading dimension; a transposed
// operand (trans_* = true) is stored as the row-major transpose, i.e. column-major.
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "kernels/family.h"

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

namespace retort::kernels {
// CPU: f32 (sgemm) and f64 (dgemm), bf16 computed in f32 by the caller; work is split over the
// OpenMP team (batch entries, else blocks of rows or columns), each block one BLAS call, and
// inside a parallel region it runs on the calling thread alone. CUDA: f32 (FP32 compute, no
// TF32), f64, bf16 (FP32 compute).
using Gemm = void(const GemmArgs& g);
}  // namespace retort::kernels

RETORT_DECLARE_KERNEL(gemm, Gemm)

namespace retort::cuda {
// CUDA only: out[M, N] = x[M, K] w[N, K]^T + bias[N] with x, w, out contiguous row-major, fused
// in one cuBLASLt call. Returns false (having done nothing) when cuBLASLt has no algorithm for it.
bool linear_bias_fused(DType dtype, const void* x, const void* w, const void* bias, void* out, int64_t M, int64_t N,
                       int64_t K);
// The linear layer's weight and bias gradients in one cuBLASLt product (the BGRADB epilogue):
// grad_w[N, K] = g[M, N]^T x[M, K] and grad_b[N] = the sum of g's rows, all dense row-major.
// False (nothing written) where cuBLASLt offers no such product: the caller computes them apart.
bool linear_weight_bias_grad_fused(DType dtype, const void* g, const void* x, void* grad_w, void* grad_b, int64_t M,
                                   int64_t N, int64_t K);
}  // namespace retort::cuda
