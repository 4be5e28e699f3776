// Unary/activation ops, tensor-scalar ops and maximum: hand-computed values, f64 gradchecks
// (inputs kept away from kinks), strided inputs, error messages, and CUDA parity.
#include <cmath>
#include "helpers.h"
#include "ops/op_test_util.h"

using namespace retort;
using retort::test::check_close;
using retort::test::check_cuda_parity;
using retort::test::gradcheck;
using retort::test::random_away_from;
using retort::test::random_tensor;

namespace {
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;
Tensor vec(const std::vector<double>& v, DType dt = DType::f64) {
  return Tensor::from_vector(v, {int64_t(v.size())}, dt);
}
const double kInf = INFINITY;
}  // namespace

TEST_CASE("unary ops: values on hand-computed cases") {
  const double e = std::exp(1.0);
  check_close(exp(vec({0, 1, -1})), {1, e, 1 / e}, 1e-12);
  check_close(log(vec({1, e, 0.5})), {0, 1, -0.69314718055994531}, 1e-12);
  check_close(sqrt(vec({4, 2.25, 0})), {2, 1.5, 0}, 1e-12);
  check_close(pow(vec({2, 3, 0.5}), 3.0), {8, 27, 0.125}, 1e-12);
  check_close(pow(vec({4, 9}), 0.5), {2, 3}, 1e-12);
  check_close(pow(vec({2, 4}), -1.0), {0.5, 0.25}, 1e-12);
  check_close(abs(vec({-2, 0, 3})), {2, 0, 3}, 1e-12);
  check_close(clamp(vec({-2, 0.5, 3}), -1, 1), {-1, 0.5, 1}, 1e-12);
  check_close(clamp(vec({-2, 0.5, 3}), 0, kInf), {0, 0.5, 3}, 1e-12);
  check_close(clamp(vec({-2, 0.5, 3}), -kInf, 0.25), {-2, 0.25, 0.25}, 1e-12);
  check_close(relu(vec({-1, 0, 2})), {0, 0, 2}, 1e-12);
  // gelu(x) = x * Phi(x): Phi(1) = 0.841344746068543, Phi(2) = 0.977249868051821
  check_close(gelu(vec({0, 1, -1, 2})), {0, 0.8413447460685429, -0.15865525393145707, 1.9544997361036416}, 1e-12);
  check_close(sigmoid(vec({0, 2, -2})), {0.5, 0.8807970779778823, 0.11920292202211755}, 1e-12);
  check_close(sigmoid(vec({-800, 800})), {0, 1}, 1e-12);  // no overflow to NaN
  check_close(tanh(vec({0, 0.5, -3})), {0, 0.46211715726000974, -0.99505475368673046}, 1e-12);
  // f32 keeps the values to float precision
  check_close(gelu(vec({1, -1}, DType::f32)), {0.8413447460685429, -0.15865525393145707}, 1e-6);
  CHECK(exp(vec({1}, DType::f32)).dtype() == DType::f32);
}

TEST_CASE("unary ops: NaN propagates through relu, clamp and maximum") {
  auto v = relu(vec({NAN})).to_vector();
  CHECK(std::isnan(v[0]));
  CHECK(std::isnan(clamp(vec({NAN}), -1, 1).to_vector()[0]));
  CHECK(std::isnan(maximum(vec({NAN, 1}), vec({0, NAN})).to_vector()[0]));
  CHECK(std::isnan(maximum(vec({NAN, 1}), vec({0, NAN})).to_vector()[1]));
}

TEST_CASE("tensor-scalar ops and operators") {
  Tensor a = vec({1, -2, 4});
  check_close(add(a, 2.5), {3.5, 0.5, 6.5}, 1e-12);
  check_close(mul(a, -3.0), {-3, 6, -12}, 1e-12);
  check_close(rsub(1.0, a), {0, 3, -3}, 1e-12);
  check_close(rdiv(2.0, a), {2, -1, 0.5}, 1e-12);
  check_close(neg(a), {-1, 2, -4}, 1e-12);
  check_close(a - 1.0, {0, -3, 3}, 1e-12);
  check_close(a / 4.0, {0.25, -0.5, 1}, 1e-12);
  check_close(10.0 - a, {9, 12, 6}, 1e-12);
  check_close(4.0 / a, {4, -2, 1}, 1e-12);
  check_close(-a, {-1, 2, -4}, 1e-12);
  check_close(add(vec({1.5}, DType::bf16), 0.25), {1.75}, 1e-12);
}

