// SGD with momentum, nesterov and weight decay added to the gradient (PyTorch semantics,
// dampening 0). step() runs the multi-tensor kernel (kernels/optim.h); the single-tensor
// update, sgd_update_param, stays as the per-parameter reference.
#pragma once
#include "engine/optim/optimizer.h"

namespace retort {

struct SgdOptions {
  double momentum = 0.0;
  bool nesterov = false;  // requires momentum > 0
};

// One SGD update of `param` (group's lr, weight decay, momentum/nesterov over `options`) with
// the single-tensor kernel, at once: the reference for what step() does to each parameter.
void sgd_update_param(const ParamGroup& group, const SgdOptions& options, Tensor& param, const Tensor& grad,
                      Optimizer::ParamState& state);

// Adds the same update to `batch` (the momentum buffer is created, as zeros, now): what SGD's
// step() does per parameter, and what a group with GroupRule::sgd gets under another optimizer.
// `lr`: the group's learning rate on the device, which the kernels read (null: group.lr).
void sgd_enqueue_param(const ParamGroup& group, const SgdOptions& options, const Tensor& param, const Tensor& grad,
                       Optimizer::ParamState& state, UpdateBatch& batch, const double* lr = nullptr);

class SGD : public Optimizer {
 public:
  // Each group's lr and weight_decay apply; group.momentum / group.nesterov override the options.
  SGD(std::vector<ParamGroup> groups, SgdOptions options = {});

 protected:
  void enqueue(const ParamGroup& group, const Tensor& param, const Tensor& grad, ParamState& state,
               UpdateBatch& batch, const double* lr) override;
  std::vector<std::string> tensor_state_keys() const override;
  std::vector<std::string> scalar_state_keys() const override { return {}; }

 private:
  SgdOptions options_;
};

}  // namespace retort
