// softmax / log_softmax: hand-computed values, stability with large logits, any dim,
// errors; gradients, bf16, transposed inputs and CUDA parity through the op cases (ops/op_case.h).
#include <cmath>
#include "helpers.h"
#include "ops/op_case.h"

using namespace retort;
using retort::test::check_close;
using retort::test::random_tensor;

TEST_CASE("softmax and log_softmax: hand-computed rows") {
  Tensor a = Tensor::from_vector({0, std::log(2.0), std::log(3.0)}, {1, 3}, DType::f64);
  check_close(softmax(a, 1), {1.0 / 6, 2.0 / 6, 3.0 / 6}, 1e-12);
  check_close(log_softmax(a, -1), {std::log(1.0 / 6), std::log(2.0 / 6), std::log(3.0 / 6)}, 1e-12);
  // Large logits: max-subtracted, no overflow.
  Tensor big = Tensor::from_vector({1000, 1000, 1001}, {3});
  const double e = std::exp(1.0);
  check_close(softmax(big, 0), {1 / (2 + e), 1 / (2 + e), e / (2 + e)}, 1e-6);
  check_close(log_softmax(big, 0), {-std::log(2 + e), -std::log(2 + e), 1 - std::log(2 + e)}, 1e-6);
  Tensor neg = Tensor::from_vector({-1000, 0}, {2});
  check_close(log_softmax(neg, 0), {-1000, 0}, 1e-6);
}

TEST_CASE("softmax over a non-last dim matches the transposed computation") {
  Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::f64);
  // dim 0: columns (1,4), (2,5), (3,6): softmax = (1/(1+e^3), e^3/(1+e^3)) for each column
  double lo = 1 / (1 + std::exp(3.0)), hi = 1 - lo;
  check_close(softmax(a, 0), {lo, lo, lo, hi, hi, hi}, 1e-12);
  Tensor x = random_tensor({3, 4, 5}, 9);
  Tensor viaT = softmax(x.transpose(1, 2).contiguous(), 2).transpose(1, 2).contiguous();
  check_close(softmax(x, 1), viaT.to_vector(), 1e-12);
  CHECK(softmax(x, 1).shape() == Shape{3, 4, 5});
  // rows sum to one
  check_close(sum(softmax(x, 1), {1}), std::vector<double>(15, 1.0), 1e-12);
  // a non-contiguous input
  Tensor xt = x.transpose(0, 2);
  check_close(log_softmax(xt, 1), log_softmax(xt.contiguous(), 1).to_vector(), 1e-12);
}

TEST_CASE("softmax: clear errors") {
  CHECK_THROWS_WITH_AS(softmax(Tensor::ones({2, 3}), 2), doctest::Contains("softmax"), Error);
  CHECK_THROWS_WITH_AS(log_softmax(Tensor::from_i64({1, 2}, {2}), 0), doctest::Contains("log_softmax: expects a floating"),
                       Error);
}

namespace {
test::OpCase softmax_case(bool log, int64_t dim) {
  test::OpCase c;
  c.op = log ? "log_softmax" : "softmax";
  c.name = c.op + " dim " + std::to_string(dim);
  c.fn = [log, dim](const std::vector<Tensor>& in) { return log ? log_softmax(in[0], dim) : softmax(in[0], dim); };
  c.shapes = {{3, 5, 7}};
  c.gpu_shapes = {{{3, 5, 7}}, {{7, 1000}}, {{2, 3, 5001}}, {{1, 1}}};
  c.lo = -4, c.hi = 4;
  return c;
}
const test::OpCases kSoftmaxCases("softmax", [] {
  std::vector<test::OpCase> cases;
  for (bool log : {false, true})
    for (int64_t d : {0, 1, -1}) cases.push_back(softmax_case(log, d));
  return cases;
}());
}  // namespace

TEST_CASE("gradcheck: softmax and log_softmax on every dim") { test::check_gradients(kSoftmaxCases); }
TEST_CASE("op cases: softmax and log_softmax in bf16 and on transposed inputs") {
  test::check_bf16(kSoftmaxCases);
  test::check_transposed(kSoftmaxCases);
}

TEST_SUITE("gpu") {
  TEST_CASE("cuda parity: softmax, log_softmax") {
    RETORT_REQUIRE_GPU();
    test::check_cuda_parity(kSoftmaxCases);
  }
}
