// The op-test harness. An OpCase says how to call an op of engine/ops.h and on what inputs; a
// family's cases (OpCases, one per tests/ops/test_<family>.cpp) are checked by the same four
// runs, each with the one tolerance rule (op_tolerance, ops/op_test_util.h):
//   check_gradients       analytic gradients against central finite differences, in f64
//   check_bf16            bf16 against f32 on the CPU, same input values (outputs, gradients)
//   check_transposed      a transposed (non-contiguous) first input against its contiguous copy
//   check_cuda_parity     CUDA against the CPU in f32, f64 and bf16 (outputs and gradients)
// Every OpCases registers itself, and "op coverage" fails when an op declared in engine/ops.h
// has neither a case nor a named dedicated test (like ggml's test-backend-ops coverage).
#pragma once
#include <functional>
#include <string>
#include <vector>
#include "helpers.h"
#include "ops/op_test_util.h"

namespace retort::test {

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

struct OpCase {
  std::string name;  // what is tested: "softmax dim 0"
  std::string op;    // the engine/ops.h function it covers
  OpFn fn;
  std::vector<Shape> shapes;                   // small: gradcheck, bf16, transposed
  std::vector<std::vector<Shape>> gpu_shapes;  // CUDA parity sizes (kernel tails, long rows); empty: shapes
  double lo = -1, hi = 1;                      // inputs are uniform in [lo, hi)
  std::vector<std::pair<double, double>> ranges = {};  // per input [lo, hi), when they differ
  std::vector<double> kinks = {};              // ... and kept away from these points
  bool gradients = true;                       // differentiable in every input
  bool gradcheck = true;                       // finite differences apply (false: a dedicated test does it)
  bool bf16 = true;                            // bf16 follows f32 within bf16 precision
  bool cuda_bf16 = true;                       // the CUDA kernel has a bf16 path
  bool cuda_bf16_gradients = true;             // ... and its bf16 gradients meet the bf16 rule
  bool transposed = true;                      // the first input may be a transposed view
  bool cuda = true;                            // has a CUDA kernel
};

// A family's cases, registered for the coverage check. `dedicated` names ops of the family that
// have tests of their own instead of cases (random draws, views), with the test's name.
class OpCases {
 public:
  OpCases(std::string family, std::vector<OpCase> cases, std::vector<std::pair<std::string, std::string>> dedicated = {});
  const std::string& family() const { return family_; }
  const std::vector<OpCase>& cases() const { return cases_; }
  const std::vector<std::pair<std::string, std::string>>& dedicated() const { return dedicated_; }

 private:
  std::string family_;
  std::vector<OpCase> cases_;
  std::vector<std::pair<std::string, std::string>> dedicated_;
};

const std::vector<const OpCases*>& registered_op_cases();

void check_gradients(const OpCases& cases);
void check_bf16(const OpCases& cases);
void check_transposed(const OpCases& cases);
void check_cuda_parity(const OpCases& cases);  // call after RETORT_REQUIRE_GPU()

// The functions engine/ops.h declares (parsed from the file): what "op coverage" checks.
std::vector<std::string> declared_ops();

}  // namespace retort::test
