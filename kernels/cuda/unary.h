// CUDA elementwise unary ops and their fused backward; same semantics as kernels/cpu/unary.h.
#pragma once
#include "kernels/cpu/unary.h"

namespace retort::cuda {
void unary(UnaryOp op, UnaryParams prm, DType type, const void* in, const Layout& in_layout, void* out, int64_t n);
void unary_backward(UnaryOp op, UnaryParams prm, DType type, const void* grad_out, const Layout& grad_layout,
                    const void* saved, const Layout& saved_layout, void* grad_in, int64_t n);
}  // namespace retort::cuda
