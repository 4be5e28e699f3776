// svd_right: hand-computed decompositions (tall, wide, rank-deficient, the sign convention),
// invariants on the sizes KDSVD meets, the gradient where two unused singular values are equal,
// non-finite input, errors; the CUDA kernel's Jacobi order run on the host against the CPU
// reference; gradients, bf16, transposed inputs and CUDA parity through the op cases.
#include <algorithm>
#include <cmath>
#include <numeric>
#include "helpers.h"
#include "ops/op_case.h"

using namespace retort;
using retort::test::check_close;
using retort::test::random_tensor;

namespace {
std::vector<double> identity(int64_t n) {
  std::vector<double> v(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) v[size_t(i * n + i)] = 1.0;
  return v;
}

// S and V of one matrix [M, C] as one f64 vector: S (K values), then V row-major [C, K].
Tensor flat_sv(const Tensor& x) {
  auto r = svd_right(x.unsqueeze(0));
  return concat({r[0].flatten(), r[1].flatten()}, 0);
}
}  // namespace

TEST_CASE("svd_right: hand-computed decompositions and the sign convention") {
  // Rows (2.4, -1.8) = 3 (0.8, -0.6) and (0.6, 0.8) = 1 (0.6, 0.8) are orthogonal, so
  // x = U diag(3, 1) V^T with V's columns (0.8, -0.6) and (0.6, 0.8) (largest |entry| positive)
  // and U's columns e0, e1.
  Tensor x = Tensor::from_vector({2.4, -1.8, 0.6, 0.8, 0, 0, 0, 0}, {4, 2}, DType::f64);
  auto r = svd_right(x.unsqueeze(0));
  CHECK(r[0].shape() == Shape{1, 2});
  CHECK(r[1].shape() == Shape{1, 2, 2});
  check_close(r[0], {3, 1}, 1e-12);
  check_close(r[1], {0.8, 0.6, -0.6, 0.8}, 1e-12);
  // -x has the same S and, by the convention, the same V (U changes sign instead).
  check_close(r[1], svd_right(neg(x).unsqueeze(0))[1].to_vector(), 1e-12);
  // The wide transpose [2, 4]: its right singular vectors are x's left ones, e0 and e1.
  check_close(flat_sv(x.transpose(0, 1).contiguous()),
              {3, 1, 1, 0, 0, 1, 0, 0, 0, 0}, 1e-12);
  // A vector whose largest entry is negative is flipped: x = [[-1, 0.5]] has V = (1, -0.5)/|.|.
  const double n = std::sqrt(1.25);
  check_close(flat_sv(Tensor::from_vector({-1, 0.5}, {1, 2}, DType::f64)),
              {n, 1 / n, -0.5 / n}, 1e-12);
  // f32 and bf16 inputs give the same decomposition, rounded to their type.
  check_close(svd_right(x.to(DType::f32).unsqueeze(0))[1], {0.8, 0.6, -0.6, 0.8}, 1e-7);
  CHECK(svd_right(x.to(DType::bf16).unsqueeze(0))[0].dtype() == DType::bf16);
}

TEST_CASE("svd_right: rank-deficient matrices, zeros and non-finite entries") {
  // Tall [3, 2], rank 1: sigma = (sqrt 5, 0), V = I (x^T x = diag(5, 0)).
  const double r5 = std::sqrt(5.0);
  check_close(flat_sv(Tensor::from_vector({1, 0, 2, 0, 0, 0}, {3, 2}, DType::f64)),
              {r5, 0, 1, 0, 0, 1}, 1e-12);
  // Wide [2, 3], rank 1: V_0 = e0; V_1 is completed with the first unit vector orthogonal to
  // V_0, e1 (e1 and e2 have the same residual 1: the lower index wins).
  check_close(flat_sv(Tensor::from_vector({1, 0, 0, 2, 0, 0}, {2, 3}, DType::f64)),
              {r5, 0, 1, 0, 0, 1, 0, 0}, 1e-12);
  // All zeros: zero singular values, still orthonormal V.
  for (Shape s : {Shape{1, 4, 3}, Shape{1, 2, 5}}) {
    auto z = svd_right(Tensor::zeros(s, DType::f64));
    for (double v : z[0].to_vector()) CHECK(v == 0.0);
    Tensor v = z[1];
    check_close(matmul(v.transpose(1, 2), v), identity(v.size(2)), 1e-12);
  }
  // A non-finite entry: NaN everywhere in that matrix's outputs, the others unaffected.
  Tensor bad = random_tensor({2, 3, 2}, 5);
  auto vals = bad.to_vector();
  vals[1] = NAN;
  auto nan_out = svd_right(Tensor::from_vector(vals, {2, 3, 2}, DType::f64));
  auto s = nan_out[0].to_vector();
  CHECK(std::isnan(s[0]));
  CHECK(std::isnan(s[1]));
  CHECK(std::isfinite(s[2]));
  CHECK(std::isfinite(s[3]));
}

