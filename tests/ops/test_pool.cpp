// Pooling: hand-computed max/avg/adaptive values and gradients, f64 gradchecks for every
// option on odd shapes, shape errors, and CUDA parity (skipped without a GPU).
#include "helpers.h"

using namespace retort;
using retort::test::check_close;
using retort::test::gradcheck;
using retort::test::max_rel_error;
using retort::test::random_tensor;

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

TEST_CASE("gradcheck: max_pool2d, avg_pool2d, adaptive_avg_pool2d on odd shapes and every option") {
  Tensor x = random_tensor({2, 3, 7, 5}, 801);
  gradcheck([](const std::vector<Tensor>& in) { return max_pool2d(in[0], {3, 3}, {2, 2}, {1, 1}); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return max_pool2d(in[0], {2, 3}, {1, 2}, {1, 0}); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return max_pool2d(in[0], {2, 2}, {2, 2}); }, {x});
  for (bool include_pad : {true, false}) {
    gradcheck([include_pad](const std::vector<Tensor>& in) { return avg_pool2d(in[0], {3, 3}, {2, 2}, {1, 1}, include_pad); },
              {x});
    gradcheck([include_pad](const std::vector<Tensor>& in) { return avg_pool2d(in[0], {2, 3}, {1, 2}, {1, 1}, include_pad); },
              {x});
  }
  gradcheck([](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], {3, 2}); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], {1, 1}); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], {9, 6}); }, {x});  // upsampling
  // A non-contiguous input.
  gradcheck([](const std::vector<Tensor>& in) { return max_pool2d(in[0].transpose(2, 3), {2, 2}, {1, 1}); }, {x});
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
  const Device gpu = Device::cuda(0);
  std::vector<Shape> shapes{{2, 3, 7, 5}, {1, 5, 13, 17}, {4, 16, 28, 28}};
  uint64_t seed = 900;
  for (const Shape& s : shapes)
    for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
      const double tol = dt == DType::bf16 ? 1e-2 : (dt == DType::f32 ? 1e-5 : 1e-12);
      Tensor x = random_tensor(s, seed++, -1, 1, dt);
      std::vector<std::pair<const char*, std::function<Tensor(const Tensor&)>>> ops{
          {"max 3/2/1", [](const Tensor& t) { return max_pool2d(t, {3, 3}, {2, 2}, {1, 1}); }},
          {"max 2x3/1x2/1x0", [](const Tensor& t) { return max_pool2d(t, {2, 3}, {1, 2}, {1, 0}); }},
          {"avg 3/2/1 incl", [](const Tensor& t) { return avg_pool2d(t, {3, 3}, {2, 2}, {1, 1}, true); }},
          {"avg 3/2/1 excl", [](const Tensor& t) { return avg_pool2d(t, {3, 3}, {2, 2}, {1, 1}, false); }},
          {"adaptive 3x2", [](const Tensor& t) { return adaptive_avg_pool2d(t, {3, 2}); }},
          {"adaptive 1x1", [](const Tensor& t) { return adaptive_avg_pool2d(t, {1, 1}); }},
          {"adaptive up", [s](const Tensor& t) { return adaptive_avg_pool2d(t, {s[2] + 2, s[3] + 1}); }}};
      for (auto& [name, op] : ops) {
        INFO(name << " shape " << shape_str(s) << " dtype " << dtype_name(dt));
        Tensor xc = x.clone().requires_grad_(), xg = x.to(gpu).requires_grad_();
        Tensor yc = op(xc), yg = op(xg);
        CHECK(max_rel_error(yg.to(Device::cpu()), yc) < tol);
        Tensor gy = random_tensor(yc.shape(), seed++, -1, 1, dt);
        sum(mul(yc, gy)).backward();
        sum(mul(yg, gy.to(gpu))).backward();
        CHECK(max_rel_error(xg.grad().to(Device::cpu()), xc.grad()) < tol);
      }
    }
}
}  // TEST_SUITE
