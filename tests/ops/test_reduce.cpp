// Reductions mean, max, var, argmax: hand-computed values and errors; gradients, bf16,
// transposed inputs and CUDA parity through the op cases; argmax parity exactly, by itself.
#include <cmath>
#include "helpers.h"
#include "ops/op_case.h"

using namespace retort;
using retort::test::check_close;
using retort::test::random_tensor;

TEST_CASE("mean: values over all dims, one dim, keepdim") {
  Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  check_close(mean(a), {3.5});
  CHECK(mean(a).dim() == 0);
  check_close(mean(a, {0}), {2.5, 3.5, 4.5});
  Tensor m = mean(a, {-1}, true);
  CHECK(m.shape() == Shape{2, 1});
  check_close(m, {2, 5});
}

TEST_CASE("max: values, and the gradient goes to the first maximum only") {
  Tensor a = Tensor::from_vector({1, 5, 3, 4, 2, 6}, {2, 3});
  check_close(max(a), {6});
  check_close(max(a, {1}), {5, 6});
  check_close(max(a, {0}, true), {4, 5, 6});
  CHECK(max(a, {0}, true).shape() == Shape{1, 3});
  Tensor t = Tensor::from_vector({2, 7, 7, 1, 9, 9}, {2, 3}, DType::f64).requires_grad_(true);
  max(t, {1}).backward(Tensor::from_vector({10, 20}, {2}, DType::f64));
  check_close(t.grad(), {0, 10, 0, 0, 20, 0});
  Tensor u = Tensor::from_vector({3, 8, 8, 1}, {2, 2}, DType::f64).requires_grad_(true);
  max(u).backward();
  check_close(u.grad(), {0, 1, 0, 0});
}

TEST_CASE("var: unbiased and biased, over dims") {
  Tensor a = Tensor::from_vector({1, 2, 3, 4}, {4}, DType::f64);
  check_close(var(a), {5.0 / 3.0}, 1e-12);
  check_close(var(a, {}, false, false), {1.25}, 1e-12);
  Tensor b = Tensor::from_vector({1, 3, 2, 6, 10, 2}, {3, 2}, DType::f64);
  // columns: {1, 2, 10} mean 13/3; {3, 6, 2} mean 11/3
  check_close(var(b, {0}), {(std::pow(1 - 13.0 / 3, 2) + std::pow(2 - 13.0 / 3, 2) + std::pow(10 - 13.0 / 3, 2)) / 2,
                            (std::pow(3 - 11.0 / 3, 2) + std::pow(6 - 11.0 / 3, 2) + std::pow(2 - 11.0 / 3, 2)) / 2},
              1e-12);
  check_close(var(b, {1}, true), {2, 8, 32}, 1e-12);
  CHECK(var(b, {1}, true).shape() == Shape{3, 1});
  // A large offset must not destroy the result (two-pass).
  Tensor c = Tensor::from_vector({1e8 + 1, 1e8 + 2, 1e8 + 3, 1e8 + 4}, {4}, DType::f64);
  check_close(var(c), {5.0 / 3.0}, 1e-9);
}

TEST_CASE("argmax: first maximum, keepdim, i64 result, NaN wins") {
  Tensor a = Tensor::from_vector({1, 5, 5, 7, 2, 6}, {2, 3});
  Tensor i1 = argmax(a, 1);
  CHECK(i1.dtype() == DType::i64);
  CHECK(i1.to_i64_vector() == std::vector<int64_t>{1, 0});
  CHECK(argmax(a, 0).to_i64_vector() == std::vector<int64_t>{1, 0, 1});
  CHECK(argmax(a, -1, true).shape() == Shape{2, 1});
  Tensor n = Tensor::from_vector({1, NAN, 3, NAN}, {4});
  CHECK(argmax(n, 0).to_i64_vector() == std::vector<int64_t>{1});
  Tensor big = random_tensor({3, 37}, 5);
  auto v = big.to_vector();
  auto idx = argmax(big, 1).to_i64_vector();
  for (int r = 0; r < 3; ++r)
    for (int i = 0; i < 37; ++i) CHECK(v[size_t(r * 37 + i)] <= v[size_t(r * 37 + idx[size_t(r)])]);
  Tensor x = random_tensor({2, 3}, 6).requires_grad_(true);
  CHECK_FALSE(argmax(x, 1).requires_grad());
}

TEST_CASE("reductions: clear errors") {
  Tensor a = Tensor::ones({2, 3});
  CHECK_THROWS_WITH_AS(max(Tensor::ones({2, 0}), {1}), doctest::Contains("max: cannot reduce over an empty dim"), Error);
  CHECK_THROWS_WITH_AS(argmax(Tensor::ones({2, 0}), 1), doctest::Contains("argmax: dim 1"), Error);
  CHECK_THROWS_WITH_AS(argmax(Tensor::from_i64({1, 2}, {2}), 0), doctest::Contains("argmax: expects a floating"), Error);
  CHECK_THROWS_WITH_AS(mean(a, {0, 0}), doctest::Contains("listed twice"), Error);
  CHECK_THROWS_AS(var(a, {2}), Error);
}

