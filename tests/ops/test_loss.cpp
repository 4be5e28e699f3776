// Losses: cross_entropy (label smoothing, reductions, bad labels), kl_div (PyTorch semantics),
// mse_loss, smooth_l1_loss: hand-computed values, f64 gradchecks, errors and CUDA parity.
#include <cmath>
#include "helpers.h"
#include "ops/parity.h"

using namespace retort;
using retort::test::check_close;
using retort::test::gradcheck;
using retort::test::random_tensor;

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

TEST_CASE("gradcheck: cross_entropy, kl_div, mse_loss, smooth_l1_loss") {
  auto logits = random_tensor({5, 7}, 41, -3, 3);
  Tensor target = Tensor::from_i64({0, 6, 3, 3, 1}, {5});
  for (double eps : {0.0, 0.1})
    for (Reduction r : {Reduction::none, Reduction::mean, Reduction::sum})
      gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], target, eps, r); }, {logits});
  auto log_q = random_tensor({3, 5}, 42, -3, -0.1), p = random_tensor({3, 5}, 43, 0.05, 1.0);
  auto log_p = random_tensor({3, 5}, 44, -3, -0.1);
  gradcheck([](const std::vector<Tensor>& in) { return kl_div(in[0], in[1]); }, {log_q, p});
  gradcheck([](const std::vector<Tensor>& in) { return kl_div(in[0], in[1], Reduction::none, true); }, {log_q, log_p});
  auto a = random_tensor({3, 5}, 45, -3, 3), b = random_tensor({3, 5}, 46, -3, 3);
  gradcheck([](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1]); }, {a, b});
  gradcheck([](const std::vector<Tensor>& in) { return smooth_l1_loss(in[0], in[1], 1.0, Reduction::none); }, {a, b});
  gradcheck([](const std::vector<Tensor>& in) { return smooth_l1_loss(in[0], in[1], 0.5, Reduction::batchmean); }, {a, b});
}

TEST_SUITE("gpu") {
  TEST_CASE("cuda parity: cross_entropy") {
    RETORT_REQUIRE_GPU();
    for (Shape s : {Shape{5, 7}, Shape{64, 1000}, Shape{3, 5003}}) {
      auto logits = random_tensor(s, 51, -5, 5);
      std::vector<int64_t> t(static_cast<size_t>(s[0]));
      for (size_t i = 0; i < t.size(); ++i) t[i] = int64_t((i * 7919) % size_t(s[1]));
      Tensor target = Tensor::from_i64(t, {s[0]});
      for (DType dt : {DType::f32, DType::bf16})
        for (Reduction r : {Reduction::none, Reduction::mean})
          retort::test::check_cuda_parity(
              [r](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1], 0.1, r); }, {logits, target}, dt,
              dt == DType::f32 ? 1e-5 : 1e-2);
    }
    CHECK_THROWS_WITH_AS(cross_entropy(Tensor::ones({3, 4}, DType::f32, Device::cuda(0)),
                                       Tensor::from_i64({0, 1, 9}, {3}, Device::cuda(0))),
                         doctest::Contains("target label 9 at row 2"), Error);
  }
  TEST_CASE("cuda parity: kl_div, smooth_l1_loss, mse_loss") {
    RETORT_REQUIRE_GPU();
    for (Shape s : {Shape{3, 5}, Shape{17, 333}}) {
      auto log_q = random_tensor(s, 52, -3, -0.1), p = random_tensor(s, 53, 0.05, 1.0);
      auto a = random_tensor(s, 54, -3, 3), b = random_tensor(s, 55, -3, 3);
      for (DType dt : {DType::f32, DType::bf16}) {
        double tol = dt == DType::f32 ? 1e-5 : 1e-2;
        using V = std::vector<Tensor>;
        retort::test::check_cuda_parity([](const V& in) { return kl_div(in[0], in[1], Reduction::none); }, {log_q, p}, dt, tol);
        retort::test::check_cuda_parity([](const V& in) { return kl_div(in[0], in[1], Reduction::none, true); }, {log_q, log_q},
                                        dt, tol);
        retort::test::check_cuda_parity([](const V& in) { return smooth_l1_loss(in[0], in[1], 1.0, Reduction::none); },
                                        {a, b}, dt, tol);
        retort::test::check_cuda_parity([](const V& in) { return mse_loss(in[0], in[1], Reduction::none); }, {a, b}, dt, tol);
      }
    }
  }
}
