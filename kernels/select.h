// Kernel family "select": comparisons against a scalar and between tensors (u8 masks), where,
// index_select / index_add and gather / scatter_add. Outputs are contiguous; inputs are read
// through layouts of the output shape (stride 0 on broadcast dims) unless said otherwise. An
// index out of range: the CPU throws retort::Error at once; a CUDA kernel cannot throw, so it
// skips the element (reads zero, adds nothing) and reports it, and the host raises the same
// message at the next synchronisation (kernels/cuda/common.cuh); the CUDA context stays usable.
#pragma once
#include <cstddef>
#include <cstdint>
#include "core/dtype.h"
#include "core/layout.h"
#include "kernels/family.h"

namespace retort::kernels {
// out[i] = (double(in[i]) > s) for the n elements of in's layout; any dtype.
using GtScalar = void(DType type, const void* in, const Layout& in_layout, double s, uint8_t* out, int64_t n);
// out[i] = (a[i] == b[i]) compared in the operands' own dtype (exact for i64); any dtype.
using Eq = void(DType type, const void* a, const Layout& la, const void* b, const Layout& lb, uint8_t* out, int64_t n);
// out[i] = mask[i] ? a[i] : b[i]; elements are elem_size bytes, so any dtype works.
using Where = void(size_t elem_size, const uint8_t* mask, const Layout& lm, const void* a, const Layout& la,
                   const void* b, const Layout& lb, void* out, int64_t n);
// in is contiguous [outer, src_size, inner]; out[o, k, i] = in[o, index[k], i] for k < num_index.
// Any dtype (elem_size bytes).
using IndexSelect = void(size_t elem_size, const void* in, int64_t outer, int64_t src_size, int64_t inner,
                         const int64_t* index, int64_t num_index, void* out);
// out is contiguous [outer, dst_size, inner] (already initialised); src is [outer, num_index, inner];
// out[o, index[k], i] += src[o, k, i], repeated indices accumulate. Floating dtypes (on CUDA by
// atomicAdd, so the summation order is not fixed there).
using IndexAdd = void(DType type, const void* src, int64_t outer, int64_t num_index, int64_t inner,
                      const int64_t* index, int64_t dst_size, void* out);
// torch.gather: for every element of the index's shape (layout li, n elements),
// out[i] = in[coords(i) with coords[dim] replaced by index[i]]; `in` read through layout la
// (its shape bounds the index along dim). Any dtype.
using Gather = void(size_t elem_size, const void* in, const Layout& la, int dim, const int64_t* index,
                    const Layout& li, void* out, int64_t n);
// The adjoint of gather: out (contiguous, layout lo, already initialised) receives
// out[coords(i) with coords[dim] = index[i]] += src[i]; src contiguous over the index's shape.
using ScatterAdd = void(DType type, const void* src, const int64_t* index, const Layout& li, int dim, void* out,
                        const Layout& lo, int64_t n);
}  // namespace retort::kernels

RETORT_DECLARE_KERNEL(gt_scalar, GtScalar)
RETORT_DECLARE_KERNEL(eq, Eq)
RETORT_DECLARE_KERNEL(where, Where)
RETORT_DECLARE_KERNEL(index_select, IndexSelect)
RETORT_DECLARE_KERNEL(index_add, IndexAdd)
RETORT_DECLARE_KERNEL(gather, Gather)
RETORT_DECLARE_KERNEL(scatter_add, ScatterAdd)
