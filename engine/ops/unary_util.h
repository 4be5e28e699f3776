// The shared forward/backward runner for the unary op family (engine/ops/unary.cpp and the
// tensor-scalar ops in engine/ops/scalar.cpp): checks, dispatch and autograd wiring.
#pragma once
#include "engine/tensor.h"
#include "kernels/unary.h"

namespace retort {

// y = op(a) elementwise on a floating tensor of any layout; records the fused backward.
Tensor unary_op(UnaryOp op, const Tensor& a, const char* name, UnaryParams prm = {});

}  // namespace retort
