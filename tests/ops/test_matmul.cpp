// matmul and linear: hand-computed values, transposed and broadcast operands, threading splits,
// shape errors; gradients, bf16, transposed operands and CUDA parity through the op cases.
#include "helpers.h"
#include "ops/op_case.h"

using namespace retort;
using retort::test::check_close;
using retort::test::max_rel_error;
using retort::test::random_tensor;

namespace {
// Reference product by three loops over contiguous f64 copies: [B, m, k] x [B, k, n].
std::vector<double> naive_matmul(const std::vector<double>& a, const std::vector<double>& b, int64_t B, int64_t m,
                                 int64_t k, int64_t n) {
  std::vector<double> c(size_t(B * m * n), 0.0);
  for (int64_t z = 0; z < B; ++z)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += a[size_t(z * m * k + i * k + p)] * b[size_t(z * k * n + p * n + j)];
        c[size_t(z * m * n + i * n + j)] = s;
      }
  return c;
}
}  // namespace

TEST_CASE("matmul: hand-computed 2-D product, f32 and f64") {
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, dt);
    Tensor b = Tensor::from_vector({7, 8, 9, 10, 11, 12}, {3, 2}, dt);
    Tensor c = matmul(a, b);
    CHECK(c.shape() == Shape{2, 2});
    check_close(c, {58, 64, 139, 154});
  }
}

TEST_CASE("matmul: transposed views give the same result as contiguous copies") {
  Tensor at = random_tensor({5, 3}, 11), bt = random_tensor({4, 5}, 12);
  Tensor a = at.transpose(0, 1), b = bt.transpose(0, 1);  // [3, 5] and [5, 4], column-major
  Tensor ref = Tensor::from_vector(naive_matmul(a.contiguous().to_vector(), b.contiguous().to_vector(), 1, 3, 5, 4),
                                   {3, 4}, DType::f64);
  CHECK(max_rel_error(matmul(a, b), ref) < 1e-12);
  CHECK(max_rel_error(matmul(a.contiguous(), b), ref) < 1e-12);
  CHECK(max_rel_error(matmul(a, b.contiguous()), ref) < 1e-12);
  // A strided (sliced) operand that is neither row- nor column-major is copied, still correct.
  Tensor wide = random_tensor({3, 10}, 13);
  Tensor sliced = wide.slice(1, 0, 10, 2);  // [3, 5] with column stride 2
  Tensor ref2 = Tensor::from_vector(
      naive_matmul(sliced.contiguous().to_vector(), b.contiguous().to_vector(), 1, 3, 5, 4), {3, 4}, DType::f64);
  CHECK(max_rel_error(matmul(sliced, b), ref2) < 1e-12);
}

TEST_CASE("matmul: batched with broadcast batch dims") {
  Tensor a = random_tensor({2, 3, 5}, 21), b = random_tensor({5, 4}, 22);
  Tensor c = matmul(a, b);
  REQUIRE(c.shape() == Shape{2, 3, 4});
  Tensor bb = b.unsqueeze(0).expand({2, 5, 4}).contiguous();
  Tensor ref = Tensor::from_vector(naive_matmul(a.to_vector(), bb.to_vector(), 2, 3, 5, 4), {2, 3, 4}, DType::f64);
  CHECK(max_rel_error(c, ref) < 1e-12);

  // [2, 1, 3, 5] x [3, 5, 2] -> [2, 3, 3, 2]: both operands broadcast in different dims.
  Tensor x = random_tensor({2, 1, 3, 5}, 23), y = random_tensor({3, 5, 2}, 24);
  Tensor z = matmul(x, y);
  REQUIRE(z.shape() == Shape{2, 3, 3, 2});
  Tensor xe = x.expand({2, 3, 3, 5}).contiguous(), ye = y.unsqueeze(0).expand({2, 3, 5, 2}).contiguous();
  Tensor zref = Tensor::from_vector(naive_matmul(xe.to_vector(), ye.to_vector(), 6, 3, 5, 2), {2, 3, 3, 2}, DType::f64);
  CHECK(max_rel_error(z, zref) < 1e-12);

  // Shared left operand, batched right operand.
  Tensor l = random_tensor({3, 5}, 25), r = random_tensor({4, 5, 2}, 26);
  Tensor le = l.unsqueeze(0).expand({4, 3, 5}).contiguous();
  Tensor lr = Tensor::from_vector(naive_matmul(le.to_vector(), r.to_vector(), 4, 3, 5, 2), {4, 3, 2}, DType::f64);
  CHECK(max_rel_error(matmul(l, r), lr) < 1e-12);
}

TEST_CASE("matmul: products large enough to be split over threads (rows, columns, batch entries)") {
  struct Case { int64_t B, m, k, n; bool ta, tb; };
  uint64_t seed = 60;
  for (Case c : {Case{1, 131, 129, 67, false, false}, Case{1, 67, 129, 131, false, false},
                 Case{1, 131, 129, 67, true, true}, Case{1, 67, 129, 131, true, false},
                 Case{3, 67, 129, 131, false, true}}) {
    INFO("B m k n " << c.B << " " << c.m << " " << c.k << " " << c.n << " ta " << c.ta << " tb " << c.tb);
    Tensor a = random_tensor({c.B, c.m, c.k}, seed++), b = random_tensor({c.B, c.k, c.n}, seed++);
    Tensor ref = Tensor::from_vector(naive_matmul(a.to_vector(), b.to_vector(), c.B, c.m, c.k, c.n),
                                     {c.B, c.m, c.n}, DType::f64);
    Tensor av = c.ta ? a.transpose(1, 2).contiguous().transpose(1, 2) : a;  // same values, column-major
    Tensor bv = c.tb ? b.transpose(1, 2).contiguous().transpose(1, 2) : b;
    CHECK(max_rel_error(matmul(av, bv), ref) < 1e-12);
    CHECK(max_rel_error(matmul(av.to(DType::f32), bv.to(DType::f32)), ref) < 1e-5);
  }
}

