// CUDA GEMMs: batched matmul through cuBLAS (cublasGemmStridedBatchedEx) and linear through
// cuBLASLt with the bias epilogue. Same semantics as kernels/cpu/gemm.h.
#pragma once
#include "kernels/cpu/gemm.h"

namespace retort::cuda {
// f32 (FP32 compute, no TF32), f64, bf16 (FP32 compute).
void gemm(const GemmArgs& g);
// out[M, N] = x[M, K] w[N, K]^T + bias[N] with x, w, out contiguous row-major, fused in one
// cuBLASLt call. Returns false (having done nothing) when cuBLASLt has no algorithm for it.
bool linear_bias_fused(DType dtype, const void* x, const void* w, const void* bias, void* out, int64_t M,
                       int64_t N, int64_t K);
}  // namespace retort::cuda
