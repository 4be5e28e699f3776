// SGD: resolves per-group hyper-parameters, keeps the momentum buffer, adds each parameter to
// the step's multi-tensor batch (or runs the single-tensor kernel, the reference).
#include "engine/optim/sgd.h"
#include "engine/error.h"
#include "engine/kernel_call.h"
#include "engine/optim/update_batch.h"
#include "kernels/optim.h"

namespace retort {
namespace {
SgdHyper sgd_hyper(const ParamGroup& group, const SgdOptions& options) {
  SgdHyper h;
  h.lr = group.lr;
  h.weight_decay = group.weight_decay;
  h.momentum = group.momentum.value_or(options.momentum);
  h.nesterov = group.nesterov.value_or(options.nesterov);
  return h;
}

// The momentum buffer (zeros on first use), or an undefined tensor without momentum.
Tensor momentum_buffer(const SgdHyper& h, const Tensor& param, Optimizer::ParamState& state) {
  if (h.momentum == 0.0) return Tensor();
  Tensor& b = state.tensors["momentum_buffer"];
  if (!b.defined()) b = Tensor::zeros(param.shape(), param.dtype(), param.device());
  return b;
}
}  // namespace

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

void SGD::enqueue(const ParamGroup& group, const Tensor& param, const Tensor& grad, ParamState& state,
                  UpdateBatch& batch, const double* lr) {
  sgd_enqueue_param(group, options_, param, grad, state, batch, lr);
}

void sgd_update_param(const ParamGroup& group, const SgdOptions& options, Tensor& param, const Tensor& grad,
                      Optimizer::ParamState& state) {
  const SgdHyper h = sgd_hyper(group, options);
  const Tensor buf = momentum_buffer(h, param, state);
  RETORT_KERNEL(param.device(), sgd_update, param.dtype(), param.raw_data(), grad.raw_data(),
                buf.defined() ? buf.raw_data() : nullptr, param.numel(), h);
}

void sgd_enqueue_param(const ParamGroup& group, const SgdOptions& options, const Tensor& param, const Tensor& grad,
                       Optimizer::ParamState& state, UpdateBatch& batch, const double* lr) {
  const SgdHyper h = sgd_hyper(group, options);
  batch.add_sgd(h, param, grad, momentum_buffer(h, param, state), lr);
}

}  // namespace retort
