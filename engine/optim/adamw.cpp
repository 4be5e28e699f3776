// AdamW: resolves per-group hyper-parameters, keeps the moments and step count, dispatches the fused kernel.
#include "engine/optim/adamw.h"
#include "engine/error.h"
#include "kernels/optim.h"
#include "kernels/cuda/cuda_api.h"
#include "engine/kernel_call.h"

namespace retort {

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options)
    : Optimizer(std::move(groups), "AdamW"), options_(options) {
  for (size_t g = 0; g < this->groups().size(); ++g) {
    const ParamGroup& group = this->groups()[g];
    double b1 = group.beta1.value_or(options_.beta1), b2 = group.beta2.value_or(options_.beta2);
    double eps = group.eps.value_or(options_.eps);
    RETORT_CHECK(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1, "AdamW: group {} needs betas in [0, 1), got ({}, {})", g, b1, b2);
    RETORT_CHECK(eps >= 0, "AdamW: group {} has a negative eps {}", g, eps);
  }
}

void AdamW::update(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state) {
  adamw_update_param(group, options_, param, grad, state);
}

void adamw_update_param(const ParamGroup& group, const AdamWOptions& options, Tensor& param, const Tensor& grad,
                        Optimizer::ParamState& state) {
  Tensor& m = state.tensors["exp_avg"];
  Tensor& v = state.tensors["exp_avg_sq"];
  if (!m.defined()) m = Tensor::zeros(param.shape(), param.dtype(), param.device());
  if (!v.defined()) v = Tensor::zeros(param.shape(), param.dtype(), param.device());
  double& step = state.scalars["step"];  // 0 on the first update
  step += 1;
  AdamWHyper h;
  h.lr = group.lr;
  h.weight_decay = group.weight_decay;
  h.beta1 = group.beta1.value_or(options.beta1);
  h.beta2 = group.beta2.value_or(options.beta2);
  h.eps = group.eps.value_or(options.eps);
  h.step = int64_t(step);
  RETORT_KERNEL(param.device(), adamw_update, param.dtype(), param.raw_data(), grad.raw_data(), m.raw_data(),
                v.raw_data(), param.numel(), h);
}

}  // namespace retort
