// Geometry ops l2_normalize and pairwise_sq_dist: hand-computed values, eps clamping,
// errors; gradients, bf16, transposed inputs and CUDA parity through the op cases.
#include <cmath>
#include "helpers.h"
#include "ops/op_case.h"

using namespace retort;
using retort::test::check_close;
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

namespace {
using V = std::vector<Tensor>;
std::vector<test::OpCase> geometry_cases() {
  std::vector<test::OpCase> cases;
  for (int64_t d : {0, 1, 2}) {
    test::OpCase c;
    c.op = "l2_normalize";
    c.name = "l2_normalize dim " + std::to_string(d);
    c.fn = [d](const V& in) { return l2_normalize(in[0], d); };
    c.shapes = {{3, 5, 7}};
    c.gpu_shapes = {{{3, 5, 7}}, {{9, 1000, 1}}, {{2, 4099, 1}}};
    cases.push_back(c);
  }
  test::OpCase clamped;
  clamped.op = "l2_normalize";
  clamped.name = "l2_normalize dim 1, eps 5 (the clamp)";
  clamped.fn = [](const V& in) { return l2_normalize(in[0], 1, 5.0); };
  clamped.shapes = {{3, 5}};
  cases.push_back(clamped);
  test::OpCase dist;
  dist.op = "pairwise_sq_dist";
  dist.name = "pairwise_sq_dist [N, D] x [M, D]";
  dist.fn = [](const V& in) { return pairwise_sq_dist(in[0], in[1]); };
  dist.shapes = {{5, 3}, {7, 3}};
  dist.gpu_shapes = {{{5, 3}, {7, 3}}, {{33, 65}, {17, 65}}, {{100, 129}, {70, 129}}, {{1, 1}, {1, 1}}};
  dist.transposed = false;  // rows are points
  cases.push_back(dist);
  test::OpCase self = dist;
  self.name = "pairwise_sq_dist of a set with itself";
  self.fn = [](const V& in) { return pairwise_sq_dist(in[0], in[0]); };
  self.shapes = {{5, 3}};
  self.gpu_shapes = {};
  cases.push_back(self);
  return cases;
}
const test::OpCases kGeometryCases("geometry", geometry_cases());
}  // namespace

TEST_CASE("gradcheck: l2_normalize and pairwise_sq_dist") { test::check_gradients(kGeometryCases); }
TEST_CASE("op cases: l2_normalize and pairwise_sq_dist in bf16 and on transposed inputs") {
  test::check_bf16(kGeometryCases);
  test::check_transposed(kGeometryCases);
}

TEST_SUITE("gpu") {
  TEST_CASE("cuda parity: l2_normalize, pairwise_sq_dist") {
    RETORT_REQUIRE_GPU();
    test::check_cuda_parity(kGeometryCases);
  }
}
