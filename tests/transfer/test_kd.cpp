// KD loss: value on a hand-worked example, gradient check, teacher receives no gradient.
#include "helpers.h"
#include "transfer/kd.h"

using namespace retort;

TEST_CASE("kd: value on a hand-worked example") {
  // T = 2. Row 1: z_s = [1, 2, 0.5], z_t = [0.2, 1.5, -1].
  //   p = softmax(z_t/2) = [0.288654, 0.552929, 0.158417]
  //   q = softmax(z_s/2) = [0.291756, 0.481024, 0.227220]
  //   KL(p||q) = sum p log(p/q) = 0.0168053
  // Row 2: z_s = [0, 0, 0] (q uniform), z_t = [1, 0, 0]: p = [0.452394, 0.273803, 0.273803],
  //   KL = 0.0301669.  L = T^2 * mean = 4 * (0.0168053 + 0.0301669) / 2 = 0.0939444
  Tensor s = Tensor::from_vector({1, 2, 0.5, 0, 0, 0}, {2, 3}, DType::f64);
  Tensor t = Tensor::from_vector({0.2, 1.5, -1, 1, 0, 0}, {2, 3}, DType::f64);
  retort::test::check_close(transfer::kd_loss(s, t, 2.0), {0.09394439024300363}, 1e-10);
  // identical logits: zero loss
  retort::test::check_close(transfer::kd_loss(t, t, 4.0), {0.0}, 1e-12);
}

TEST_CASE("kd: gradient check and a frozen teacher") {
  Tensor t = retort::test::random_tensor({3, 5}, 11, -2, 2);
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::kd_loss(in[0], t, 4.0); },
                          {retort::test::random_tensor({3, 5}, 12, -2, 2)});
  Tensor s = retort::test::random_tensor({3, 5}, 13).requires_grad_();
  Tensor tt = t.detach().clone().requires_grad_();
  transfer::kd_loss(s, tt, 4.0).backward();
  CHECK(s.grad().defined());
  CHECK_FALSE(tt.grad().defined());
  CHECK_THROWS_WITH_AS(transfer::kd_loss(s, Tensor::zeros({3, 4}, DType::f64), 4.0),
                       doctest::Contains("kd: student logits"), Error);
}
