// AdamW: Adam with decoupled weight decay (p -= lr * wd * p) and bias-corrected moments
// (PyTorch semantics). step() runs the multi-tensor kernel (kernels/optim.h); the single-tensor
// update, adamw_update_param, stays as the per-parameter reference.
#pragma once
#include "engine/optim/optimizer.h"

namespace retort {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

// One AdamW update of `param` (group's lr and weight decay, betas/eps over `options`) with the
// single-tensor kernel, at once: the reference for what step() does to each parameter.
void adamw_update_param(const ParamGroup& group, const AdamWOptions& options, Tensor& param, const Tensor& grad,
                        Optimizer::ParamState& state);

// Adds the same update to `batch` (moments created, as zeros, and the step count advanced now):
// what AdamW's step() does per parameter, and what a group with GroupRule::adamw gets under
// another optimizer. The kernels read the step from `counter` when the parameter's step is the
// counter's (engine/optim/step_counter.h), and the learning rate from `lr` (null: group.lr).
void adamw_enqueue_param(const ParamGroup& group, const AdamWOptions& options, const Tensor& param,
                         const Tensor& grad, Optimizer::ParamState& state, DeviceStepCounter& counter,
                         UpdateBatch& batch, const double* lr = nullptr);

class AdamW : public Optimizer {
 public:
  // Each group's lr and weight_decay apply; group.beta1 / beta2 / eps override the options.
  AdamW(std::vector<ParamGroup> groups, AdamWOptions options = {});

 protected:
  void enqueue(const ParamGroup& group, const Tensor& param, const Tensor& grad, ParamState& state,
               UpdateBatch& batch, const double* lr) override;
  std::vector<std::string> tensor_state_keys() const override { return {"exp_avg", "exp_avg_sq"}; }
  std::vector<std::string> scalar_state_keys() const override { return {"step"}; }

 private:
  AdamWOptions options_;
};

}  // namespace retort
