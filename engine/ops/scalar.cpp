// Tensor-scalar ops (a + s, a * s, s - a, s / a, -a) as fused unary kernels: no 0-d operand
// is allocated and each is one pass over the data. Float dtypes; s is rounded to the compute
// type (float for f32 and bf16, double for f64).
#include "engine/ops.h"
#include "engine/ops/unary_util.h"

namespace retort {

Tensor add(const Tensor& a, double s) { return unary_op(UnaryOp::add_scalar, a, "add", {s, 0.0}); }
Tensor mul(const Tensor& a, double s) { return unary_op(UnaryOp::mul_scalar, a, "mul", {s, 0.0}); }
Tensor rsub(double s, const Tensor& a) { return unary_op(UnaryOp::rsub_scalar, a, "rsub", {s, 0.0}); }
Tensor rdiv(double s, const Tensor& a) { return unary_op(UnaryOp::rdiv_scalar, a, "rdiv", {s, 0.0}); }
Tensor neg(const Tensor& a) { return unary_op(UnaryOp::mul_scalar, a, "neg", {-1.0, 0.0}); }

}  // namespace retort
