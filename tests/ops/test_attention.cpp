// scaled_dot_product_attention: hand-computed values (plain, causal, default scale), f64
// gradchecks (causal or not, Lq != Lk, strided inputs), shape errors, and CUDA parity of the
// fused flash kernels (forward output and the gradients of q, k, v) against the CPU reference.
#include "helpers.h"

using namespace retort;
using retort::test::check_close;
using retort::test::gradcheck;
using retort::test::max_rel_error;
using retort::test::random_tensor;

namespace {
// q = [[1, 0], [0, 2]], k = [[1, 1], [0, 1]], v = [[1, 2], [3, 4]] as [1, 1, 2, 2].
Tensor hand_q() { return Tensor::from_vector({1, 0, 0, 2}, {1, 1, 2, 2}, DType::f64); }
Tensor hand_k() { return Tensor::from_vector({1, 1, 0, 1}, {1, 1, 2, 2}, DType::f64); }
Tensor hand_v() { return Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2}, DType::f64); }
}  // namespace

TEST_CASE("scaled_dot_product_attention: 1x1x2x2 by hand") {
  // scale 1: row 0 scores (1, 0) -> weights (s, 1 - s) with s = e / (e + 1); row 1 scores (2, 2) -> (1/2, 1/2).
  const double s = std::exp(1.0) / (std::exp(1.0) + 1.0);
  check_close(scaled_dot_product_attention(hand_q(), hand_k(), hand_v(), false, 1.0), {3 - 2 * s, 4 - 2 * s, 2, 3},
              1e-12);
  // causal: row 0 sees only key 0.
  check_close(scaled_dot_product_attention(hand_q(), hand_k(), hand_v(), true, 1.0), {1, 2, 2, 3}, 1e-12);
  // default scale 1/sqrt(2)
  check_close(scaled_dot_product_attention(hand_q(), hand_k(), hand_v()),
              {1.6604769013466862, 2.6604769013466862, 2, 3}, 1e-12);
  // f32 and bf16 follow the f64 result
  check_close(scaled_dot_product_attention(hand_q().to(DType::f32), hand_k().to(DType::f32), hand_v().to(DType::f32),
                                           false, 1.0),
              {3 - 2 * s, 4 - 2 * s, 2, 3}, 1e-6);
  Tensor ob = scaled_dot_product_attention(hand_q().to(DType::bf16), hand_k().to(DType::bf16),
                                           hand_v().to(DType::bf16), false, 1.0);
  CHECK(ob.dtype() == DType::bf16);
  check_close(ob, {3 - 2 * s, 4 - 2 * s, 2, 3}, 1e-2);
}

TEST_CASE("scaled_dot_product_attention: gradients by hand") {
  // One key: the output is v whatever q and k are, so dv = dO and dq = dk = 0.
  Tensor q = Tensor::from_vector({0.3, -1, 2, 0.5}, {1, 1, 2, 2}, DType::f64).requires_grad_();
  Tensor k = Tensor::from_vector({1.5, -2}, {1, 1, 1, 2}, DType::f64).requires_grad_();
  Tensor v = Tensor::from_vector({4, -3}, {1, 1, 1, 2}, DType::f64).requires_grad_();
  Tensor o = scaled_dot_product_attention(q, k, v);
  check_close(o, {4, -3, 4, -3}, 1e-12);
  o.backward(Tensor::from_vector({1, 2, -0.5, 3}, {1, 1, 2, 2}, DType::f64));
  check_close(v.grad(), {0.5, 5}, 1e-12);
  check_close(q.grad(), {0, 0, 0, 0}, 1e-12);
  check_close(k.grad(), {0, 0}, 1e-12);
  // Causal, scale 1, hand case: row 1 weights (1/2, 1/2), row 0 only key 0. With dO = [[0, 0], [1, 0]]:
  // dv = P^T dO = [[1/2, 0], [1/2, 0]]; dP row 1 = dO_1 . v_j = (1, 3), delta = dO_1 . o_1 = 2,
  // dS row 1 = P * (dP - delta) = (-1/2, 1/2); dq_1 = dS k = (-1/2, 0); dk_0 = -1/2 q_1 = (0, -1), dk_1 = (0, 1).
  Tensor q2 = hand_q().requires_grad_(), k2 = hand_k().requires_grad_(), v2 = hand_v().requires_grad_();
  scaled_dot_product_attention(q2, k2, v2, true, 1.0)
      .backward(Tensor::from_vector({0, 0, 1, 0}, {1, 1, 2, 2}, DType::f64));
  check_close(v2.grad(), {0.5, 0, 0.5, 0}, 1e-12);
  check_close(q2.grad(), {0, 0, -0.5, 0}, 1e-12);
  check_close(k2.grad(), {0, -1, 0, 1}, 1e-12);
}