namespace {
// The CUDA kernel's algorithm (kernels/cuda/svd.cu) written for the host: Jacobi rotations on
// the Gram matrix in the same round-robin order, the same thresholds, sorting, vectors and
// signs (no completion: full-rank inputs). Returns S then V [C, K] row-major.
std::vector<double> jacobi_sv(const std::vector<double>& x, int64_t M, int64_t C) {
  const int64_t K = std::min(M, C);
  const bool tall = M >= C;
  const double eps = 0x1p-52;
  std::vector<double> G(size_t(K * K)), J(size_t(K * K), 0.0);
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j) {
      double acc = 0;
      if (tall)
        for (int64_t m = 0; m < M; ++m) acc += x[size_t(m * C + i)] * x[size_t(m * C + j)];
      else
        for (int64_t c = 0; c < C; ++c) acc += x[size_t(i * C + c)] * x[size_t(j * C + c)];
      G[size_t(i * K + j)] = acc;
      J[size_t(i * K + j)] = i == j;
    }
  const int64_t n = K + (K & 1), pairs = n / 2;
  for (int sweep = 0; sweep < 60 && K > 1; ++sweep) {
    bool rotated = false;
    for (int64_t step = 0; step < n - 1; ++step) {
      std::vector<int64_t> P(static_cast<size_t>(pairs)), Q(static_cast<size_t>(pairs));
      std::vector<double> cs(static_cast<size_t>(pairs)), sn(static_cast<size_t>(pairs));
      for (int64_t t = 0; t < pairs; ++t) {
        int64_t p = t == 0 ? n - 1 : (step + t) % (n - 1), q = t == 0 ? step : (step - t + n - 1) % (n - 1);
        if (p > q) std::swap(p, q);
        double c = 1, s = 0;
        if (q < K) {
          const double app = G[size_t(p * K + p)], aqq = G[size_t(q * K + q)], apq = G[size_t(p * K + q)];
          if (apq != 0 && std::abs(apq) > eps * std::sqrt(std::abs(app) * std::abs(aqq))) {
            const double th = (aqq - app) / (2 * apq);
            const double tt = std::abs(th) > 1e150
                                  ? 0.5 / th
                                  : (th >= 0 ? 1.0 : -1.0) / (std::abs(th) + std::sqrt(th * th + 1));
            c = 1 / std::sqrt(tt * tt + 1);
            s = tt * c;
            rotated = true;
          } else {
            p = -1;
          }
        } else {
          p = -1;
        }
        P[size_t(t)] = p, Q[size_t(t)] = q, cs[size_t(t)] = c, sn[size_t(t)] = s;
      }
      for (int64_t t = 0; t < pairs; ++t) {
        const int64_t p = P[size_t(t)], q = Q[size_t(t)];
        if (p < 0) continue;
        const double c = cs[size_t(t)], s = sn[size_t(t)];
        for (int64_t k = 0; k < K; ++k) {
          for (auto* A : {&G, &J}) {
            const double a = (*A)[size_t(k * K + p)], b = (*A)[size_t(k * K + q)];
            (*A)[size_t(k * K + p)] = c * a - s * b;
            (*A)[size_t(k * K + q)] = s * a + c * b;
          }
        }
      }
      for (int64_t t = 0; t < pairs; ++t) {
        const int64_t p = P[size_t(t)], q = Q[size_t(t)];
        if (p < 0) continue;
        const double c = cs[size_t(t)], s = sn[size_t(t)];
        for (int64_t k = 0; k < K; ++k) {
          const double a = G[size_t(p * K + k)], b = G[size_t(q * K + k)];
          G[size_t(p * K + k)] = c * a - s * b;
          G[size_t(q * K + k)] = s * a + c * b;
        }
      }
      for (int64_t t = 0; t < pairs; ++t)
        if (const int64_t p = P[size_t(t)], q = Q[size_t(t)]; p >= 0) G[size_t(p * K + q)] = G[size_t(q * K + p)] = 0;
    }
    if (!rotated) break;
  }
  std::vector<int64_t> order(static_cast<size_t>(K));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return G[size_t(a * K + a)] > G[size_t(b * K + b)]; });
  std::vector<double> out(size_t(K + C * K));
  for (int64_t r = 0; r < K; ++r) {
    const int64_t j = order[size_t(r)];
    const double s = std::sqrt(G[size_t(j * K + j)]);
    out[size_t(r)] = s;
    for (int64_t c = 0; c < C; ++c) {
      double v = 0;
      if (tall)
        v = J[size_t(c * K + j)];
      else
        for (int64_t m = 0; m < M; ++m) v += x[size_t(m * C + c)] * J[size_t(m * K + j)] / s;
      out[size_t(K + c * K + r)] = v;
    }
    int64_t at = 0;
    for (int64_t c = 1; c < C; ++c)
      if (std::abs(out[size_t(K + c * K + r)]) > std::abs(out[size_t(K + at * K + r)])) at = c;
    if (out[size_t(K + at * K + r)] < 0)
      for (int64_t c = 0; c < C; ++c) out[size_t(K + c * K + r)] = -out[size_t(K + c * K + r)];
  }
  return out;
}

