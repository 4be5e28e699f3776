// Kernel family "binary": add, sub, mul, div and maximum with broadcasting, through the op
// cases (ops/op_case.h): f64 gradients, bf16, transposed operands and CUDA parity (whose shapes
// reach every path of the CUDA kernel: vectorised dense, one element, strided). maximum's
// finite differences run on operands kept apart (its gradient is undefined where they tie).
// Hand-computed values of maximum are in test_unary.cpp with the other elementwise ops.
#include "helpers.h"
#include "ops/op_case.h"

using namespace retort;
using retort::test::gradcheck;
using retort::test::random_tensor;

namespace {
using V = std::vector<Tensor>;
test::OpCase binary_case(std::string op, test::OpFn fn) {
  test::OpCase c;
  c.name = op + ", broadcast";
  c.op = std::move(op);
  c.fn = std::move(fn);
  c.shapes = {{3, 5}, {5}};
  // The CUDA kernel's paths: dense operands (16-byte vectors and an odd tail), one broadcast
  // element on either side, and the general strided walk.
  c.gpu_shapes = {{{1}, {1}}, {{33, 65}, {65}}, {{7, 1, 5}, {1, 3, 5}}, {{1}, {1031}}, {{5, 9, 31}, {9, 1}},
                  {{65, 33}, {33, 65}}, {{1031}, {1031}}, {{64, 256}, {64, 256}}, {{4099}, {1}}, {{3, 7}, {3, 7}}};
  c.lo = 0.5, c.hi = 2.0;  // positive: div stays away from 0
  return c;
}
test::OpCase maximum_case() {
  test::OpCase c = binary_case("maximum", [](const V& in) { return maximum(in[0], in[1]); });
  c.lo = -1, c.hi = 1;
  c.gpu_shapes = {{{33, 65}, {65}}, {{7, 1, 5}, {1, 3, 5}}};
  c.gradcheck = false;  // the dedicated gradcheck below keeps the operands apart
  return c;
}
const test::OpCases kBinaryCases("binary",
                                 {binary_case("add", [](const V& in) { return add(in[0], in[1]); }),
                                  binary_case("sub", [](const V& in) { return sub(in[0], in[1]); }),
                                  binary_case("mul", [](const V& in) { return mul(in[0], in[1]); }),
                                  binary_case("div", [](const V& in) { return div(in[0], in[1]); }),
                                  maximum_case()});
}  // namespace

TEST_CASE("gradcheck: add, sub, mul, div with broadcasting") { test::check_gradients(kBinaryCases); }

TEST_CASE("gradcheck: maximum, operands kept apart") {
  // a [3, 5] against b [5]: keep |a - b| away from 0 so the max is differentiable
  auto b = random_tensor({5}, 26, -1.0, 1.0);
  std::vector<double> av = random_tensor({3, 5}, 27, 0.1, 1.0).to_vector(), bv = b.to_vector();
  for (size_t i = 0; i < av.size(); ++i) av[i] = bv[i % 5] + (i % 2 ? av[i] : -av[i]);
  auto a = Tensor::from_vector(av, {3, 5}, DType::f64);
  gradcheck([](const V& in) { return maximum(in[0], in[1]); }, {a, b});
  gradcheck([](const V& in) { return maximum(in[1], in[0]); }, {a, b});
}

TEST_CASE("op cases: binary ops in bf16 and on transposed operands") {
  test::check_bf16(kBinaryCases);
  test::check_transposed(kBinaryCases);
}

TEST_SUITE("gpu") {
TEST_CASE("cuda parity: add, sub, mul, div, maximum with broadcasting") {
  RETORT_REQUIRE_GPU();
  test::check_cuda_parity(kBinaryCases);
}
}
