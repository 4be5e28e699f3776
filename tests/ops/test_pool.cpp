// Pooling: hand-computed max/avg/adaptive values and gradients, shape errors; gradients for
// every option on odd shapes, bf16, transposed inputs and CUDA parity through the op cases.
#include "helpers.h"
#include "ops/op_case.h"

using namespace retort;
using retort::test::check_close;

namespace {
Tensor sample_4x4(DType dt = DType::f64) {
  return Tensor::from_vector({1, 9, 2, 0, 3, 4, 8, 7, 6, 5, 1, 2, 0, 3, 9, 4}, {1, 1, 4, 4}, dt);
}
}  // namespace

TEST_CASE("max_pool2d: hand-computed values and gradient to the argmax") {
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    check_close(max_pool2d(sample_4x4(dt), {2, 2}, {2, 2}), {9, 8, 6, 9});
    Tensor y = max_pool2d(sample_4x4(dt), {3, 3}, {2, 2}, {1, 1});
    CHECK(y.shape() == Shape{1, 1, 2, 2});
    check_close(y, {9, 9, 6, 9});
  }
  Tensor x = sample_4x4().requires_grad_();
  sum(max_pool2d(x, {3, 3}, {2, 2}, {1, 1})).backward();
  // The 9 at (0, 1) is the maximum of two windows and gets both gradients.
  check_close(x.grad(), {0, 2, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0});
}

TEST_CASE("avg_pool2d: hand-computed values with and without counting the padding") {
  check_close(avg_pool2d(sample_4x4(), {2, 2}, {2, 2}), {4.25, 4.25, 3.5, 4});
  check_close(avg_pool2d(sample_4x4(), {3, 3}, {2, 2}, {1, 1}, true), {17.0 / 9, 30.0 / 9, 21.0 / 9, 43.0 / 9});
  check_close(avg_pool2d(sample_4x4(), {3, 3}, {2, 2}, {1, 1}, false), {17.0 / 4, 5, 3.5, 43.0 / 9});
  Tensor x = sample_4x4().requires_grad_();
  sum(avg_pool2d(x, {3, 3}, {2, 2}, {1, 1}, false)).backward();
  // Element (0, 0) is only in the first window (divisor 4); (1, 1) is in all four (4, 6, 6, 9).
  check_close(x.grad().select(2, 0).select(2, 0), {0.25});
  check_close(x.grad().select(2, 1).select(2, 1), {0.25 + 1.0 / 6 + 1.0 / 6 + 1.0 / 9});
}

TEST_CASE("adaptive_avg_pool2d: PyTorch's window rule on non-divisible sizes") {
  Tensor x = Tensor::arange(25, DType::f64).reshape({1, 1, 5, 5});
  Tensor y = adaptive_avg_pool2d(x, {3, 3});
  CHECK(y.shape() == Shape{1, 1, 3, 3});
  check_close(y, {3, 4.5, 6, 10.5, 12, 13.5, 18, 19.5, 21});
  check_close(adaptive_avg_pool2d(x, {1, 1}), {12});
  // 4 x 6 -> 2 x 4: column windows [0, 2), [1, 3), [3, 5), [4, 6).
  Tensor z = Tensor::arange(24, DType::f32).reshape({1, 1, 4, 6});
  check_close(adaptive_avg_pool2d(z, {2, 4}), {3.5, 4.5, 6.5, 7.5, 15.5, 16.5, 18.5, 19.5});
  // Gradient: element (2, 2) of the 5 x 5 input lies in output windows (1, 1) only (9 elements).
  Tensor xg = x.clone().requires_grad_();
  sum(adaptive_avg_pool2d(xg, {3, 3})).backward();
  check_close(xg.grad().select(2, 2).select(2, 2), {1.0 / 9});
  // Element (1, 1) lies in windows (0..1) x (0..1): 1/4 + 1/6 + 1/6 + 1/9.
  check_close(xg.grad().select(2, 1).select(2, 1), {0.25 + 1.0 / 6 + 1.0 / 6 + 1.0 / 9});
}

