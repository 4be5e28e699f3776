// batch_norm2d and layer_norm: hand-computed values, running statistics, shape errors; gradients,
// bf16, transposed inputs and CUDA parity (forward, running stats and every gradient) through
// the op cases (ops/op_case.h).
#include "helpers.h"
#include "ops/op_case.h"

using namespace retort;
using retort::test::check_close;
using retort::test::random_tensor;

namespace {
// x [2, 2, 1, 2] (N, C, H, W): channel 0 holds {1, 2, 3, 6}, channel 1 holds {3, 5, -1, 1}.
Tensor tiny_bn_input() { return Tensor::from_vector({1, 2, 3, 5, 3, 6, -1, 1}, {2, 2, 1, 2}, DType::f64); }
}  // namespace

TEST_CASE("batch_norm2d: training forward, running stats and backward by hand") {
  Tensor x = tiny_bn_input().requires_grad_();
  Tensor w = Tensor::from_vector({2, 0.5}, {2}, DType::f64).requires_grad_();
  Tensor b = Tensor::from_vector({0.1, -1}, {2}, DType::f64).requires_grad_();
  Tensor rm = Tensor::zeros({2}, DType::f32), rv = Tensor::ones({2}, DType::f32);
  Tensor y = batch_norm2d(x, w, b, rm, rv, true, 0.1, 1e-5);
  // channel 0: mean 3, biased var 3.5; channel 1: mean 2, biased var 5.
  check_close(y, {-2.0380868808917470, -0.9690434404458735, -0.7763934258564833, -0.3291802775694501, 0.1,
                  3.3071303213376210, -1.6708197224305499, -1.2236065741435167},
              1e-12);
  // running = 0.9 * running + 0.1 * batch (unbiased var: 14/3 and 20/3).
  check_close(rm, {0.3, 0.2}, 1e-7);
  check_close(rv, {0.9 + 0.1 * 14.0 / 3.0, 0.9 + 0.1 * 20.0 / 3.0}, 1e-7);
  Tensor g = Tensor::from_vector({1, -2, 0.5, 3, 2, 1, -1, 4}, {2, 2, 1, 2}, DType::f64);
  y.backward(g);
  check_close(x.grad(), {0.9926818856706956, -2.443528518390804, -0.3465899998572429, 0.022361227609975335,
                         1.6035651606688104, -0.1527185279487016, -0.30186944528937115, 0.6260982175366387},
              1e-10);
  check_close(w.grad(), {1.6035651606688104, 3.801311760439783}, 1e-10);
  check_close(b.grad(), {2, 6.5}, 1e-12);
}

TEST_CASE("batch_norm2d: eval mode uses the running stats and leaves them alone") {
  Tensor x = tiny_bn_input().requires_grad_();
  Tensor w = Tensor::from_vector({2, 0.5}, {2}, DType::f64).requires_grad_();
  Tensor b = Tensor::from_vector({0.1, -1}, {2}, DType::f64);
  Tensor rm = Tensor::from_vector({1, -1}, {2}, DType::f64), rv = Tensor::from_vector({4, 0.25}, {2}, DType::f64);
  Tensor y = batch_norm2d(x, w, b, rm, rv, false, 0.1, 0.0);
  // y = (x - rm) / sqrt(rv) * w + b
  check_close(y, {0.1, 1.1, 3, 5, 2.1, 5.1, -1, 1}, 1e-12);
  check_close(rm, {1, -1}, 0);
  check_close(rv, {4, 0.25}, 0);
  Tensor g = Tensor::from_vector({1, -2, 0.5, 3, 2, 1, -1, 4}, {2, 2, 1, 2}, DType::f64);
  y.backward(g);
  check_close(x.grad(), {1, -2, 0.5, 3, 2, 1, -1, 4}, 1e-12);  // g * w / sqrt(rv): w/sqrt(rv) = 1 for both
  // dw = sum(g * xhat): channel 0 xhat = {0, 0.5, 1, 2.5}, channel 1 xhat = {8, 12, 0, 4}
  check_close(w.grad(), {1 * 0 - 2 * 0.5 + 2 * 1 + 1 * 2.5, 0.5 * 8 + 3 * 12 - 1 * 0 + 4 * 4}, 1e-12);
  CHECK_FALSE(b.grad().defined());
}

