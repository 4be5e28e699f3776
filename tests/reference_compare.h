// Comparing retort's tensors with a reference implementation's (PyTorch, torchdistill,
// RepDistiller): relative errors norm-wise (||a - b|| / ||b||) and element-wise scaled by the
// reference's largest magnitude (max |a - b| / max |b|), and the check both must pass. Used by
// the model parity tests (tests/parity) and the loss reference-value tests (tests/transfer).
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include "helpers.h"

namespace retort::test {

struct RelErrors {
  double norm_rel = 0;  // ||a - b|| / ||b||
  double max_rel = 0;   // max |a - b| / max |b|
};

inline RelErrors rel_errors(const Tensor& actual, const Tensor& reference) {
  REQUIRE(actual.shape() == reference.shape());
  auto a = actual.detach().to(Device::cpu()).to_vector(), b = reference.detach().to(Device::cpu()).to_vector();
  double diff2 = 0, ref2 = 0, max_diff = 0, max_ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double d = std::abs(a[i] - b[i]);
    if (std::isnan(a[i]) || std::isnan(b[i])) d = INFINITY;
    diff2 += d * d;
    ref2 += b[i] * b[i];
    max_diff = std::max(max_diff, d);
    max_ref = std::max(max_ref, std::abs(b[i]));
  }
  REQUIRE_MESSAGE(max_ref > 0, "the reference is all zeros, nothing to compare");
  return {std::sqrt(diff2 / ref2), max_diff / max_ref};
}

// The worst errors seen over several comparisons, for one summary line.
struct Worst {
  RelErrors err;
  std::string norm_what, max_what;
  void add(const std::string& what, const RelErrors& e) {
    if (e.norm_rel >= err.norm_rel) err.norm_rel = e.norm_rel, norm_what = what;
    if (e.max_rel >= err.max_rel) err.max_rel = e.max_rel, max_what = what;
  }
};

// `actual` must match `reference` within tol, norm-wise and max-abs (scaled by the
// reference's largest magnitude).
inline void check_matches(const std::string& what, const Tensor& actual, const Tensor& reference, double tol,
                          Worst* worst = nullptr) {
  INFO(what << ": actual " << actual.str() << ", reference " << reference.str());
  RelErrors e = rel_errors(actual, reference);
  INFO(what << ": norm-wise rel err " << e.norm_rel << ", max-abs rel err " << e.max_rel << " (tol " << tol << ")");
  CHECK(e.norm_rel <= tol);
  CHECK(e.max_rel <= tol);
  if (worst) worst->add(what, e);
}

}  // namespace retort::test
