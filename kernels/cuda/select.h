// CUDA kernels for comparisons and selection; same semantics as kernels/cpu/select.h, except
// that an out-of-range index cannot throw from the device: the kernel skips it (reads zero,
// adds nothing) and reports it, and the host raises the same message as the CPU's at the next
// synchronisation (kernels/cuda/common.cuh); the CUDA context stays usable. Outputs are
// contiguous; inputs are read through layouts of the output shape unless said otherwise.
#pragma once
#include <cstddef>
#include <cstdint>
#include "engine/dtype.h"
#include "kernels/layout.h"

namespace retort::cuda {

// out[i] = (double(in[i]) > s) for the n elements of in's layout; any dtype.
void gt_scalar(DType type, const void* in, const Layout& in_layout, double s, uint8_t* out, int64_t n);
// out[i] = (a[i] == b[i]) compared in the operands' own dtype (exact for i64); any dtype.
void eq(DType type, const void* a, const Layout& la, const void* b, const Layout& lb, uint8_t* out, int64_t n);
// out[i] = mask[i] ? a[i] : b[i]; elements are elem_size bytes, so any dtype works.
void where(size_t elem_size, const uint8_t* mask, const Layout& lm, const void* a, const Layout& la, const void* b,
           const Layout& lb, void* out, int64_t n);

// in is contiguous [outer, src_size, inner]; out[o, k, i] = in[o, index[k], i] for k < num_index.
// An index outside [0, src_size) is reported (see above). Any dtype (elem_size bytes).
void index_select(size_t elem_size, const void* in, int64_t outer, int64_t src_size, int64_t inner,
                  const int64_t* index, int64_t num_index, void* out);
// out is contiguous [outer, dst_size, inner] (already initialised); src is [outer, num_index, inner];
// out[o, index[k], i] += src[o, k, i], repeated indices accumulate. Floating dtypes (atomicAdd).
void index_add(DType type, const void* src, int64_t outer, int64_t num_index, int64_t inner, const int64_t* index,
               int64_t dst_size, void* out);

// torch.gather: for every element of the index's shape (layout li, n elements),
// out[i] = in[coords(i) with coords[dim] replaced by index[i]]; `in` read through layout la
// (its shape bounds the index along dim). Reports an out-of-range index. Any dtype.
void gather(size_t elem_size, const void* in, const Layout& la, int dim, const int64_t* index, const Layout& li,
            void* out, int64_t n);
// The adjoint of gather: out (contiguous, layout lo, already initialised) receives
// out[coords(i) with coords[dim] = index[i]] += src[i]; src contiguous over the index's shape.
void scatter_add(DType type, const void* src, const int64_t* index, const Layout& li, int dim, void* out,
                 const Layout& lo, int64_t n);

}  // namespace retort::cuda