TEST_CASE("unary ops read strided views") {
  Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::f64);
  Tensor t = a.transpose(0, 1);  // [[1,4],[2,5],[3,6]]
  check_close(mul(t, 2.0), {2, 8, 4, 10, 6, 12}, 1e-12);
  check_close(sqrt(t), {1, 2, std::sqrt(2.0), std::sqrt(5.0), std::sqrt(3.0), std::sqrt(6.0)}, 1e-12);
  check_close(relu(a.slice(1, 0, 3, 2) - 3.0), {0, 0, 1, 3}, 1e-12);
  CHECK(exp(t).is_contiguous());
}

TEST_CASE("maximum: broadcast values and gradient routing") {
  Tensor a = Tensor::from_vector({1, 5, 3, 2}, {2, 2}, DType::f64);
  Tensor b = vec({2, 4});
  check_close(maximum(a, b), {2, 5, 3, 4}, 1e-12);
  // ties go to a
  Tensor x = vec({1, 2, 7}).requires_grad_();
  Tensor y = vec({1, 3, 5}).requires_grad_();
  sum(maximum(x, y)).backward();
  check_close(x.grad(), {1, 0, 1}, 0);
  check_close(y.grad(), {0, 1, 0}, 0);
  // b broadcast along rows: its gradient sums the rows where b wins
  Tensor p = Tensor::from_vector({1, 5, 3, 2}, {2, 2}, DType::f64).requires_grad_();
  Tensor q = vec({2, 4}).requires_grad_();
  sum(maximum(p, q)).backward();
  check_close(p.grad(), {0, 1, 1, 0}, 0);
  check_close(q.grad(), {1, 1}, 0);
}

TEST_CASE("gradcheck: smooth unary ops") {
  auto x = random_tensor({3, 5}, 21, -2.0, 2.0);
  auto pos = random_tensor({3, 5}, 22, 0.5, 2.0);
  gradcheck([](const std::vector<Tensor>& in) { return exp(in[0]); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return log(in[0]); }, {pos});
  gradcheck([](const std::vector<Tensor>& in) { return sqrt(in[0]); }, {pos});
  gradcheck([](const std::vector<Tensor>& in) { return pow(in[0], 3.0); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return pow(in[0], -1.5); }, {pos});
  gradcheck([](const std::vector<Tensor>& in) { return pow(in[0], 0.0); }, {pos});
  gradcheck([](const std::vector<Tensor>& in) { return gelu(in[0]); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return sigmoid(in[0]); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return tanh(in[0]); }, {x});
}

TEST_CASE("gradcheck: kinked unary ops away from their kinks") {
  auto x = random_away_from({3, 5}, 23, -2.0, 2.0, {0.0});
  gradcheck([](const std::vector<Tensor>& in) { return abs(in[0]); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return relu(in[0]); }, {x});
  auto c = random_away_from({3, 5}, 24, -1.0, 1.0, {-0.5, 0.5});
  gradcheck([](const std::vector<Tensor>& in) { return clamp(in[0], -0.5, 0.5); }, {c});
  gradcheck([](const std::vector<Tensor>& in) { return clamp(in[0], -kInf, 0.5); }, {c});
}

TEST_CASE("gradcheck: tensor-scalar ops, strided input, maximum") {
  auto x = random_tensor({3, 5}, 25, 0.5, 2.0);
  gradcheck([](const std::vector<Tensor>& in) { return add(in[0], 1.5); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return mul(in[0], -2.5); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return rsub(3.0, in[0]); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return rdiv(3.0, in[0]); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return neg(in[0]); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return tanh(in[0].transpose(0, 1)); }, {x});
  // a [3, 5] against b [5]: keep |a - b| away from 0 so the max is differentiable
  auto b = random_tensor({5}, 26, -1.0, 1.0);
  std::vector<double> av = random_tensor({3, 5}, 27, 0.1, 1.0).to_vector(), bv = b.to_vector();
  for (size_t i = 0; i < av.size(); ++i) av[i] = bv[i % 5] + (i % 2 ? av[i] : -av[i]);
  auto a = Tensor::from_vector(av, {3, 5}, DType::f64);
  gradcheck([](const std::vector<Tensor>& in) { return maximum(in[0], in[1]); }, {a, b});
  gradcheck([](const std::vector<Tensor>& in) { return maximum(in[1], in[0]); }, {a, b});
}

