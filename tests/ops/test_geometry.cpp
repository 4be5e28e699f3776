// Geometry ops l2_normalize and pairwise_sq_dist: hand-computed values, eps clamping,
// f64 gradchecks, errors and CUDA parity.
#include <cmath>
#include "helpers.h"
#include "ops/parity.h"

using namespace retort;
using retort::test::check_close;
using retort::test::gradcheck;
using retort::test::random_tensor;

TEST_CASE("l2_normalize: values along a dim and the eps clamp") {
  Tensor x = Tensor::from_vector({3, 4, 0, 0}, {2, 2}, DType::f64);
  check_close(l2_normalize(x, 1), {0.6, 0.8, 0, 0}, 1e-12);
  Tensor y = Tensor::from_vector({3, 1, 4, 0}, {2, 2}, DType::f64);
  check_close(l2_normalize(y, 0), {0.6, 1, 0.8, 0}, 1e-12);
  check_close(l2_normalize(y, -2), {0.6, 1, 0.8, 0}, 1e-12);
  // ||x|| = 1e-13 < eps = 1e-12: divided by eps instead.
  Tensor tiny = Tensor::from_vector({1e-13, 0}, {2}, DType::f64);
  check_close(l2_normalize(tiny, 0), {0.1, 0}, 1e-12);
  // Clamped rows get the gradient g / eps.
  Tensor t = Tensor::from_vector({0.3, -0.4}, {1, 2}, DType::f64).requires_grad_(true);
  l2_normalize(t, 1, 2.0).backward(Tensor::from_vector({1, 3}, {1, 2}, DType::f64));
  check_close(t.grad(), {0.5, 1.5}, 1e-12);
  CHECK_THROWS_WITH_AS(l2_normalize(x, 2), doctest::Contains("l2_normalize"), Error);
  CHECK_THROWS_WITH_AS(l2_normalize(Tensor::from_i64({1}, {1}), 0), doctest::Contains("expects a floating"), Error);
}

TEST_CASE("pairwise_sq_dist: values by hand") {
  Tensor a = Tensor::from_vector({0, 0, 1, 2}, {2, 2});
  Tensor b = Tensor::from_vector({1, 0, 3, 4, 0, 0}, {3, 2});
  Tensor d = pairwise_sq_dist(a, b);
  CHECK(d.shape() == Shape{2, 3});
  check_close(d, {1, 25, 0, 4, 8, 5});
  // identical points give exactly 0 (never negative)
  Tensor p = random_tensor({4, 5}, 61, -100, 100, DType::f32);
  auto self = pairwise_sq_dist(p, p).to_vector();
  for (int i = 0; i < 4; ++i) CHECK(self[size_t(i * 4 + i)] == 0.0);
  for (double v : self) CHECK(v >= 0.0);
  CHECK_THROWS_WITH_AS(pairwise_sq_dist(a, Tensor::ones({3, 3})), doctest::Contains("pairwise_sq_dist: expects a [N, D]"),
                       Error);
  CHECK_THROWS_WITH_AS(pairwise_sq_dist(a, Tensor::ones({3, 2}, DType::f64)), doctest::Contains("one floating dtype"),
                       Error);
}

TEST_CASE("gradcheck: l2_normalize and pairwise_sq_dist") {
  auto x = random_tensor({3, 5, 7}, 62);
  for (int64_t d : {0, 1, 2})
    gradcheck([d](const std::vector<Tensor>& in) { return l2_normalize(in[0], d); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return l2_normalize(in[0], 1, 5.0); }, {random_tensor({3, 5}, 63)});
  auto a = random_tensor({5, 3}, 64), b = random_tensor({7, 3}, 65);
  gradcheck([](const std::vector<Tensor>& in) { return pairwise_sq_dist(in[0], in[1]); }, {a, b});
  gradcheck([](const std::vector<Tensor>& in) { return pairwise_sq_dist(in[0], in[0]); }, {a});
}

TEST_SUITE("gpu") {
  TEST_CASE("cuda parity: l2_normalize") {
    RETORT_REQUIRE_GPU();
    for (Shape s : {Shape{3, 5, 7}, Shape{9, 1000}, Shape{2, 4099}}) {
      auto x = random_tensor(s, 71);
      for (DType dt : {DType::f32, DType::f64, DType::bf16})
        for (int64_t d : {0, -1})
          retort::test::check_cuda_parity([d](const std::vector<Tensor>& in) { return l2_normalize(in[0], d); }, {x}, dt,
                                          dt == DType::bf16 ? 1e-2 : 1e-5);
    }
  }
  TEST_CASE("cuda parity: pairwise_sq_dist") {
    RETORT_REQUIRE_GPU();
    for (auto [n, m, d] : {std::array<int64_t, 3>{5, 7, 3}, {33, 17, 65}, {100, 70, 129}, {1, 1, 1}}) {
      auto a = random_tensor({n, d}, 72), b = random_tensor({m, d}, 73);
      for (DType dt : {DType::f32, DType::f64, DType::bf16})
        retort::test::check_cuda_parity([](const std::vector<Tensor>& in) { return pairwise_sq_dist(in[0], in[1]); },
                                        {a, b}, dt, dt == DType::bf16 ? 1e-2 : 1e-5);
    }
  }
}