namespace {
using V = std::vector<Tensor>;
test::OpCase pool_case(std::string name, std::string op, test::OpFn fn) {
  test::OpCase c;
  c.name = std::move(name), c.op = std::move(op), c.fn = std::move(fn);
  c.shapes = {{2, 3, 7, 5}};
  c.gpu_shapes = {{{2, 3, 7, 5}}, {{1, 5, 13, 17}}, {{4, 16, 28, 28}}};
  return c;
}
test::OpCase max_case(std::string name, test::OpFn fn) {
  test::OpCase c = pool_case(std::move(name), "max_pool2d", std::move(fn));
  c.bf16 = false;  // rounding to bf16 makes ties, and the gradient goes to another (first) maximum
  return c;
}
std::vector<test::OpCase> pool_cases() {
  std::vector<test::OpCase> cases = {
      max_case("max 3x3, stride 2, padding 1", [](const V& in) { return max_pool2d(in[0], {3, 3}, {2, 2}, {1, 1}); }),
      max_case("max 2x3, stride 1x2, padding 1x0", [](const V& in) { return max_pool2d(in[0], {2, 3}, {1, 2}, {1, 0}); }),
      max_case("max 2x2, stride 2", [](const V& in) { return max_pool2d(in[0], {2, 2}, {2, 2}); }),
      pool_case("adaptive avg to 3x2", "adaptive_avg_pool2d", [](const V& in) { return adaptive_avg_pool2d(in[0], {3, 2}); }),
      pool_case("adaptive avg to 1x1", "adaptive_avg_pool2d", [](const V& in) { return adaptive_avg_pool2d(in[0], {1, 1}); }),
      pool_case("adaptive avg, upsampling", "adaptive_avg_pool2d",
                [](const V& in) { return adaptive_avg_pool2d(in[0], {in[0].size(2) + 2, in[0].size(3) + 1}); }),
  };
  for (bool include_pad : {true, false}) {
    const std::string counting = include_pad ? ", padding counted" : ", padding not counted";
    cases.push_back(pool_case("avg 3x3, stride 2, padding 1" + counting, "avg_pool2d", [include_pad](const V& in) {
      return avg_pool2d(in[0], {3, 3}, {2, 2}, {1, 1}, include_pad);
    }));
    cases.push_back(pool_case("avg 2x3, stride 1x2, padding 1" + counting, "avg_pool2d", [include_pad](const V& in) {
      return avg_pool2d(in[0], {2, 3}, {1, 2}, {1, 1}, include_pad);
    }));
  }
  return cases;
}
const test::OpCases kPoolCases("pool", pool_cases());
}  // namespace

TEST_CASE("gradcheck: max_pool2d, avg_pool2d, adaptive_avg_pool2d on odd shapes and every option") {
  test::check_gradients(kPoolCases);
}
TEST_CASE("op cases: pooling in bf16 and on transposed inputs") {
  test::check_bf16(kPoolCases);
  test::check_transposed(kPoolCases);
}

TEST_CASE("pooling: shape errors name the op and the operand") {
  CHECK_THROWS_WITH_AS(max_pool2d(Tensor::ones({3, 8, 8}), {2, 2}, {2, 2}),
                       doctest::Contains("max_pool2d: input (x) must be 4-D [N, C, H, W], got shape [3, 8, 8]"), Error);
  CHECK_THROWS_WITH_AS(avg_pool2d(Tensor::ones({1, 3, 8, 8}), {2, 2}, {2, 2}, {2, 2}),
                       doctest::Contains("avg_pool2d: padding [2, 2] must be >= 0 and at most half the kernel [2, 2]"),
                       Error);
  CHECK_THROWS_WITH_AS(max_pool2d(Tensor::ones({1, 3, 2, 2}), {3, 3}, {1, 1}),
                       doctest::Contains("max_pool2d: input (x) [1, 3, 2, 2] is too small for kernel [3, 3]"), Error);
  CHECK_THROWS_WITH_AS(max_pool2d(Tensor::ones({1, 3, 8, 8}), {2, 2}, {0, 2}),
                       doctest::Contains("max_pool2d: stride must be >= 1"), Error);
  CHECK_THROWS_WITH_AS(adaptive_avg_pool2d(Tensor::ones({1, 3, 8, 8}), {0, 2}),
                       doctest::Contains("adaptive_avg_pool2d: output_size must be >= 1"), Error);
}

TEST_SUITE("gpu") {
TEST_CASE("cuda parity: max_pool2d, avg_pool2d, adaptive_avg_pool2d forward and backward") {
  RETORT_REQUIRE_GPU();
  test::check_cuda_parity(kPoolCases);
}
}  // TEST_SUITE
