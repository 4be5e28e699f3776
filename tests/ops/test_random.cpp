// rand, randn and dropout: values against the counter-based reference formulas, generator
// bookkeeping, statistics on large draws, dropout gradients, and CPU/CUDA bit parity.
#include <cmath>
#include "helpers.h"
#include "kernels/random_draws.h"
#include "ops/op_case.h"
#include "ops/op_test_util.h"

using namespace retort;
using retort::test::check_close;
using retort::test::gradcheck;
using retort::test::random_tensor;

namespace {
double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}
// Random draws are compared bit for bit by their own tests, not by tolerance: they are named
// here for the op coverage check.
const test::OpCases kRandomCases("random", {},
                                 {{"rand", "rand: counter-based values and generator bookkeeping"},
                                  {"randn", "randn: Box-Muller pairs on the reserved counters"},
                                  {"dropout", "dropout: mask from the generator, scaling, eval identity"}});
double var_of(const std::vector<double>& v) {
  double m = mean_of(v), s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return s / double(v.size() - 1);
}
}  // namespace

TEST_CASE("rand: counter-based values and generator bookkeeping") {
  Generator g(1234);
  Tensor a = rand({3, 5}, g, DType::f64);
  CHECK(a.shape() == Shape{3, 5});
  CHECK(g.offset() == 15);
  auto v = a.to_vector();
  for (size_t i = 0; i < v.size(); ++i) CHECK(v[i] == uniform01(1234, i));
  Tensor b = rand({4}, g, DType::f64);  // the next draw continues at counter 15
  CHECK(g.offset() == 19);
  auto w = b.to_vector();
  for (size_t i = 0; i < w.size(); ++i) CHECK(w[i] == uniform01(1234, 15 + i));
  // the same state gives the same values; f32 is the f64 draw rounded
  Generator h(1234);
  Tensor af = rand({3, 5}, h, DType::f32);
  CHECK(af.dtype() == DType::f32);
  auto vf = af.to_vector();
  for (size_t i = 0; i < vf.size(); ++i) CHECK(vf[i] == double(float(v[i])));
  Generator other(1235);
  CHECK(rand({3, 5}, other, DType::f64).to_vector() != v);
}

TEST_CASE("rand and randn: statistics of a large draw") {
  Generator g(7);
  const int64_t n = 100001;
  for (DType dt : {DType::f32, DType::bf16, DType::f64}) {
    auto u = rand({n}, g, dt).to_vector();
    double lo = 1, hi = 0;
    for (double x : u) { lo = std::min(lo, x); hi = std::max(hi, x); }
    CHECK(lo >= 0.0);
    CHECK(hi < 1.0);
    // mean 1/2, variance 1/12; 5 standard errors of the estimate (~0.0009 and ~0.0003)
    CHECK(std::abs(mean_of(u) - 0.5) < 0.005);
    CHECK(std::abs(var_of(u) - 1.0 / 12) < 0.002);
    auto z = randn({n}, g, dt).to_vector();
    CHECK(std::abs(mean_of(z)) < 0.016);      // 5 standard errors (1/sqrt(n) = 0.0032)
    CHECK(std::abs(var_of(z) - 1.0) < 0.025);  // 5 standard errors (sqrt(2/n) = 0.0045)
  }
}

TEST_CASE("rand: values that round up to 1 in a narrow dtype are kept below 1") {
  // find counters whose uniform rounds to 1.0 in bf16 (u >= 1 - 2^-9) and draw exactly there
  Generator probe(99);
  uint64_t hit = 0;
  bool found = false;
  for (uint64_t c = 0; c < 200000 && !found; ++c)
    if (uniform01(99, c) >= 1.0 - 1.0 / 512) { hit = c; found = true; }
  REQUIRE(found);
  Generator g(99);
  g.advance(hit);
  CHECK(rand({1}, g, DType::bf16).item() == 0.99609375);
}

TEST_CASE("randn: Box-Muller pairs on the reserved counters") {
  Generator g(42);
  Tensor z = randn({5}, g, DType::f64);
  CHECK(g.offset() == 6);  // 5 normals use 3 pairs of counters
  auto v = z.to_vector();
  for (int64_t i = 0; i < 5; ++i) {
    const uint64_t pair = 2 * uint64_t(i / 2);
    const double r = std::sqrt(-2.0 * std::log(1.0 - uniform01(42, pair)));
    const double t = 6.283185307179586 * uniform01(42, pair + 1);
    CHECK(v[size_t(i)] == doctest::Approx(i % 2 ? r * std::sin(t) : r * std::cos(t)).epsilon(1e-15));
  }
  Tensor next = randn({2}, g, DType::f64);
  CHECK(g.offset() == 8);
  CHECK(next.to_vector()[0] != v[4]);
}

