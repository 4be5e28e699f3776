// SGD with momentum, nesterov and weight decay added to the gradient (PyTorch semantics,
// dampening 0); one fused kernel per parameter (kernels/cpu/optim.*, kernels/cuda/optim.*).
#pragma once
#include "engine/optim/optimizer.h"

namespace retort {

struct SgdOptions {
  double momentum = 0.0;
  bool nesterov = false;  // requires momentum > 0
};

// One SGD update of `param` (group's lr, weight decay, momentum/nesterov over `options`): what
// SGD does per parameter, and what a group with GroupRule::sgd gets under another optimizer.
void sgd_update_param(const ParamGroup& group, const SgdOptions& options, Tensor& param, const Tensor& grad,
                      Optimizer::ParamState& state);

class SGD : public Optimizer {
 public:
  // Each group's lr and weight_decay apply; group.momentum / group.nesterov override the options.
  SGD(std::vector<ParamGroup> groups, SgdOptions options = {});

 protected:
  void update(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state) override;
  std::vector<std::string> tensor_state_keys() const override;
  std::vector<std::string> scalar_state_keys() const override { return {}; }

 private:
  SgdOptions options_;
};

}  // namespace retort