TEST_CASE("gradcheck: scaled_dot_product_attention") {
  auto q = random_tensor({2, 3, 5, 4}, 51), k = random_tensor({2, 3, 7, 4}, 52), v = random_tensor({2, 3, 7, 4}, 53);
  auto attn = [](bool causal, double scale) {
    return [causal, scale](const std::vector<Tensor>& in) {
      return scaled_dot_product_attention(in[0], in[1], in[2], causal, scale);
    };
  };
  gradcheck(attn(false, 0.0), {q, k, v});  // Lq < Lk
  gradcheck(attn(true, 0.0), {q, k, v});
  gradcheck(attn(true, 0.7), {random_tensor({1, 2, 6, 3}, 54), random_tensor({1, 2, 6, 3}, 55),
                              random_tensor({1, 2, 6, 3}, 56)});
  // Lq > Lk, causal: late queries see every key
  gradcheck(attn(true, 0.0), {random_tensor({1, 2, 7, 3}, 57), random_tensor({1, 2, 4, 3}, 58),
                              random_tensor({1, 2, 4, 3}, 59)});
  // strided inputs: [B, L, H, D] transposed to [B, H, L, D]
  gradcheck(
      [](const std::vector<Tensor>& in) {
        return scaled_dot_product_attention(in[0].transpose(1, 2), in[1].transpose(1, 2), in[2].transpose(1, 2));
      },
      {random_tensor({2, 5, 3, 4}, 60), random_tensor({2, 3, 3, 4}, 61), random_tensor({2, 3, 3, 4}, 62)});
}

TEST_CASE("scaled_dot_product_attention: shape errors name the operand") {
  Tensor q = Tensor::ones({2, 3, 5, 4}), k = Tensor::ones({2, 3, 7, 4});
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(Tensor::ones({3, 5, 4}), k, k),
                       doctest::Contains("q must be [B, H, Lq, D], got [3, 5, 4]"), Error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, Tensor::ones({2, 3, 7, 5}), k),
                       doctest::Contains("k [2, 3, 7, 5] does not match q [2, 3, 5, 4]"), Error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, k, Tensor::ones({2, 3, 6, 4})),
                       doctest::Contains("v [2, 3, 6, 4] must have the shape of k [2, 3, 7, 4]"), Error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, k, Tensor::ones({2, 3, 7, 4}, DType::f64)),
                       doctest::Contains("dtype mismatch"), Error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, Tensor::ones({2, 3, 0, 4}), Tensor::ones({2, 3, 0, 4})),
                       doctest::Contains("no keys"), Error);
}

TEST_SUITE("gpu") {
TEST_CASE("cuda parity: scaled_dot_product_attention") {
  RETORT_REQUIRE_GPU();
  const Device gpu = Device::cuda();
  struct Case { int64_t B, H, Lq, Lk, D; };
  const std::vector<Case> cases = {{2, 3, 17, 17, 64}, {1, 2, 65, 65, 64}, {2, 2, 197, 197, 64}, {1, 1, 5, 9, 7},
                                   {2, 1, 33, 20, 128}, {1, 2, 40, 70, 96}, {1, 1, 1, 1, 32}, {3, 2, 31, 64, 33}};
  for (DType dt : {DType::f32, DType::bf16, DType::f64}) {
    const double tol = dt == DType::bf16 ? 1e-2 : 1e-5;
    for (const Case& c : cases)
      for (bool causal : {false, true}) {
        INFO("B " << c.B << " H " << c.H << " Lq " << c.Lq << " Lk " << c.Lk << " D " << c.D << " causal " << causal
                  << " dtype " << dtype_name(dt));
        std::vector<Tensor> cpu_in = {random_tensor({c.B, c.H, c.Lq, c.D}, 71, -1.5, 1.5, dt),
                                      random_tensor({c.B, c.H, c.Lk, c.D}, 72, -1.5, 1.5, dt),
                                      random_tensor({c.B, c.H, c.Lk, c.D}, 73, -1.5, 1.5, dt)};
        Tensor g = random_tensor({c.B, c.H, c.Lq, c.D}, 74, -1, 1, dt);
        std::vector<Tensor> gpu_in;
        for (auto& t : cpu_in) t.requires_grad_();
        for (auto& t : cpu_in) gpu_in.push_back(t.detach().to(gpu).requires_grad_());
        Tensor oc = scaled_dot_product_attention(cpu_in[0], cpu_in[1], cpu_in[2], causal);
        Tensor og = scaled_dot_product_attention(gpu_in[0], gpu_in[1], gpu_in[2], causal);
        CHECK(max_rel_error(og.to(Device::cpu()), oc) <= tol);
        oc.backward(g);
        og.backward(g.to(gpu));
        for (size_t i = 0; i < 3; ++i) {
          INFO("gradient of " << "qkv"[i]);
          CHECK(max_rel_error(gpu_in[i].grad().to(Device::cpu()), cpu_in[i].grad()) <= tol);
        }
      }
  }
}

TEST_CASE("cuda: scaled_dot_product_attention rejects head dims above the kernel's limit") {
  RETORT_REQUIRE_GPU();
  Tensor q = Tensor::ones({1, 1, 4, 160}, DType::f32, Device::cuda());
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, q, q), doctest::Contains("head dim 160"), Error);
}
}  // TEST_SUITE("gpu")
