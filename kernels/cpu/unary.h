// Elementwise unary ops (exp, log, sqrt, pow, abs, clamp, relu, gelu, sigmoid, tanh) and the
// tensor-scalar forms (x + s, x * s, s - x, s / x): one op enum shared by the CPU reference
// and the CUDA kernels (kernels/cuda/unary.h), with a fused backward (grad_out, saved) -> grad_in.
// The per-element formulas live in kernels/unary_math.h so both backends compute the same thing.
#pragma once
#include "engine/dtype.h"
#include "kernels/layout.h"

namespace retort {

enum class UnaryOp { exp, log, sqrt, pow, abs, clamp, relu, gelu, sigmoid, tanh, add_scalar, mul_scalar, rsub_scalar, rdiv_scalar };

// Op parameters. pow: p0 = exponent. clamp: p0 = lo, p1 = hi. add/mul/rsub/rdiv_scalar: p0 = s.
struct UnaryParams {
  double p0 = 0, p1 = 0;
};

// The backward of these ops reads the forward output y (exp, sqrt, sigmoid, tanh); all others
// read the forward input x.
inline bool unary_grad_uses_output(UnaryOp op) {
  return op == UnaryOp::exp || op == UnaryOp::sqrt || op == UnaryOp::sigmoid || op == UnaryOp::tanh;
}

}  // namespace retort

namespace retort::cpu {
// out[i] = f(in[i]) for the n elements of the (row-major) shape of in_layout; out contiguous.
void unary(UnaryOp op, UnaryParams prm, DType type, const void* in, const Layout& in_layout, void* out, int64_t n);
// grad_in[i] = grad_out[i] * f'(...) evaluated from saved[i] (x or y, see unary_grad_uses_output).
// grad_out and saved are read through layouts of the same shape; grad_in is contiguous.
void unary_backward(UnaryOp op, UnaryParams prm, DType type, const void* grad_out, const Layout& grad_layout,
                    const void* saved, const Layout& saved_layout, void* grad_in, int64_t n);
}  // namespace retort::cpu
