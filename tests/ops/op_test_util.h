// Helpers shared by the op tests in tests/ops: inputs kept away from kinks, and the one
// tolerance rule (the harness that uses them: ops/op_case.h).
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

// The one tolerance rule of the op tests: the relative error (floor 1) allowed between two
// computations of the same function in `dt`: f64 1e-12, f32 1e-5, bf16 1e-2.
inline double op_tolerance(DType dt) { return dt == DType::bf16 ? 1e-2 : (dt == DType::f32 ? 1e-5 : 1e-12); }

}  // namespace retort::test
