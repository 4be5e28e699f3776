// Kernel family "random": random tensors (uniform, normal) and dropout, drawn from the
// counter-based generator in kernels/random_draws.h. `base` is the first counter the caller
// reserved with Generator::advance. Both backends give the same uniforms and dropout masks bit
// for bit; normals agree to a few ulp of double (CUDA's log/sin/cos are not correctly rounded
// like glibc's).
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "core/layout.h"
#include "kernels/family.h"

namespace retort::kernels {
// out[i] uniform in [0, 1) (also after rounding to f32 / bf16); n counters.
using Uniform = void(DType type, void* out, int64_t n, uint64_t seed, uint64_t base);
// out[i] standard normal; normal_counters(n) counters.
using Normal = void(DType type, void* out, int64_t n, uint64_t seed, uint64_t base);
// mask[i] = keep_i (uniform >= p), out[i] = keep_i ? x[i] * scale : 0; x read through its layout; n counters.
using Dropout = void(DType type, const void* x, const Layout& x_layout, void* out, uint8_t* mask, int64_t n,
                     uint64_t seed, uint64_t base, double p, double scale);
// grad_in[i] = mask[i] ? grad_out[i] * scale : 0; grad_out read through its layout.
using DropoutBackward = void(DType type, const void* grad_out, const Layout& grad_layout, const uint8_t* mask,
                             double scale, void* grad_in, int64_t n);
}  // namespace retort::kernels

RETORT_DECLARE_KERNEL(uniform, Uniform)
RETORT_DECLARE_KERNEL(normal, Normal)
RETORT_DECLARE_KERNEL(dropout, Dropout)
RETORT_DECLARE_KERNEL(dropout_backward, DropoutBackward)
