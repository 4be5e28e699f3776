// Tensor-scalar ops, expressed through the broadcast binary ops with a 0-d operand.
#include "engine/ops.h"

namespace retort {
namespace {
Tensor scalar_like(double s, const Tensor& a) { return Tensor::scalar(s, a.dtype(), a.device()); }
}  // namespace

Tensor add(const Tensor& a, double s) { return add(a, scalar_like(s, a)); }
Tensor mul(const Tensor& a, double s) { return mul(a, scalar_like(s, a)); }
Tensor rsub(double s, const Tensor& a) { return sub(scalar_like(s, a), a); }
Tensor rdiv(double s, const Tensor& a) { return div(scalar_like(s, a), a); }
Tensor neg(const Tensor& a) { return mul(a, -1.0); }

}  // namespace retort
