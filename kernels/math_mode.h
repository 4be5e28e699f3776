// The math mode the GEMM and convolution kernels may use for f32, per thread: plain FMA f32
// (the default, bitwise comparable with the CPU) or TF32 tensor cores (cuBLAS
// CUBLAS_COMPUTE_32F_FAST_TF32, cuDNN tensor-op math). Set by engine/autocast.h's
// Precision::tf32; read by kernels/cuda/matmul.cu and kernels/cuda/conv.cu. The CPU kernels have
// no TF32 mode and ignore it.
#pragma once

namespace retort::kernels {

bool tf32_allowed();
void set_tf32_allowed(bool allowed);

}  // namespace retort::kernels
