// CPU reference kernels for random tensors (uniform, normal) and dropout, drawn from the
// counter-based generator in kernels/random_draws.h: kernels/cuda/random.h gives the same bits.
// `base` is the first counter the caller reserved with Generator::advance.
#pragma once
#include <cstdint>
#include "engine/dtype.h"
#include "kernels/layout.h"

namespace retort::cpu {
// out[i] uniform in [0, 1) (also after rounding to f32 / bf16); n counters.
void uniform(DType type, void* out, int64_t n, uint64_t seed, uint64_t base);
// out[i] standard normal; normal_counters(n) counters.
void normal(DType type, void* out, int64_t n, uint64_t seed, uint64_t base);
// mask[i] = keep_i (uniform >= p), out[i] = keep_i ? x[i] * scale : 0; x read through its layout; n counters.
void dropout(DType type, const void* x, const Layout& x_layout, void* out, uint8_t* mask, int64_t n, uint64_t seed,
             uint64_t base, double p, double scale);
// grad_in[i] = mask[i] ? grad_out[i] * scale : 0; grad_out read through its layout.
void dropout_backward(DType type, const void* grad_out, const Layout& grad_layout, const uint8_t* mask, double scale,
                      void* grad_in, int64_t n);
}  // namespace retort::cpu
