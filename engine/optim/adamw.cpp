// AdamW: resolves per-group hyper-parameters, keeps the moments and step count, adds each
// parameter to the step's multi-tensor batch (or runs the single-tensor kernel, the reference).
#include "engine/optim/adamw.h"
#include "engine/error.h"
#include "engine/kernel_call.h"
#include "engine/optim/update_batch.h"
#include "kernels/optim.h"

namespace retort {
namespace {
// Creates the moments (zeros) on first use, advances the step count, and returns the
// hyper-parameters of the step being taken.
AdamWHyper prepare_step(const ParamGroup& group, const AdamWOptions& options, const Tensor& param,
                        Optimizer::ParamState& state) {
  for (const char* key : {"exp_avg", "exp_avg_sq"}) {
    Tensor& t = state.tensors[key];
    if (!t.defined()) t = Tensor::zeros(param.shape(), param.dtype(), param.device());
  }
  double& step = state.scalars["step"];  // 0 before the first update
  step += 1;
  AdamWHyper h;
  h.lr = group.lr;
  h.weight_decay = group.weight_decay;
  h.beta1 = group.beta1.value_or(options.beta1);
  h.beta2 = group.beta2.value_or(options.beta2);
  h.eps = group.eps.value_or(options.eps);
  h.step = int64_t(step);
  return h;
}
}  // namespace

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

void AdamW::enqueue(const ParamGroup& group, const Tensor& param, const Tensor& grad, ParamState& state,
                    UpdateBatch& batch, const double* lr) {
  adamw_enqueue_param(group, options_, param, grad, state, step_counter(), batch, lr);
}

void adamw_update_param(const ParamGroup& group, const AdamWOptions& options, Tensor& param, const Tensor& grad,
                        Optimizer::ParamState& state) {
  const AdamWHyper h = prepare_step(group, options, param, state);
  RETORT_KERNEL(param.device(), adamw_update, param.dtype(), param.raw_data(), grad.raw_data(),
                state.tensors["exp_avg"].raw_data(), state.tensors["exp_avg_sq"].raw_data(), param.numel(), h);
}

void adamw_enqueue_param(const ParamGroup& group, const AdamWOptions& options, const Tensor& param,
                         const Tensor& grad, Optimizer::ParamState& state, DeviceStepCounter& counter,
                         UpdateBatch& batch, const double* lr) {
  const AdamWHyper h = prepare_step(group, options, param, state);
  batch.add_adamw(h, param, grad, state.tensors["exp_avg"], state.tensors["exp_avg_sq"],
                  counter.pointer_for(h.step, param.device()), lr);
}

}  // namespace retort
