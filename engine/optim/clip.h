// Gradient clipping by the global L2 norm over a set of parameters.
#pragma once
#include <vector>
#include "engine/tensor.h"

namespace retort {

// Returns the total L2 norm of all defined gradients (as if concatenated). When it exceeds
// max_norm, every gradient is scaled in place by max_norm / (norm + 1e-6) (PyTorch's
// clip_grad_norm_). A non-finite norm is returned as is and the gradients are left alone.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace retort