TEST_CASE("matmul: bf16 on the CPU goes through f32") {
  Tensor a = random_tensor({3, 7}, 31, -1, 1, DType::f32), b = random_tensor({7, 5}, 32, -1, 1, DType::f32);
  Tensor ab = a.to(DType::bf16), bb = b.to(DType::bf16);
  Tensor c = matmul(ab, bb);
  CHECK(c.dtype() == DType::bf16);
  CHECK(max_rel_error(c, matmul(ab.to(DType::f32), bb.to(DType::f32))) < 1e-2);
}

TEST_CASE("matmul and linear: shape errors name the op, the shapes and the operand") {
  Tensor a = Tensor::ones({2, 3}), b = Tensor::ones({4, 5});
  CHECK_THROWS_WITH_AS(matmul(a, b), doctest::Contains("matmul: inner dims differ: first operand [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(matmul(Tensor::ones({3}), b), doctest::Contains("matmul: first operand must have at least 2 dims"),
                       Error);
  CHECK_THROWS_WITH_AS(matmul(Tensor::ones({2, 2, 3}), Tensor::ones({3, 3, 4})),
                       doctest::Contains("matmul (batch dims)"), Error);
  CHECK_THROWS_WITH_AS(linear(Tensor::ones({2, 3}), Tensor::ones({4, 5})),
                       doctest::Contains("linear: input [2, 3] (first operand) has 3 features but weight [4, 5]"),
                       Error);
  CHECK_THROWS_WITH_AS(linear(Tensor::ones({2, 3}), Tensor::ones({4, 3}), Tensor::ones({5})),
                       doctest::Contains("linear: bias must be [4], got shape [5]"), Error);
}

TEST_CASE("linear: hand-computed values with and without bias") {
  Tensor x = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor w = Tensor::from_vector({1, 0, -1, 2, 1, 0}, {2, 3});
  Tensor b = Tensor::from_vector({0.5, -1}, {2});
  check_close(linear(x, w, b), {-1.5, 3, -1.5, 12});
  check_close(linear(x, w), {-2, 4, -2, 13});
  Tensor x3 = x.reshape({2, 1, 3});
  Tensor y3 = linear(x3, w, b);
  CHECK(y3.shape() == Shape{2, 1, 2});
  check_close(y3, {-1.5, 3, -1.5, 12});
}

namespace {
using V = std::vector<Tensor>;
test::OpCase matmul_case(std::string name, std::vector<Shape> shapes, std::vector<std::vector<Shape>> gpu = {}) {
  test::OpCase c;
  c.op = "matmul";
  c.name = "matmul " + name;
  c.fn = [](const V& in) { return matmul(in[0], in[1]); };
  c.shapes = std::move(shapes);
  c.gpu_shapes = std::move(gpu);
  return c;
}
test::OpCase linear_case(std::string name, bool bias, std::vector<Shape> shapes, std::vector<std::vector<Shape>> gpu) {
  test::OpCase c;
  c.op = "linear";
  c.name = "linear " + name;
  c.fn = [bias](const V& in) { return bias ? linear(in[0], in[1], in[2]) : linear(in[0], in[1]); };
  c.shapes = std::move(shapes);
  c.gpu_shapes = std::move(gpu);
  c.cuda_bf16_gradients = false;  // bf16 gradient sums over the batch are too coarse for the bf16 rule on CUDA
  return c;
}
std::vector<std::vector<Shape>> linear_gpu_shapes(bool bias) {
  std::vector<std::vector<Shape>> out;
  for (auto [M, K, N] : std::vector<std::array<int64_t, 3>>{{3, 5, 4}, {37, 61, 29}, {128, 96, 10}, {7, 1, 3}})
    out.push_back(bias ? std::vector<Shape>{{M, K}, {N, K}, {N}} : std::vector<Shape>{{M, K}, {N, K}});
  return out;
}
const test::OpCases kMatmulCases(
    "matmul",
    {matmul_case("2-D", {{3, 5}, {5, 4}}, {{{3, 5}, {5, 4}}, {{37, 61}, {61, 29}}, {{17, 33}, {33, 65}}}),
     matmul_case("batched with broadcast batch dims", {{2, 1, 3, 5}, {3, 5, 2}},
                 {{{2, 1, 5, 3}, {3, 3, 4}}, {{4, 31, 7}, {4, 7, 15}}}),
     matmul_case("2-D by batched", {{3, 5}, {2, 5, 3}}, {{{2, 7, 13}, {13, 9}}}),
     linear_case("with bias", true, {{3, 5}, {4, 5}, {4}}, linear_gpu_shapes(true)),
     linear_case("without bias, 3-D input", false, {{2, 3, 5}, {3, 5}}, linear_gpu_shapes(false)),
     linear_case("with bias, 3-D input", true, {{2, 3, 5}, {3, 5}, {3}}, {})});
}  // namespace

TEST_CASE("gradcheck: matmul and linear (2-D, batched broadcast, with and without bias)") {
  test::check_gradients(kMatmulCases);
}
TEST_CASE("op cases: matmul and linear in bf16 and on transposed operands") {
  test::check_bf16(kMatmulCases);
  test::check_transposed(kMatmulCases);
}

TEST_SUITE("gpu") {
TEST_CASE("cuda parity: matmul, linear forward and backward") {
  RETORT_REQUIRE_GPU();
  test::check_cuda_parity(kMatmulCases);
}
}  // TEST_SUITE
