// Losses: cross_entropy (label smoothing, reductions, bad labels), kl_div (PyTorch semantics),
// mse_loss, smooth_l1_loss: hand-computed values and errors; gradients, bf16, transposed
// inputs and CUDA parity through the op cases (ops/op_case.h).
#include <cmath>
#include "helpers.h"
#include "ops/op_case.h"

using namespace retort;
using retort::test::check_close;

TEST_CASE("cross_entropy with label smoothing 0.1 on a 2x3 example (by hand)") {
  // Row 0: logits (1, 2, 3), target 2.  lse = 3 + ln(1 + e^-1 + e^-2) = 3.4076059644...
  //   loss = lse - 0.9 * x_t - (0.1 / 3) * sum(x) = 3.4076059644 - 2.7 - 0.2 = 0.5076059644
  // Row 1: logits (1, 0, -1), target 1.  lse = 1.4076059644..., x_t = 0, sum(x) = 0
  //   loss = 1.4076059644
  Tensor logits = Tensor::from_vector({1, 2, 3, 1, 0, -1}, {2, 3}, DType::f64).requires_grad_(true);
  Tensor target = Tensor::from_i64({2, 1}, {2});
  check_close(cross_entropy(logits, target, 0.1, Reduction::none), {0.5076059644443804, 1.4076059644443806}, 1e-12);
  check_close(cross_entropy(logits, target, 0.1, Reduction::sum), {1.915211928888761}, 1e-12);
  Tensor loss = cross_entropy(logits, target, 0.1);
  check_close(loss, {0.9576059644443805}, 1e-12);
  CHECK(loss.dim() == 0);
  // d mean / d x = (softmax - q) / N with q = 0.9 onehot + 0.1 / 3.
  loss.backward();
  const double p0 = 0.09003057317038046, p1 = 0.24472847105479767, p2 = 0.6652409557748219;
  const double off = 0.1 / 3, on = 0.9 + 0.1 / 3;
  check_close(logits.grad(), {(p0 - off) / 2, (p1 - off) / 2, (p2 - on) / 2, (p2 - off) / 2, (p1 - on) / 2, (p0 - off) / 2},
              1e-12);
  // Without smoothing: plain negative log-likelihood.
  check_close(cross_entropy(logits, target, 0.0, Reduction::none), {3.4076059644443804 - 3, 1.4076059644443806}, 1e-12);
}

TEST_CASE("cross_entropy: large logits stay finite, f32") {
  Tensor logits = Tensor::from_vector({1000, 0, -1000, 500}, {2, 2});
  Tensor target = Tensor::from_i64({0, 0}, {2});
  check_close(cross_entropy(logits, target, 0.0, Reduction::none), {0, 1500}, 1e-6);
}

TEST_CASE("cross_entropy: clear errors, the bad label is named") {
  Tensor logits = Tensor::ones({3, 4});
  CHECK_THROWS_WITH_AS(cross_entropy(logits, Tensor::from_i64({0, 4, 1}, {3})),
                       doctest::Contains("target label 4 at row 1 is out of range [0, 4)"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, Tensor::from_i64({0, 1, -2}, {3})),
                       doctest::Contains("target label -2 at row 2"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, Tensor::from_i64({0, 1}, {2})), doctest::Contains("target must be i64 [N]"),
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, Tensor::zeros({3})), doctest::Contains("target must be i64"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(Tensor::ones({3}), Tensor::from_i64({0}, {1})), doctest::Contains("[N, C]"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, Tensor::from_i64({0, 1, 2}, {3}), 1.5), doctest::Contains("label_smoothing"),
                       Error);
}

TEST_CASE("kl_div: PyTorch semantics for every reduction and log_target") {
  // KL(p || q) for p = (0.5, 0.5), q = (0.25, 0.75): 0.5 ln 2 + 0.5 ln(2/3); a second row with
  // p = (0, 1), q = (0.5, 0.5): 0 * log 0 = 0, so 1 * ln 2.
  Tensor log_q = Tensor::from_vector({std::log(0.25), std::log(0.75), std::log(0.5), std::log(0.5)}, {2, 2}, DType::f64);
  Tensor p = Tensor::from_vector({0.5, 0.5, 0.0, 1.0}, {2, 2}, DType::f64);
  const double a = 0.5 * std::log(2.0), b = 0.5 * std::log(2.0 / 3.0), c = std::log(2.0);
  check_close(kl_div(log_q, p, Reduction::none), {a, b, 0.0, c}, 1e-12);
  check_close(kl_div(log_q, p), {(a + b + c) / 2}, 1e-12);  // batchmean: / size(0)
  check_close(kl_div(log_q, p, Reduction::sum), {a + b + c}, 1e-12);
  check_close(kl_div(log_q, p, Reduction::mean), {(a + b + c) / 4}, 1e-12);
  Tensor log_p = Tensor::from_vector({std::log(0.5), std::log(0.5)}, {1, 2}, DType::f64);
  check_close(kl_div(log_q.slice(0, 0, 1), log_p, Reduction::sum, true), {a + b}, 1e-12);
  // d/d log_q = -p / N
  Tensor lq = log_q.clone().requires_grad_(true);
  kl_div(lq, p).backward();
  check_close(lq.grad(), {-0.25, -0.25, 0.0, -0.5}, 1e-12);
  CHECK_THROWS_WITH_AS(kl_div(log_q, Tensor::ones({2, 3}, DType::f64)), doctest::Contains("kl_div: shapes differ"), Error);
  CHECK_THROWS_WITH_AS(kl_div(log_q, Tensor::ones({2, 2})), doctest::Contains("kl_div: dtype mismatch"), Error);
}