namespace {
using V = std::vector<Tensor>;
test::OpCase reduce_case(std::string name, std::string op, test::OpFn fn) {
  test::OpCase c;
  c.name = std::move(name), c.op = std::move(op), c.fn = std::move(fn);
  c.shapes = {{3, 5, 7}};
  c.gpu_shapes = {{{3, 5, 7}}, {{2, 1000, 1}}, {{1, 1, 4099}}};
  return c;
}
// Sums of positive inputs stay far from 0, so the relative tolerance measures rounding, not
// cancellation.
test::OpCase sum_case(std::string name, std::vector<int64_t> dims, bool keepdim, std::vector<std::vector<Shape>> gpu) {
  test::OpCase c = reduce_case(std::move(name), "sum", [dims, keepdim](const V& in) { return sum(in[0], dims, keepdim); });
  c.gpu_shapes = std::move(gpu);
  c.lo = 0.5, c.hi = 1.5;
  return c;
}
const test::OpCases kReduceCases(
    "reduce",
    {reduce_case("mean of everything", "mean", [](const V& in) { return mean(in[0]); }),
     reduce_case("mean over dims 0, 2 (keepdim)", "mean", [](const V& in) { return mean(in[0], {0, 2}, true); }),
     reduce_case("mean over the last dim", "mean", [](const V& in) { return mean(in[0], {-1}); }),
     reduce_case("max of everything", "max", [](const V& in) { return max(in[0]); }),
     reduce_case("max over dim 1", "max", [](const V& in) { return max(in[0], {1}); }),
     reduce_case("max over dims 0, 2 (keepdim)", "max", [](const V& in) { return max(in[0], {0, 2}, true); }),
     reduce_case("var of everything", "var", [](const V& in) { return var(in[0]); }),
     reduce_case("var over the last dim", "var", [](const V& in) { return var(in[0], {2}); }),
     reduce_case("var over dims 0, 1 (keepdim, biased)", "var",
                 [](const V& in) { return var(in[0], {0, 1}, true, false); }),
     sum_case("sum of everything", {}, false, {{{1}}, {{1031}}, {{7, 1, 5}}}),
     sum_case("sum over dim 1", {1}, false, {{{33, 65}}, {{5, 9, 31}}, {{3, 100003}}}),
     sum_case("sum over dim 0 (keepdim)", {0}, true, {{{33, 65}}}),
     sum_case("sum over dims 0, 2 (keepdim)", {0, 2}, true, {{{5, 9, 31}}}),
     sum_case("sum over leading dim 0 (the CPU's column path)", {0}, false,
              {{{2176, 192}}, {{65, 17}}, {{5, 70, 19}}}),
     [] {
       test::OpCase c = reduce_case("mean over leading dim 0 (the CPU's column path)", "mean",
                                    [](const V& in) { return mean(in[0], {0}); });
       c.gpu_shapes = {{{2176, 192}}, {{65, 17}}, {{5, 70, 19}}};
       return c;
     }()},
    {{"argmax", "cuda parity: argmax (exact indices, ties to the first)"}});
}  // namespace

TEST_CASE("gradcheck: sum, mean, max, var on odd sizes") { test::check_gradients(kReduceCases); }
TEST_CASE("op cases: sum, mean, max, var in bf16 and on transposed inputs") {
  test::check_bf16(kReduceCases);
  test::check_transposed(kReduceCases);
}

TEST_SUITE("gpu") {
  TEST_CASE("cuda parity: sum, mean, max, var") {
    RETORT_REQUIRE_GPU();
    test::check_cuda_parity(kReduceCases);
  }
  TEST_CASE("cuda parity: argmax (exact indices, ties to the first)") {
    RETORT_REQUIRE_GPU();
    for (Shape s : {Shape{3, 5, 7}, Shape{5, 1023}, Shape{2, 70000}}) {
      Tensor x = random_tensor(s, 22, -1, 1, DType::f32);
      for (int64_t d : {0, -1}) {
        auto cpu_idx = argmax(x, d).to_i64_vector();
        auto gpu_idx = argmax(x.to(Device::cuda(0)), d).to_i64_vector();
        CHECK(cpu_idx == gpu_idx);
      }
    }
    // Ties resolve to the first index on both devices.
    Tensor t = Tensor::full({4, 300}, 2.0, DType::f32);
    CHECK(argmax(t.to(Device::cuda(0)), 1).to_i64_vector() == std::vector<int64_t>(4, 0));
  }
}
