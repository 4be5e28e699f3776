// Gradient clipping by the global L2 norm over a set of parameters: on the gradients' device
// without reading anything back (clip_grad_norm_on_device), or with the norm brought to the
// host (clip_grad_norm); and the skip flag for Optimizer::step from a non-finite norm.
#pragma once
#include <vector>
#include "engine/tensor.h"

namespace retort {

// The total L2 norm of all defined gradients (as if concatenated), as a 0-dim f64 tensor on the
// gradients' device: every element squared and added in f64, one multi-tensor pass per (device,
// dtype) of gradients (kernels/optim.h's sum_squares_multi: two launches on a GPU however many
// gradients), then sqrt. NaN or +inf exactly when a gradient element is not finite. When the norm is finite and exceeds max_norm,
// every gradient is scaled by max_norm / (norm + 1e-6) (PyTorch's clip_grad_norm_); otherwise
// they keep their values (scaled by exactly 1). Tensor ops only: no host read, no
// synchronisation. Dense gradients are scaled in place; a non-contiguous (broadcast) gradient,
// or one that partly overlaps a gradient scaled before it, is replaced by a dense scaled copy;
// a gradient that is the very memory of an earlier one is scaled once. Gradients on another
// device than the first one's are handled, at the cost of copies. Without gradients: 0.
Tensor clip_grad_norm_on_device(const std::vector<Tensor>& params, double max_norm);

// The same norm without clipping (a logged step's gradient norm: train/step_log.h).
Tensor gradient_norm_on_device(const std::vector<Tensor>& params);

// The same, with the norm returned to the host (one item(), so one synchronisation on a GPU).
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// A one-element f32 tensor on value's device: 1 when the one-element `value` is NaN or
// infinite, else 0. Optimizer::step(nonfinite_flag(norm)) skips the step on a non-finite norm
// without a host read.
Tensor nonfinite_flag(const Tensor& value);

}  // namespace retort