TEST_CASE("mse_loss and smooth_l1_loss: values") {
  Tensor a = Tensor::from_vector({1, 2, 3}, {3}), b = Tensor::from_vector({1, 0, 5}, {3});
  check_close(mse_loss(a, b), {8.0 / 3.0});
  check_close(mse_loss(a, b, Reduction::sum), {8});
  check_close(mse_loss(a, b, Reduction::none), {0, 4, 4});
  Tensor x = Tensor::from_vector({0, 0.5, 3, -2}, {4}), z = Tensor::zeros({4});
  check_close(smooth_l1_loss(x, z, 1.0, Reduction::none), {0, 0.125, 2.5, 1.5});
  check_close(smooth_l1_loss(x, z, 0.0, Reduction::none), {0, 0.5, 3, 2});
  check_close(smooth_l1_loss(x, z, 2.0, Reduction::none), {0, 0.0625, 2, 1});
  check_close(smooth_l1_loss(x, z), {(0.125 + 2.5 + 1.5) / 4});
  Tensor xg = x.to(DType::f64).requires_grad_(true);
  smooth_l1_loss(xg, z.to(DType::f64), 1.0, Reduction::sum).backward();
  check_close(xg.grad(), {0, 0.5, 1, -1}, 1e-12);
  CHECK_THROWS_WITH_AS(smooth_l1_loss(x, z, -1.0), doctest::Contains("beta must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(mse_loss(a, Tensor::ones({1})), doctest::Contains("mse_loss: shapes differ"), Error);
}

namespace {
using V = std::vector<Tensor>;
// Labels for logits [N, C]: row i gets (i * 7919) % C, on the logits' device.
Tensor labels_for(const Tensor& logits) {
  std::vector<int64_t> t(static_cast<size_t>(logits.size(0)));
  for (size_t i = 0; i < t.size(); ++i) t[i] = int64_t((i * 7919) % size_t(logits.size(1)));
  return Tensor::from_i64(t, {logits.size(0)}).to(logits.device());
}
const char* reduction_name(Reduction r) {
  return r == Reduction::none ? "none" : r == Reduction::mean ? "mean" : r == Reduction::sum ? "sum" : "batchmean";
}
std::vector<test::OpCase> loss_cases() {
  std::vector<test::OpCase> cases;
  for (double eps : {0.0, 0.1})
    for (Reduction r : {Reduction::none, Reduction::mean, Reduction::sum}) {
      test::OpCase c;
      c.op = "cross_entropy";
      c.name = std::string("cross_entropy, smoothing ") + (eps > 0 ? "0.1" : "0") + ", reduction " + reduction_name(r);
      c.fn = [eps, r](const V& in) { return cross_entropy(in[0], labels_for(in[0]), eps, r); };
      c.shapes = {{5, 7}};
      c.gpu_shapes = {{{5, 7}}, {{64, 1000}}, {{3, 5003}}};
      c.lo = -3, c.hi = 3;
      c.transposed = false;  // logits rows are samples: a transposed view is another problem
      cases.push_back(c);
    }
  auto pair_case = [](std::string name, std::string op, test::OpFn fn, std::pair<double, double> ra,
                      std::pair<double, double> rb) {
    test::OpCase c;
    c.name = std::move(name), c.op = std::move(op), c.fn = std::move(fn);
    c.shapes = {{3, 5}, {3, 5}};
    c.gpu_shapes = {{{3, 5}, {3, 5}}, {{17, 333}, {17, 333}}};
    c.ranges = {ra, rb};
    return c;
  };
  cases.push_back(pair_case("kl_div batchmean", "kl_div", [](const V& in) { return kl_div(in[0], in[1]); },
                            {-3, -0.1}, {0.05, 1.0}));
  cases.push_back(pair_case("kl_div none, log target", "kl_div",
                            [](const V& in) { return kl_div(in[0], in[1], Reduction::none, true); }, {-3, -0.1},
                            {-3, -0.1}));
  cases.push_back(pair_case("mse_loss mean", "mse_loss", [](const V& in) { return mse_loss(in[0], in[1]); }, {-3, 3},
                            {-3, 3}));
  cases.push_back(pair_case("smooth_l1_loss beta 1, none", "smooth_l1_loss",
                            [](const V& in) { return smooth_l1_loss(in[0], in[1], 1.0, Reduction::none); }, {-3, 3},
                            {-3, 3}));
  cases.push_back(pair_case("smooth_l1_loss beta 0.5, batchmean", "smooth_l1_loss",
                            [](const V& in) { return smooth_l1_loss(in[0], in[1], 0.5, Reduction::batchmean); },
                            {-3, 3}, {-3, 3}));
  return cases;
}
const test::OpCases kLossCases("loss", loss_cases());
}  // namespace

TEST_CASE("gradcheck: cross_entropy, kl_div, mse_loss, smooth_l1_loss") { test::check_gradients(kLossCases); }
TEST_CASE("op cases: losses in bf16 and on transposed inputs") {
  test::check_bf16(kLossCases);
  test::check_transposed(kLossCases);
}

TEST_SUITE("gpu") {
  TEST_CASE("cuda parity: cross_entropy, kl_div, mse_loss, smooth_l1_loss") {
    RETORT_REQUIRE_GPU();
    test::check_cuda_parity(kLossCases);
    CHECK_THROWS_WITH_AS(cross_entropy(Tensor::ones({3, 4}, DType::f32, Device::cuda(0)),
                                       Tensor::from_i64({0, 1, 9}, {3}, Device::cuda(0))),
                         doctest::Contains("target label 9 at row 2"), Error);
  }
}