const std::vector<Shape> kLargeShapes = {{2, 784, 16}, {3, 196, 32}, {2, 49, 128}, {2, 16, 192}, {1, 7, 7}, {2, 3, 5}};
}  // namespace

TEST_CASE("svd_right: invariants on the sizes KDSVD meets") {
  uint64_t seed = 31;
  for (const Shape& shape : kLargeShapes) {
    INFO("shape " << shape_str(shape));
    Tensor x = random_tensor(shape, seed++);
    auto r = svd_right(x);
    const int64_t B = shape[0], M = shape[1], C = shape[2], K = std::min(M, C);
    REQUIRE(r[0].shape() == Shape{B, K});
    REQUIRE(r[1].shape() == Shape{B, C, K});
    // orthonormal columns; x^T x V = V diag(S^2); sum of S^2 = ||x||_F^2
    check_close(matmul(r[1].transpose(1, 2), r[1]).select(0, 0), identity(K), 1e-12);
    Tensor xtxv = matmul(x.transpose(1, 2), matmul(x, r[1]));
    Tensor vs2 = mul(r[1], mul(r[0], r[0]).unsqueeze(1));
    const double smax2 = r[0].to_vector()[0] * r[0].to_vector()[0];
    CHECK(test::max_rel_error(mul(xtxv, 1 / smax2), mul(vs2, 1 / smax2)) <= 1e-12);
    check_close(sum(mul(r[0], r[0]), {1}), sum(mul(x, x), {1, 2}).to_vector(), 1e-12);
    auto s = r[0].to_vector();
    auto v = r[1].to_vector();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < K; ++j) {
        if (j + 1 < K) CHECK(s[size_t(b * K + j)] >= s[size_t(b * K + j + 1)]);
        double big = 0;  // the entry of largest magnitude is positive
        for (int64_t c = 0; c < C; ++c)
          if (std::abs(v[size_t((b * C + c) * K + j)]) > std::abs(big)) big = v[size_t((b * C + c) * K + j)];
        CHECK(big > 0);
      }
  }
}

TEST_CASE("svd_right: the CUDA kernel's Jacobi order, run on the host, agrees with the CPU reference") {
  uint64_t seed = 404;
  for (const Shape& shape : kLargeShapes) {
    INFO("shape " << shape_str(shape));
    Tensor x = random_tensor(shape, seed++);
    const int64_t B = shape[0], M = shape[1], C = shape[2], K = std::min(M, C);
    auto r = svd_right(x);
    for (int64_t b = 0; b < B; ++b) {
      auto want = jacobi_sv(x.select(0, b).contiguous().to_vector(), M, C);
      std::vector<double> got = r[0].select(0, b).contiguous().to_vector();
      auto v = r[1].select(0, b).contiguous().to_vector();
      got.insert(got.end(), v.begin(), v.end());
      CHECK(test::max_rel_error(Tensor::from_vector(got, {K + C * K}, DType::f64),
                                Tensor::from_vector(want, {K + C * K}, DType::f64)) <= test::op_tolerance(DType::f64));
    }
  }
}