TEST_CASE("batch_norm2d: affine=false and no running stats normalise with batch stats") {
  Tensor y = batch_norm2d(tiny_bn_input(), Tensor(), Tensor(), Tensor(), Tensor(), false, 0.1, 0.0);
  const double s0 = std::sqrt(3.5), s1 = std::sqrt(5.0);
  check_close(y, {-2 / s0, -1 / s0, 1 / s1, 3 / s1, 0, 3 / s0, -3 / s1, -1 / s1}, 1e-12);
}

namespace {
using V = std::vector<Tensor>;
Tensor batch_norm_of(const V& in, bool training, bool affine, Tensor& rm, Tensor& rv) {
  const int64_t C = in[0].size(1);
  rm = random_tensor({C}, 35, -1, 1, DType::f32, in[0].device());
  rv = random_tensor({C}, 36, 0.5, 2, DType::f32, in[0].device());
  return affine ? batch_norm2d(in[0], in[1], in[2], rm, rv, training)
                : batch_norm2d(in[0], Tensor(), Tensor(), rm, rv, training);
}
std::vector<Shape> bn_shapes(const Shape& s, bool affine) {
  return affine ? std::vector<Shape>{s, {s[1]}, {s[1]}} : std::vector<Shape>{s};
}
const std::vector<Shape> kBnGpuShapes = {{2, 3, 5, 7}, {8, 16, 9, 9}, {3, 5, 1, 1}, {64, 32, 8, 8}, {7, 4, 33, 17}};
test::OpCase batch_norm_case(bool training, bool affine) {
  test::OpCase c;
  c.op = "batch_norm2d";
  c.name = std::string("batch_norm2d ") + (training ? "training" : "eval") + (affine ? ", affine" : ", no affine");
  c.fn = [training, affine](const V& in) {
    Tensor rm, rv;
    return batch_norm_of(in, training, affine, rm, rv);
  };
  c.shapes = affine ? bn_shapes({3, 3, 2, 3}, true) : bn_shapes({5, 2, 3, 1}, false);
  for (const Shape& s : kBnGpuShapes) c.gpu_shapes.push_back(bn_shapes(s, affine));
  c.ranges = {{-2, 3}, {0.5, 1.5}, {-1, 1}};
  return c;
}
// The running statistics a training forward leaves (not differentiable).
test::OpCase running_stats_case() {
  test::OpCase c = batch_norm_case(true, true);
  c.name = "batch_norm2d training: the updated running statistics";
  c.fn = [](const V& in) {
    Tensor rm, rv;
    batch_norm_of(in, true, true, rm, rv);
    return concat({rm, rv}, 0).to(in[0].dtype());
  };
  c.gradients = false;
  return c;
}
test::OpCase layer_norm_case(bool affine) {
  test::OpCase c;
  c.op = "layer_norm";
  c.name = std::string("layer_norm") + (affine ? ", affine" : ", no affine");
  c.fn = [affine](const V& in) { return affine ? layer_norm(in[0], in[1], in[2]) : layer_norm(in[0], Tensor(), Tensor()); };
  c.shapes = affine ? std::vector<Shape>{{5, 7}, {7}, {7}} : std::vector<Shape>{{2, 3, 5}};
  for (Shape s : std::vector<Shape>{{5, 7}, {2, 197, 384}, {3, 17, 64}, {1000, 33}, {4, 1025}, {3, 4096}})
    c.gpu_shapes.push_back(affine ? std::vector<Shape>{s, {s.back()}, {s.back()}} : std::vector<Shape>{s});
  c.ranges = {{-2, 3}, {0.5, 1.5}, {-1, 1}};
  c.transposed = !affine;  // a transposed x would normalise over another dim than weight's
  return c;
}
const test::OpCases kNormCases("norm", {batch_norm_case(true, true), batch_norm_case(true, false),
                                        batch_norm_case(false, true), running_stats_case(), layer_norm_case(true),
                                        layer_norm_case(false)});
}  // namespace

TEST_CASE("gradcheck: batch_norm2d training (x, weight, bias) and eval, layer_norm") { test::check_gradients(kNormCases); }
TEST_CASE("op cases: batch_norm2d and layer_norm in bf16 and on transposed inputs") {
  test::check_bf16(kNormCases);
  test::check_transposed(kNormCases);
}

