// CUDA-vs-CPU parity check shared by the op tests: runs an op on CPU and CUDA copies of the
// same inputs, compares outputs and (for floating inputs) the gradients of a weighted sum.
#pragma once
#include <functional>
#include <vector>
#include "helpers.h"

namespace retort::test {

inline void check_cuda_parity(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                              const std::vector<Tensor>& inputs, DType dtype, double tol, bool check_grads = true) {
  auto run = [&](Device dev, std::vector<Tensor>& leaves) {
    leaves.clear();
    for (const Tensor& t : inputs) {
      Tensor x = (is_floating(t.dtype()) ? t.to(dtype) : t).to(dev).detach();
      if (check_grads && is_floating(x.dtype())) x.requires_grad_(true);
      leaves.push_back(x);
    }
    Tensor out = f(leaves);
    if (check_grads && out.requires_grad()) {
      Tensor w = random_tensor(out.shape(), 777, 0.5, 1.5, dtype, dev);
      sum(mul(out, w)).backward();
    }
    return out;
  };
  std::vector<Tensor> cpu_leaves, gpu_leaves;
  Tensor cpu_out = run(Device::cpu(), cpu_leaves);
  Tensor gpu_out = run(Device::cuda(0), gpu_leaves);
  REQUIRE(gpu_out.device().is_cuda());
  INFO("output " << cpu_out.str());
  CHECK(max_rel_error(gpu_out.to(Device::cpu()), cpu_out) <= tol);
  if (!check_grads) return;
  for (size_t k = 0; k < cpu_leaves.size(); ++k) {
    if (!cpu_leaves[k].requires_grad()) continue;
    INFO("gradient of input " << k);
    REQUIRE(cpu_leaves[k].grad().defined());
    REQUIRE(gpu_leaves[k].grad().defined());
    CHECK(max_rel_error(gpu_leaves[k].grad().to(Device::cpu()), cpu_leaves[k].grad()) <= tol);
  }
}

}  // namespace retort::test
