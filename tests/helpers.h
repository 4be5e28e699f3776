// Test helpers: random inputs, tensor comparisons, finite-difference gradient checks in f64,
// and the GPU-skip convention (ctest reports a skipped GPU test as "Skipped", never "Passed").
#pragma once
#include <doctest/doctest.h>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <vector>
#include "engine/retort.h"

namespace retort::test {

// A file of the source tree (fixtures, corpora): under $RETORT_SOURCE_DIR when set (a test
// binary carried to another machine, as the GPU kit does), else the tree it was built from.
inline std::filesystem::path source_path(const std::string& relative) {
  const char* root = std::getenv("RETORT_SOURCE_DIR");
  return std::filesystem::path(root && *root ? root : RETORT_SOURCE_DIR) / relative;
}

// Random tensor with values uniform in [lo, hi) (never all zeros), deterministic per seed.
inline Tensor random_tensor(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0,
                            DType dtype = DType::f64, Device device = Device::cpu()) {
  Generator g(seed);
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (auto& x : v) x = lo + (hi - lo) * g.uniform();
  return Tensor::from_vector(v, shape, dtype, device);
}

// True when a and b have the same dtype, shape and element bytes (views compared by value).
inline bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  Tensor ca = a.detach().contiguous(), cb = b.detach().contiguous();
  return std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

// Max |a-b| / (atol_scale + |b|) elementwise; shapes must match.
inline double max_rel_error(const Tensor& a, const Tensor& b, double floor = 1.0) {
  REQUIRE(a.shape() == b.shape());
  auto va = a.to_vector(), vb = b.to_vector();
  double worst = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    double e = std::abs(va[i] - vb[i]) / (floor + std::abs(vb[i]));
    if (std::isnan(va[i]) != std::isnan(vb[i])) e = INFINITY;
    worst = std::max(worst, e);
  }
  return worst;
}

inline void check_close(const Tensor& actual, const std::vector<double>& expected, double tol = 1e-6) {
  REQUIRE(actual.numel() == int64_t(expected.size()));
  auto v = actual.to_vector();
  for (size_t i = 0; i < v.size(); ++i) {
    INFO("element " << i << ": got " << v[i] << ", expected " << expected[i]);
    CHECK(std::abs(v[i] - expected[i]) <= tol * (1.0 + std::abs(expected[i])));
  }
}

// Finite-difference gradient check in f64. f maps the inputs to any tensor; the check
// contracts it with a fixed random weight so every output element is tested.
inline void gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                      double eps = 1e-6, double tol = 1e-5) {
  for (auto& t : inputs) {
    REQUIRE(t.dtype() == DType::f64);
    t = t.detach().clone();
    t.requires_grad_(true);
  }
  Tensor out0 = f(inputs);
  Tensor w = random_tensor(out0.shape(), 4242, 0.5, 1.5);
  auto scalar_of = [&](const std::vector<Tensor>& in) {
    NoGradGuard ng;
    return sum(mul(f(in), w)).item();
  };
  sum(mul(out0, w)).backward();
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor analytic = inputs[k].grad();
    REQUIRE_MESSAGE(analytic.defined(), "input " << k << " got no gradient");
    auto ga = analytic.to_vector();
    Tensor base = inputs[k].detach().contiguous();
    std::vector<double> vals = base.to_vector();
    for (size_t i = 0; i < vals.size(); ++i) {
      auto perturbed = [&](double delta) {
        std::vector<double> v = vals;
        v[i] += delta;
        std::vector<Tensor> in = inputs;
        in[k] = Tensor::from_vector(v, base.shape(), DType::f64);
        return scalar_of(in);
      };
      double numeric = (perturbed(eps) - perturbed(-eps)) / (2 * eps);
      INFO("input " << k << " element " << i << ": analytic " << ga[i] << " numeric " << numeric);
      CHECK(std::abs(ga[i] - numeric) <= tol * (1.0 + std::abs(numeric)));
    }
  }
}

// GPU tests: call at the top; when no GPU is usable it prints the marker ctest reads as
// "skipped" (SKIP_REGULAR_EXPRESSION) and returns true, and the test must return at once.
inline bool skip_without_gpu(const char* what) {
  if (cuda_available()) return false;
  std::printf("RETORT_GPU_SKIPPED: %s (no usable GPU: %s)\n", what, cuda_unavailable_reason().c_str());
  return true;
}
#define RETORT_REQUIRE_GPU()                              \
  do {                                                    \
    if (::retort::test::skip_without_gpu(doctest::getContextOptions() ? "CUDA test" : "CUDA test")) return; \
  } while (0)

}  // namespace retort::test