TEST_CASE("batch_norm2d: bf16 and f32 inputs with f32 running stats") {
  Tensor x = tiny_bn_input();
  Tensor rm = Tensor::zeros({2}), rv = Tensor::ones({2});
  Tensor y = batch_norm2d(x.to(DType::f32), Tensor(), Tensor(), rm, rv, true);
  const double s0 = std::sqrt(3.5 + 1e-5), s1 = std::sqrt(5.0 + 1e-5);
  check_close(y, {-2 / s0, -1 / s0, 1 / s1, 3 / s1, 0, 3 / s0, -3 / s1, -1 / s1}, 1e-6);
  check_close(rm, {0.3, 0.2}, 1e-7);
  Tensor yb = batch_norm2d(x.to(DType::bf16), Tensor(), Tensor(), Tensor(), Tensor(), true);
  CHECK(yb.dtype() == DType::bf16);
  check_close(yb, {-2 / s0, -1 / s0, 1 / s1, 3 / s1, 0, 3 / s0, -3 / s1, -1 / s1}, 1e-2);
}

TEST_CASE("batch_norm2d: shape errors name the operand") {
  Tensor x = Tensor::ones({2, 3, 4, 4});
  CHECK_THROWS_WITH_AS(batch_norm2d(Tensor::ones({6}), Tensor(), Tensor(), Tensor(), Tensor(), true),
                       doctest::Contains("batch_norm2d: input must be [N, C, H, W]"), Error);
  CHECK_THROWS_WITH_AS(batch_norm2d(x, Tensor::ones({4}), Tensor(), Tensor(), Tensor(), true),
                       doctest::Contains("weight must have shape [3] to match input [2, 3, 4, 4], got [4]"), Error);
  CHECK_THROWS_WITH_AS(batch_norm2d(x, Tensor(), Tensor::ones({3}, DType::f64), Tensor(), Tensor(), true),
                       doctest::Contains("bias has dtype f64"), Error);
  CHECK_THROWS_WITH_AS(batch_norm2d(x, Tensor(), Tensor(), Tensor::zeros({2}), Tensor::ones({2}), false),
                       doctest::Contains("running_mean must have shape [3]"), Error);
  CHECK_THROWS_WITH_AS(batch_norm2d(x, Tensor(), Tensor(), Tensor::zeros({3}), Tensor(), false),
                       doctest::Contains("both"), Error);
  CHECK_THROWS_WITH_AS(batch_norm2d(Tensor::ones({1, 3, 1, 1}), Tensor(), Tensor(), Tensor(), Tensor(), true),
                       doctest::Contains("more than one value per channel"), Error);
}

TEST_CASE("layer_norm: 2x3 by hand, with and without affine") {
  Tensor x = Tensor::from_vector({1, 2, 3, 2, -1, 5}, {2, 3}, DType::f64);
  Tensor w = Tensor::from_vector({1, 2, -1}, {3}, DType::f64), b = Tensor::from_vector({0, 0.5, 1}, {3}, DType::f64);
  // row 0: mean 2, var 2/3; row 1: mean 2, var 6 (eps 1e-5)
  check_close(layer_norm(x, w, b), {-1.2247356859083902, 0.5, -0.22473568590839021, 0.0, -1.9494877015442773,
                                    -0.22474385077213865},
              1e-12);
  check_close(layer_norm(x, Tensor(), Tensor(), 0.0),
              {-std::sqrt(1.5), 0, std::sqrt(1.5), 0, -3 / std::sqrt(6.0), 3 / std::sqrt(6.0)}, 1e-12);
  check_close(layer_norm(x.to(DType::f32), w.to(DType::f32), b.to(DType::f32)),
              {-1.2247356859083902, 0.5, -0.22473568590839021, 0.0, -1.9494877015442773, -0.22474385077213865}, 1e-6);
}

TEST_CASE("layer_norm: shape errors name the operand") {
  Tensor x = Tensor::ones({4, 6});
  CHECK_THROWS_WITH_AS(layer_norm(x, Tensor::ones({4}), Tensor()),
                       doctest::Contains("layer_norm: weight must have shape [6] to match input [4, 6], got [4]"), Error);
  CHECK_THROWS_WITH_AS(layer_norm(x, Tensor(), Tensor::ones({6, 1})), doctest::Contains("layer_norm: bias must have shape [6]"),
                       Error);
  CHECK_THROWS_WITH_AS(layer_norm(Tensor::ones({4, 0}), Tensor(), Tensor()), doctest::Contains("non-empty last dim"), Error);
}

TEST_SUITE("gpu") {
TEST_CASE("cuda parity: batch_norm2d, layer_norm (outputs, running statistics, every gradient)") {
  RETORT_REQUIRE_GPU();
  test::check_cuda_parity(kNormCases);
}
}  // TEST_SUITE("gpu")
