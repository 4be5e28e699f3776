// Kernel family "unary": elementwise unary ops and the tensor-scalar forms (x + s, x * s,
// s - x, s / x), with a fused backward (grad_out, saved) -> grad_in. The op list is declared
// once, in RETORT_UNARY_OPS below: the enum, which value each backward reads, the names and the
// CUDA kernels' per-op instantiation all derive from it. The per-element formulas live in
// kernels/unary_math.h, compiled for the host and the device, so both backends compute the
// same thing. Adding an op: a line here, its two formulas there, its function in engine/ops.h
// and engine/ops/unary.cpp (docs/adding_an_op.md).
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "core/layout.h"
#include "kernels/family.h"

// X(name, reads) for every op: `reads` is what its backward reads, the forward input (x) or
// the forward output (y).
#define RETORT_UNARY_OPS(X) \
  X(exp, y)                 \
  X(log, x)                 \
  X(sqrt, y)                \
  X(pow, x)                 \
  X(abs, x)                 \
  X(clamp, x)               \
  X(relu, x)                \
  X(gelu, x)                \
  X(sigmoid, y)             \
  X(tanh, y)                \
  X(add_scalar, x)          \
  X(mul_scalar, x)          \
  X(rsub_scalar, x)         \
  X(rdiv_scalar, x)

namespace retort {

enum class UnaryOp {
#define RETORT_UNARY_ENUM(name, reads) name,
  RETORT_UNARY_OPS(RETORT_UNARY_ENUM)
#undef RETORT_UNARY_ENUM
};

// Every op, in declaration order (tests walk it).
inline constexpr UnaryOp kAllUnaryOps[] = {
#define RETORT_UNARY_LIST(name, reads) UnaryOp::name,
    RETORT_UNARY_OPS(RETORT_UNARY_LIST)
#undef RETORT_UNARY_LIST
};

inline const char* unary_op_name(UnaryOp op) {
  switch (op) {
#define RETORT_UNARY_NAME(name, reads) \
  case UnaryOp::name: return #name;
    RETORT_UNARY_OPS(RETORT_UNARY_NAME)
#undef RETORT_UNARY_NAME
  }
  return "?";
}

// Op parameters. pow: p0 = exponent. clamp: p0 = lo, p1 = hi. add/mul/rsub/rdiv_scalar: p0 = s.
struct UnaryParams {
  double p0 = 0, p1 = 0;
};

// True when the op's backward reads the forward output y, false when it reads the input x.
inline bool unary_grad_uses_output(UnaryOp op) {
  switch (op) {
#define RETORT_UNARY_READS(name, reads) \
  case UnaryOp::name: return #reads[0] == 'y';
    RETORT_UNARY_OPS(RETORT_UNARY_READS)
#undef RETORT_UNARY_READS
  }
  return false;
}

}  // namespace retort

namespace retort::kernels {
// out[i] = f(in[i]) for the n elements of the (row-major) shape of in_layout; out contiguous.
using Unary = void(UnaryOp op, UnaryParams prm, DType type, const void* in, const Layout& in_layout, void* out,
                   int64_t n);
// grad_in[i] = grad_out[i] * f'(...) evaluated from saved[i] (x or y, see unary_grad_uses_output).
// grad_out and saved are read through layouts of the same shape; grad_in is contiguous.
using UnaryBackward = void(UnaryOp op, UnaryParams prm, DType type, const void* grad_out, const Layout& grad_layout,
                           const void* saved, const Layout& saved_layout, void* grad_in, int64_t n);
}  // namespace retort::kernels

RETORT_DECLARE_KERNEL(unary, Unary)
RETORT_DECLARE_KERNEL(unary_backward, UnaryBackward)