TEST_CASE("unary ops: bf16 follows f32 within bf16 precision") {
  Tensor x = random_tensor({4, 9}, 28, -3.0, 3.0, DType::f32);
  Tensor xb = x.to(DType::bf16);
  for (auto f : std::vector<std::function<Tensor(const Tensor&)>>{
           [](const Tensor& t) { return gelu(t); }, [](const Tensor& t) { return sigmoid(t); },
           [](const Tensor& t) { return tanh(t); }, [](const Tensor& t) { return exp(t); }}) {
    CHECK(retort::test::max_rel_error(f(xb), f(xb.to(DType::f32))) <= 1e-2);
  }
}

TEST_CASE("unary ops: errors name the op and the operands") {
  Tensor i = Tensor::from_i64({1, 2}, {2});
  CHECK_THROWS_WITH_AS(exp(i), doctest::Contains("exp: the operand must be floating"), Error);
  CHECK_THROWS_WITH_AS(relu(i), doctest::Contains("i64[2]"), Error);
  CHECK_THROWS_WITH_AS(clamp(vec({1}), 1, -1), doctest::Contains("clamp: lo 1 is greater than hi -1"), Error);
  CHECK_THROWS_WITH_AS(maximum(vec({1, 2}, DType::f32), vec({1, 2})),
                       doctest::Contains("maximum: dtype mismatch, first operand f32[2] on cpu vs second operand f64[2]"),
                       Error);
  CHECK_THROWS_WITH_AS(maximum(vec({1, 2}), vec({1, 2, 3})),
                       doctest::Contains("maximum: shapes [2] (first operand) and [3] (second operand)"), Error);
  CHECK_THROWS_WITH_AS(mul(i, 2.0), doctest::Contains("mul: the operand must be floating"), Error);
}

TEST_SUITE("gpu") {
TEST_CASE("cuda parity: unary ops") {
  RETORT_REQUIRE_GPU();
  struct Case { const char* name; Fn f; double lo, hi; };
  std::vector<Case> cases = {
      {"exp", [](const std::vector<Tensor>& in) { return exp(in[0]); }, -3, 3},
      {"log", [](const std::vector<Tensor>& in) { return log(in[0]); }, 0.1, 4},
      {"sqrt", [](const std::vector<Tensor>& in) { return sqrt(in[0]); }, 0.1, 4},
      {"pow", [](const std::vector<Tensor>& in) { return pow(in[0], 2.5); }, 0.1, 2},
      {"abs", [](const std::vector<Tensor>& in) { return abs(in[0]); }, -2, 2},
      {"clamp", [](const std::vector<Tensor>& in) { return clamp(in[0], -0.5, 0.7); }, -2, 2},
      {"relu", [](const std::vector<Tensor>& in) { return relu(in[0]); }, -2, 2},
      {"gelu", [](const std::vector<Tensor>& in) { return gelu(in[0]); }, -4, 4},
      {"sigmoid", [](const std::vector<Tensor>& in) { return sigmoid(in[0]); }, -6, 6},
      {"tanh", [](const std::vector<Tensor>& in) { return tanh(in[0]); }, -3, 3},
      {"add scalar", [](const std::vector<Tensor>& in) { return add(in[0], 0.75); }, -2, 2},
      {"mul scalar", [](const std::vector<Tensor>& in) { return mul(in[0], -1.25); }, -2, 2},
      {"rsub scalar", [](const std::vector<Tensor>& in) { return rsub(2.0, in[0]); }, -2, 2},
      {"rdiv scalar", [](const std::vector<Tensor>& in) { return rdiv(2.0, in[0]); }, 0.5, 2},
      {"gelu of a transposed view", [](const std::vector<Tensor>& in) { return gelu(in[0].transpose(0, 1)); }, -3, 3},
  };
  for (const auto& c : cases)
    for (Shape s : {Shape{1, 1}, Shape{7, 1}, Shape{33, 65}, Shape{3, 1031}})
      for (DType dt : {DType::f32, DType::bf16, DType::f64}) {
        INFO(std::string(c.name) << " on " << shape_str(s) << " " << std::string(dtype_name(dt)));
        check_cuda_parity(c.f, {s}, dt, c.lo, c.hi);
      }
}

TEST_CASE("cuda parity: maximum") {
  RETORT_REQUIRE_GPU();
  Fn f = [](const std::vector<Tensor>& in) { return maximum(in[0], in[1]); };
  for (DType dt : {DType::f32, DType::bf16, DType::f64}) {
    check_cuda_parity(f, {Shape{33, 65}, Shape{65}}, dt, -1, 1);
    check_cuda_parity(f, {Shape{7, 1, 5}, Shape{1, 3, 5}}, dt, -1, 1);
  }
}
}
