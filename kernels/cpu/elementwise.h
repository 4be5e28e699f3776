// CPU reference kernels for broadcast binary ops. `out` is contiguous with n elements;
// a and b are read through broadcast layouts of the output shape.
#pragma once
#include "engine/dtype.h"
#include "kernels/layout.h"

namespace retort {
// ge_mask: 1 where a >= b else 0, in the operands' dtype (the mask maximum's backward uses).
enum class BinaryOp { add, sub, mul, div, maximum, ge_mask };
}

namespace retort::cpu {
void binary(BinaryOp op, DType type, const void* a, const Layout& la, const void* b, const Layout& lb, void* out,
            int64_t n);
}  // namespace retort::cpu
