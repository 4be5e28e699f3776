// Kernel family "binary": elementwise binary ops with broadcasting. `out` is contiguous with n
// elements; a and b are read through broadcast layouts of the output shape.
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "core/layout.h"
#include "kernels/family.h"

namespace retort {
// ge_mask: 1 where a >= b else 0, in the operands' dtype (the mask maximum's backward uses).
enum class BinaryOp { add, sub, mul, div, maximum, ge_mask };
}

namespace retort::kernels {
using Binary = void(BinaryOp op, DType type, const void* a, const Layout& la, const void* b, const Layout& lb,
                    void* out, int64_t n);
}

RETORT_DECLARE_KERNEL(binary, Binary)
