// Unary/activation ops, tensor-scalar ops and maximum: hand-computed values, NaN handling,
// strided and broadcast operands, error messages; gradients (inputs kept away from kinks),
// bf16, transposed inputs and CUDA parity through the op cases (ops/op_case.h).
#include <cmath>
#include "helpers.h"
#include "ops/op_case.h"
#include "ops/op_test_util.h"

using namespace retort;
using retort::test::check_close;

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

TEST_CASE("unary backward reads a broadcast (stride 0) gradient") {
  Tensor x = vec({0.5, -1, 2}).requires_grad_();
  sum(exp(x)).backward();  // the gradient reaching exp is ones expanded from a 0-d tensor
  check_close(x.grad(), {std::exp(0.5), std::exp(-1.0), std::exp(2.0)}, 1e-12);
  Tensor y = vec({0.5, -1, 2}).requires_grad_();
  sum(relu(y)).backward();
  check_close(y.grad(), {1, 0, 1}, 0);
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

namespace {
test::OpCase unary_case(std::string name, std::string op, Fn fn, double lo, double hi, std::vector<double> kinks = {}) {
  test::OpCase c;
  c.name = std::move(name);
  c.op = std::move(op);
  c.fn = std::move(fn);
  c.shapes = {{3, 5}};
  c.gpu_shapes = {{{1, 1}}, {{7, 1}}, {{33, 65}}, {{3, 1031}}};
  c.lo = lo, c.hi = hi;
  c.kinks = std::move(kinks);
  return c;
}
#define RETORT_UNARY(expr) [](const std::vector<Tensor>& in) { return expr; }
const test::OpCases kUnaryCases("unary", {
    unary_case("exp", "exp", RETORT_UNARY(exp(in[0])), -2, 2),
    unary_case("log", "log", RETORT_UNARY(log(in[0])), 0.5, 2),
    unary_case("sqrt", "sqrt", RETORT_UNARY(sqrt(in[0])), 0.5, 2),
    unary_case("pow 3", "pow", RETORT_UNARY(pow(in[0], 3.0)), -2, 2),
    unary_case("pow -1.5", "pow", RETORT_UNARY(pow(in[0], -1.5)), 0.5, 2),
    unary_case("pow 0", "pow", RETORT_UNARY(pow(in[0], 0.0)), 0.5, 2),
    unary_case("pow 2.5", "pow", RETORT_UNARY(pow(in[0], 2.5)), 0.1, 2),
    unary_case("abs", "abs", RETORT_UNARY(abs(in[0])), -2, 2, {0.0}),
    unary_case("relu", "relu", RETORT_UNARY(relu(in[0])), -2, 2, {0.0}),
    unary_case("clamp [-0.5, 0.5]", "clamp", RETORT_UNARY(clamp(in[0], -0.5, 0.5)), -1, 1, {-0.5, 0.5}),
    unary_case("clamp [-inf, 0.5]", "clamp", RETORT_UNARY(clamp(in[0], -kInf, 0.5)), -1, 1, {0.5}),
    unary_case("gelu", "gelu", RETORT_UNARY(gelu(in[0])), -4, 4),
    unary_case("sigmoid", "sigmoid", RETORT_UNARY(sigmoid(in[0])), -6, 6),
    unary_case("tanh", "tanh", RETORT_UNARY(tanh(in[0])), -3, 3),
    unary_case("add scalar", "add", RETORT_UNARY(add(in[0], 1.5)), -2, 2),
    unary_case("mul scalar", "mul", RETORT_UNARY(mul(in[0], -2.5)), -2, 2),
    unary_case("rsub scalar", "rsub", RETORT_UNARY(rsub(3.0, in[0])), -2, 2),
    unary_case("rdiv scalar", "rdiv", RETORT_UNARY(rdiv(3.0, in[0])), 0.5, 2),
    unary_case("neg", "neg", RETORT_UNARY(neg(in[0])), -2, 2),
});
#undef RETORT_UNARY
}  // namespace

TEST_CASE("gradcheck: unary and tensor-scalar ops (away from their kinks)") { test::check_gradients(kUnaryCases); }

TEST_CASE("op cases: unary ops in bf16 and on transposed inputs") {
  test::check_bf16(kUnaryCases);
  test::check_transposed(kUnaryCases);
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
  test::check_cuda_parity(kUnaryCases);
}
}
