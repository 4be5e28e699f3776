// AdamW: Adam with decoupled weight decay (p -= lr * wd * p) and bias-corrected moments
// (PyTorch semantics); one fused kernel per parameter (kernels/cpu/optim.*, kernels/cuda/optim.*).
#pragma once
#include "engine/optim/optimizer.h"

namespace retort {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

// One AdamW update of `param` (group's lr and weight decay, betas/eps over `options`): what
// AdamW does per parameter, and what a group with GroupRule::adamw gets under another optimizer.
void adamw_update_param(const ParamGroup& group, const AdamWOptions& options, Tensor& param, const Tensor& grad,
                        Optimizer::ParamState& state);

class AdamW : public Optimizer {
 public:
  // Each group's lr and weight_decay apply; group.beta1 / beta2 / eps override the options.
  AdamW(std::vector<ParamGroup> groups, AdamWOptions options = {});

 protected:
  void update(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state) override;
  std::vector<std::string> tensor_state_keys() const override { return {"exp_avg", "exp_avg_sq"}; }
  std::vector<std::string> scalar_state_keys() const override { return {"step"}; }

 private:
  AdamWOptions options_;
};

}  // namespace retort