TEST_CASE("svd_right: gradients where unused singular values are equal, and where used ones are") {
  // Two zero columns: two zero singular values, whose vectors the top vector's gradient does not
  // involve. PyTorch's backward gives NaN here (0/0); the gradient is well defined and matches
  // finite differences.
  std::vector<double> vals = random_tensor({1, 6, 4}, 77).to_vector();
  for (int64_t m = 0; m < 6; ++m) vals[size_t(m * 4 + 2)] = vals[size_t(m * 4 + 3)] = 0;
  Tensor x = Tensor::from_vector(vals, {1, 6, 4}, DType::f64);
  auto top = [](const std::vector<Tensor>& in) { return svd_right(in[0])[1].slice(2, 0, 2); };
  test::gradcheck(top, {x});
  // The wide case with a zero row: a zero singular value past the columns read.
  std::vector<double> w = random_tensor({1, 3, 6}, 78).to_vector();
  for (int64_t c = 0; c < 6; ++c) w[size_t(2 * 6 + c)] = 0;
  test::gradcheck(top, {Tensor::from_vector(w, {1, 3, 6}, DType::f64)});
  // Equal singular values whose vectors are read: ill-defined, non-finite as in PyTorch.
  Tensor eq = Tensor::from_vector({1, 0, 0, 1, 0, 0}, {1, 3, 2}, DType::f64).requires_grad_(true);
  sum(mul(svd_right(eq)[1].slice(2, 0, 1), Tensor::from_vector({1, 2}, {1, 2, 1}, DType::f64))).backward();
  bool finite = true;
  for (double g : eq.grad().to_vector()) finite = finite && std::isfinite(g);
  CHECK_FALSE(finite);
}

TEST_CASE("svd_right: errors") {
  CHECK_THROWS_WITH_AS(svd_right(Tensor::ones({3, 2})), doctest::Contains("svd_right: expects a batch of matrices"),
                       Error);
  CHECK_THROWS_WITH_AS(svd_right(Tensor::from_i64({1, 2}, {1, 1, 2})), doctest::Contains("expects a floating"),
                       Error);
  CHECK_THROWS_WITH_AS(svd_right(Tensor::ones({2, 0, 3})), doctest::Contains("M, C >= 1"), Error);
}

namespace {
using V = std::vector<Tensor>;
std::vector<test::OpCase> svd_cases() {
  std::vector<test::OpCase> cases;
  auto both = [](const V& in) {
    auto r = svd_right(in[0]);
    return concat({r[0].flatten(), r[1].flatten()}, 0);
  };
  test::OpCase tall;
  tall.op = "svd_right";
  tall.name = "svd_right tall [B, M > C], S and V";
  tall.fn = both;
  tall.shapes = {{2, 5, 3}};
  tall.gpu_shapes = {{{2, 5, 3}}, {{3, 196, 32}}, {{2, 784, 16}}, {{1, 7, 7}}, {{2, 3, 1}}};
  cases.push_back(tall);
  test::OpCase wide = tall;
  wide.name = "svd_right wide [B, M < C], S and V";
  wide.shapes = {{2, 3, 5}};
  wide.gpu_shapes = {{{2, 3, 5}}, {{2, 49, 128}}, {{2, 16, 192}}, {{1, 1, 3}}};
  cases.push_back(wide);
  test::OpCase square = tall;
  square.name = "svd_right square";
  square.shapes = {{2, 4, 4}};
  square.gpu_shapes = {};
  cases.push_back(square);
  test::OpCase top = tall;
  top.name = "svd_right: the first two right singular vectors only (tall and wide)";
  top.fn = [](const V& in) { return svd_right(in[0])[1].slice(2, 0, 2); };
  top.shapes = {{2, 6, 4}};
  top.gpu_shapes = {{{2, 6, 4}}, {{2, 3, 6}}, {{4, 49, 64}}};
  cases.push_back(top);
  test::OpCase top_wide = top;
  top_wide.name = "svd_right: the first two right singular vectors of a wide matrix";
  top_wide.shapes = {{2, 3, 6}};
  top_wide.gpu_shapes = {};
  cases.push_back(top_wide);
  return cases;
}
const test::OpCases kSvdCases("svd", svd_cases());
}  // namespace

TEST_CASE("gradcheck: svd_right") { test::check_gradients(kSvdCases); }
TEST_CASE("op cases: svd_right in bf16 and on transposed inputs") {
  test::check_bf16(kSvdCases);
  test::check_transposed(kSvdCases);
}

TEST_SUITE("gpu") {
  TEST_CASE("cuda parity: svd_right") {
    RETORT_REQUIRE_GPU();
    test::check_cuda_parity(kSvdCases);
  }
}
