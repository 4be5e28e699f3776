// CUDA broadcast binary kernels; same semantics as kernels/cpu/elementwise.h.
#pragma once
#include "kernels/cpu/elementwise.h"

namespace retort::cuda {
void binary(BinaryOp op, DType type, const void* a, const Layout& la, const void* b, const Layout& lb, void* out,
            int64_t n);
}  // namespace retort::cuda