TEST_CASE("dropout: mask from the generator, scaling, eval identity") {
  Tensor x = Tensor::ones({4, 25}, DType::f64);
  const double p = 0.3;
  Generator g(5);
  Tensor y = dropout(x, p, true, g);
  CHECK(g.offset() == 100);
  auto v = y.to_vector();
  for (size_t i = 0; i < v.size(); ++i) {
    const bool keep = uniform01(5, i) >= p;
    CHECK(v[i] == (keep ? 1.0 / (1.0 - p) : 0.0));
  }
  Generator e(5);
  Tensor ev = dropout(x, p, false, e);
  CHECK(ev.storage() == x.storage());  // eval: identity, no copy, no draw
  CHECK(e.offset() == 0);
  CHECK(dropout(x, 0.0, true, e).storage() == x.storage());
  check_close(dropout(x.slice(1, 0, 3), 1.0, true, e), std::vector<double>(12, 0.0), 0);
  // a large draw keeps about 1 - p of the elements (5 standard errors ~ 0.007)
  Generator big(6);
  auto d = dropout(Tensor::ones({100000}), p, true, big).to_vector();
  double kept = 0;
  for (double t : d) kept += t != 0;
  CHECK(std::abs(kept / 100000 - (1 - p)) < 0.0075);
  CHECK_THROWS_WITH_AS(dropout(x, 1.5, true, g), doctest::Contains("dropout: p must be in [0, 1], got 1.5"), Error);
  CHECK_THROWS_WITH_AS(dropout(Tensor::from_i64({1}, {1}), 0.5, true, g),
                       doctest::Contains("dropout: the input must be floating"), Error);
  CHECK_THROWS_WITH_AS(rand({2}, g, DType::i64), doctest::Contains("rand: dtype must be floating"), Error);
  CHECK_THROWS_WITH_AS(randn({2}, g, DType::u8), doctest::Contains("randn: dtype must be floating"), Error);
}

TEST_CASE("dropout: backward uses the forward mask") {
  Tensor x = random_tensor({3, 7}, 51).requires_grad_();
  Generator g(9);
  Tensor y = dropout(x, 0.4, true, g);
  Tensor w = random_tensor({3, 7}, 52);
  sum(mul(y, w)).backward();
  auto yv = y.to_vector(), xv = x.detach().to_vector(), gv = x.grad().to_vector(), wv = w.to_vector();
  int dropped = 0;
  for (size_t i = 0; i < yv.size(); ++i) {
    const bool keep = uniform01(9, i) >= 0.4;
    dropped += !keep;
    CHECK(gv[i] == doctest::Approx(keep ? wv[i] / 0.6 : 0.0).epsilon(1e-14));
    CHECK(yv[i] == doctest::Approx(keep ? xv[i] / 0.6 : 0.0).epsilon(1e-14));
  }
  CHECK(dropped > 0);
  gradcheck([](const std::vector<Tensor>& in) {
    Generator fixed(17);  // the same mask on every evaluation
    return dropout(in[0], 0.35, true, fixed);
  }, {random_tensor({5, 9}, 53)});
  gradcheck([](const std::vector<Tensor>& in) {
    Generator fixed(18);
    return dropout(in[0].transpose(0, 1), 0.5, true, fixed);
  }, {random_tensor({5, 9}, 54)});
}

TEST_SUITE("gpu") {
TEST_CASE("cuda parity: rand, randn, dropout") {
  RETORT_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::bf16, DType::f64}) {
    for (Shape s : {Shape{1}, Shape{7}, Shape{33, 65}, Shape{3, 5, 1031}}) {
      INFO(std::string(dtype_name(dt)) << " " << shape_str(s));
      Generator gc(77), gg(77);
      gc.advance(3);
      gg.advance(3);
      Tensor uc = rand(s, gc, dt), ug = rand(s, gg, dt, Device::cuda());
      CHECK(ug.to(Device::cpu()).to_vector() == uc.to_vector());  // bit-identical
      CHECK(gc.offset() == gg.offset());
      Tensor nc = randn(s, gc, dt), ng = randn(s, gg, dt, Device::cuda());
      // the same uniforms; CUDA's double log/sin/cos may differ from glibc in the last ulp
      CHECK(retort::test::max_rel_error(ng.to(Device::cpu()), nc) <= retort::test::op_tolerance(dt));
      CHECK(gc.offset() == gg.offset());
      Tensor x = random_tensor(s, 78, -1, 1, dt);
      Tensor xc = x.detach().requires_grad_(), xg = x.to(Device::cuda()).requires_grad_();
      Tensor yc = dropout(xc, 0.3, true, gc), yg = dropout(xg, 0.3, true, gg);
      CHECK(yg.to(Device::cpu()).to_vector() == yc.to_vector());  // same mask, same products
      Tensor w = random_tensor(s, 79, 0.5, 1.5, dt);
      sum(mul(yc, w)).backward();
      sum(mul(yg, w.to(Device::cuda()))).backward();
      CHECK(xg.grad().to(Device::cpu()).to_vector() == xc.grad().to_vector());
    }
  }
}
}
