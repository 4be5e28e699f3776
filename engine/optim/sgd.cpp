// SGD: resolves per-group hyper-parameters, keeps the momentum buffer, dispatches the fused kernel.
#include "engine/optim/sgd.h"
#include "engine/error.h"
#include "kernels/optim.h"
#include "kernels/cuda/cuda_api.h"
#include "engine/kernel_call.h"

namespace retort {

SGD::SGD(std::vector<ParamGroup> groups, SgdOptions options) : Optimizer(std::move(groups), "SGD"), options_(options) {
  for (size_t g = 0; g < this->groups().size(); ++g) {
    const ParamGroup& group = this->groups()[g];
    double momentum = group.momentum.value_or(options_.momentum);
    bool nesterov = group.nesterov.value_or(options_.nesterov);
    RETORT_CHECK(momentum >= 0, "SGD: group {} has a negative momentum {}", g, momentum);
    RETORT_CHECK(!nesterov || momentum > 0, "SGD: group {} asks for nesterov without momentum", g);
  }
}

std::vector<std::string> SGD::tensor_state_keys() const {
  bool any_momentum = options_.momentum != 0.0;
  for (const auto& g : groups()) any_momentum = any_momentum || g.momentum.value_or(0.0) != 0.0;
  return any_momentum ? std::vector<std::string>{"momentum_buffer"} : std::vector<std::string>{};
}

void SGD::update(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state) {
  sgd_update_param(group, options_, param, grad, state);
}

void sgd_update_param(const ParamGroup& group, const SgdOptions& options, Tensor& param, const Tensor& grad,
                      Optimizer::ParamState& state) {
  SgdHyper h;
  h.lr = group.lr;
  h.weight_decay = group.weight_decay;
  h.momentum = group.momentum.value_or(options.momentum);
  h.nesterov = group.nesterov.value_or(options.nesterov);
  void* buf = nullptr;
  if (h.momentum != 0.0) {
    Tensor& b = state.tensors["momentum_buffer"];
    if (!b.defined()) b = Tensor::zeros(param.shape(), param.dtype(), param.device());
    buf = b.raw_data();
  }
  RETORT_KERNEL(param.device(), sgd_update, param.dtype(), param.raw_data(), grad.raw_data(), buf, param.numel(), h);
}

}  // namespace retort
