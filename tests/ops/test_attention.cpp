// scaled_dot_product_attention: hand-computed values (plain, causal, default scale), shape
// errors; through the op cases (ops/op_case.h) gradients (causal or not, Lq != Lk), bf16,
// transposed inputs, and CUDA parity of the fused flash kernels (output and q, k, v gradients).
#include <array>
#include "helpers.h"
#include "ops/op_case.h"

using namespace retort;
using retort::test::check_close;
using retort::test::gradcheck;
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

namespace {
using V = std::vector<Tensor>;
test::OpCase attention_case(std::string name, bool causal, double scale, std::array<int64_t, 5> small) {
  test::OpCase c;
  c.op = "scaled_dot_product_attention";
  c.name = "attention " + name + (causal ? ", causal" : "");
  c.fn = [causal, scale](const V& in) { return scaled_dot_product_attention(in[0], in[1], in[2], causal, scale); };
  auto qkv = [](std::array<int64_t, 5> s) {  // B, H, Lq, Lk, D
    return std::vector<Shape>{{s[0], s[1], s[2], s[4]}, {s[0], s[1], s[3], s[4]}, {s[0], s[1], s[3], s[4]}};
  };
  c.shapes = qkv(small);
  if (scale == 0.0)
    for (auto s : std::vector<std::array<int64_t, 5>>{{2, 3, 17, 17, 64}, {1, 2, 65, 65, 64}, {2, 2, 197, 197, 64},
                                                       {1, 1, 5, 9, 7},     {2, 1, 33, 20, 128}, {1, 2, 40, 70, 96},
                                                       {1, 1, 1, 1, 32},    {3, 2, 31, 64, 33}})
      c.gpu_shapes.push_back(qkv(s));
  c.lo = -1.5, c.hi = 1.5;
  return c;
}
const test::OpCases kAttentionCases(
    "attention", {attention_case("Lq < Lk", false, 0.0, {2, 3, 5, 7, 4}), attention_case("Lq < Lk", true, 0.0, {2, 3, 5, 7, 4}),
                  attention_case("scale 0.7", true, 0.7, {1, 2, 6, 6, 3}),
                  attention_case("Lq > Lk (late queries see every key)", true, 0.0, {1, 2, 7, 4, 3})});
}  // namespace

TEST_CASE("gradcheck: scaled_dot_product_attention") {
  test::check_gradients(kAttentionCases);
  // strided inputs: [B, L, H, D] transposed to [B, H, L, D]
  gradcheck(
      [](const V& in) {
        return scaled_dot_product_attention(in[0].transpose(1, 2), in[1].transpose(1, 2), in[2].transpose(1, 2));
      },
      {random_tensor({2, 5, 3, 4}, 60), random_tensor({2, 3, 3, 4}, 61), random_tensor({2, 3, 3, 4}, 62)});
}
TEST_CASE("op cases: scaled_dot_product_attention in bf16 and on transposed inputs") {
  test::check_bf16(kAttentionCases);
  test::check_transposed(kAttentionCases);
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
  test::check_cuda_parity(kAttentionCases);
}

TEST_CASE("cuda: scaled_dot_product_attention rejects head dims above the kernel's limit") {
  RETORT_REQUIRE_GPU();
  Tensor q = Tensor::ones({1, 1, 4, 160}, DType::f32, Device::cuda());
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, q, q), doctest::Contains("head dim 160"), Error);
}
}  // TEST_SUITE("gpu")
