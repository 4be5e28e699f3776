// Broadcasting helpers shared by the op families: result shapes and operand layouts.
#pragma once
#include "engine/tensor.h"
#include "kernels/binary.h"
#include "core/layout.h"

namespace retort {

// NumPy broadcast of two shapes; the error names the op and both operands' shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Layout of `t` read as `out_shape` (stride 0 on broadcast dims).
Layout broadcast_layout(const Tensor& t, const Shape& out_shape);
// Both operands defined, same dtype and device; names the op in the error.
void check_same(const Tensor& a, const Tensor& b, const char* op);
// out = a (op) b with broadcasting, on a's device, no autograd (the ops add their own).
Tensor broadcast_binary(BinaryOp op, const Tensor& a, const Tensor& b, const char* name);

}  // namespace retort
