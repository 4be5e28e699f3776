// Helpers shared by the op tests in tests/ops: inputs kept away from kinks, and the CPU/CUDA
// parity runner (forward values and input gradients) used by the "cuda parity" cases.
#pragma once
#include <functional>
#include <vector>
#include "helpers.h"

namespace retort::test {

// Uniform values in [lo, hi) that stay at least `gap` away from every point in `kinks`
// (rejection sampling, deterministic per seed), as an f64 tensor.
inline Tensor random_away_from(const Shape& shape, uint64_t seed, double lo, double hi,
                               const std::vector<double>& kinks, double gap = 0.05) {
  Generator g(seed);
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (auto& x : v) {
    bool ok = false;
    while (!ok) {
      x = lo + (hi - lo) * g.uniform();
      ok = true;
      for (double k : kinks) ok = ok && std::abs(x - k) >= gap;
    }
  }
  return Tensor::from_vector(v, shape, DType::f64);
}

inline double parity_tolerance(DType dt) { return dt == DType::bf16 ? 1e-2 : (dt == DType::f32 ? 1e-5 : 1e-12); }

// Runs f on CPU and on CUDA with the same random inputs (values in [lo, hi), cast to dt) and
// checks the outputs and, when f is differentiable, the input gradients agree.
inline void check_cuda_parity(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                              const std::vector<Shape>& input_shapes, DType dt, double lo, double hi,
                              bool check_grad = true, uint64_t seed = 11) {
  std::vector<Tensor> cpu_in, gpu_in;
  for (size_t k = 0; k < input_shapes.size(); ++k) {
    Tensor x = random_tensor(input_shapes[k], seed + k, lo, hi, dt);
    Tensor xg = x.to(Device::cuda());
    if (check_grad) {
      x.requires_grad_(true);
      xg.requires_grad_(true);
    }
    cpu_in.push_back(x);
    gpu_in.push_back(xg);
  }
  const double tol = parity_tolerance(dt);
  Tensor y = f(cpu_in), yg = f(gpu_in);
  REQUIRE(yg.device().is_cuda());
  INFO("output " << y.str() << " dtype tolerance " << tol);
  CHECK(max_rel_error(yg.to(Device::cpu()), y) <= tol);
  if (!check_grad) return;
  Tensor w = random_tensor(y.shape(), seed + 100, 0.5, 1.5, dt);
  sum(mul(y, w)).backward();
  sum(mul(yg, w.to(Device::cuda()))).backward();
  for (size_t k = 0; k < cpu_in.size(); ++k) {
    INFO("gradient of input " << k);
    REQUIRE(cpu_in[k].grad().defined());
    REQUIRE(gpu_in[k].grad().defined());
    CHECK(max_rel_error(gpu_in[k].grad().to(Device::cpu()), cpu_in[k].grad()) <= tol);
  }
}

}  // namespace retort::test
