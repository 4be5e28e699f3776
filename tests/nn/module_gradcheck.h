// Finite-difference check of a module's parameter gradients in f64: perturbs each parameter
// element in place (copy_) and compares with the gradient backward() left in the parameter.
#pragma once
#include "engine/nn/module.h"
#include "helpers.h"

namespace retort::test {

// loss_of() runs a forward and returns any tensor; it is contracted with a fixed random weight.
inline void module_param_gradcheck(nn::Module& m, const std::function<Tensor()>& run, double eps = 1e-6,
                                   double tol = 1e-5) {
  m.zero_grad();
  Tensor out0 = run();
  Tensor w = random_tensor(out0.shape(), 777, 0.5, 1.5);
  sum(mul(out0, w)).backward();
  auto scalar = [&] {
    NoGradGuard ng;
    return sum(mul(run(), w)).item();
  };
  for (auto& [name, p] : m.named_parameters()) {
    REQUIRE(p.dtype() == DType::f64);
    Tensor g = p.grad();
    REQUIRE_MESSAGE(g.defined(), "parameter " << name << " got no gradient");
    auto ga = g.to_vector();
    std::vector<double> vals = p.to_vector();
    for (size_t i = 0; i < vals.size(); ++i) {
      auto at = [&](double delta) {
        std::vector<double> v = vals;
        v[i] += delta;
        Tensor dst = p;
        dst.copy_(Tensor::from_vector(v, p.shape(), DType::f64));
        return scalar();
      };
      double numeric = (at(eps) - at(-eps)) / (2 * eps);
      Tensor dst = p;
      dst.copy_(Tensor::from_vector(vals, p.shape(), DType::f64));
      INFO("parameter " << name << " element " << i << ": analytic " << ga[i] << " numeric " << numeric);
      CHECK(std::abs(ga[i] - numeric) <= tol * (1.0 + std::abs(numeric)));
    }
  }
}

}  // namespace retort::test
