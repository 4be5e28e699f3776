// Memory formats for 4-D [N, C, H, W] tensors: contiguous (NCHW-dense, strides
// [C*H*W, H*W, W, 1]) and channels_last (NHWC-dense: the logical shape stays [N, C, H, W], the
// strides are [H*W*C, 1, W*C, C]), as in PyTorch. cuDNN's tensor-core convolutions want NHWC.
//
//   to_memory_format(x, f)     x with f's exact dense strides; differentiable (the gradient comes
//                              back in x's own format); returns x itself when x already has them;
//                              restrides without a copy when the memory already fits (C == 1 ...).
//   is_channels_last(x)        4-D and dense in NHWC order. A memory test: size-1 dims are ignored,
//                              so where both formats coincide (C == 1, or H == W == 1, ...) a
//                              contiguous tensor is channels-last too (and vice versa).
//   suggest_memory_format(x)   the format ops give their outputs for input x: channels_last when
//                              is_channels_last(x) and x is not contiguous; in the ties above,
//                              channels_last only when x's strides are exactly the NHWC-dense
//                              strides (what to_memory_format and the channels-last ops produce),
//                              so a channels-last [N, 1, H, W] input keeps its format through a
//                              network; every other tensor (not 4-D, strided, ...) is contiguous.
//
// Elementwise ops (unary, scalar, binary, dropout) follow the first operand of the output's shape:
// a channels-last one gives a channels-last output, computed over the flat NHWC memory
// (elementwise_layout below). conv2d, batch_norm2d and the pools keep channels-last inputs
// channels-last (see their files for native vs converted paths).
#pragma once
#include <functional>
#include "core/layout.h"
#include "engine/tensor.h"

namespace retort {

enum class MemoryFormat { contiguous, channels_last };

const char* memory_format_name(MemoryFormat f);  // "contiguous" | "channels_last"

// Dense strides of a 4-D shape in format f (contiguous: any rank).
Shape memory_format_strides(const Shape& shape, MemoryFormat f);

bool is_channels_last(const Tensor& x);
MemoryFormat suggest_memory_format(const Tensor& x);
Tensor to_memory_format(const Tensor& x, MemoryFormat f);

// An uninitialised tensor of `shape` with f's exact dense strides.
Tensor empty_in_format(const Shape& shape, MemoryFormat f, DType dtype, Device device);

// Runs an NCHW-only op on x converted to contiguous and converts its 4-D result to channels_last
// (both conversions differentiable: x's gradient comes back channels-last). Each conversion is
// one read and one write of the tensor.
Tensor through_contiguous(const Tensor& x, const std::function<Tensor(const Tensor&)>& op);

// Layout `l` (of a 4-D output shape) read in f's memory order: for channels_last the dims are
// reordered to [N, H, W, C], so a kernel walking it row-major visits the output's memory in
// order. A channels-last operand's layout becomes dense, which the kernels' fast paths detect.
Layout layout_in_format(const Layout& l, MemoryFormat f);

}  // namespace retort
