// Autocast (engine/autocast.h): each op's rule under a bf16 scope (lower to bf16, f32, promote,
// as given), f32 master weights receiving f32 gradients through the casts, the bf16 results
// equal to f32 arithmetic on bf16-rounded operands (the rounding really happens), nothing cast
// outside a scope, scopes nesting and restoring (TF32 included), and whole models (ResNet,
// ViT) training under bf16 close to f32.
#include <doctest/doctest.h>
#include <cmath>
#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "helpers.h"
#include "kernels/math_mode.h"
#include "models/registry.h"

using namespace retort;

namespace {

Tensor f32_random(const Shape& shape, uint64_t seed, double lo = -1, double hi = 1) {
  return test::random_tensor(shape, seed, lo, hi, DType::f32);
}

// t rounded to bf16 and back: the operand a bf16 kernel sees.
Tensor bf16_rounded(const Tensor& t) { return t.detach().to(DType::bf16).to(DType::f32); }

// Cosine similarity of two tensors' values.
double cosine(const Tensor& a, const Tensor& b) {
  const auto va = a.to_vector(), vb = b.to_vector();
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    ab += va[i] * vb[i];
    aa += va[i] * va[i];
    bb += vb[i] * vb[i];
  }
  return ab / std::sqrt(aa * bb);
}

}  // namespace

TEST_CASE("autocast: the lower-precision ops run in bf16 on bf16-rounded operands") {
  const Tensor x = f32_random({5, 7}, 1), w = f32_random({3, 7}, 2), b = f32_random({3}, 3);
  const Tensor img = f32_random({2, 3, 6, 6}, 4), k = f32_random({4, 3, 3, 3}, 5), kb = f32_random({4}, 6);
  const Tensor q = f32_random({1, 2, 4, 8}, 7), kk = f32_random({1, 2, 4, 8}, 8), v = f32_random({1, 2, 4, 8}, 9);
  AutocastScope bf16(Precision::bf16);
  const Tensor lin = linear(x, w, b);
  const Tensor mm = matmul(x, w.transpose(0, 1));
  const Tensor conv = conv2d(img, k, kb);
  const Tensor att = scaled_dot_product_attention(q, kk, v);
  for (const Tensor* t : {&lin, &mm, &conv, &att}) CHECK(t->dtype() == DType::bf16);
  // Outside the scope, f32 arithmetic on the rounded operands, rounded once: the same bits.
  Tensor lin_ref, mm_ref, conv_ref;
  {
    AutocastScope f32(Precision::f32);
    lin_ref = linear(bf16_rounded(x), bf16_rounded(w), bf16_rounded(b)).to(DType::bf16);
    mm_ref = matmul(bf16_rounded(x), bf16_rounded(w).transpose(0, 1)).to(DType::bf16);
    conv_ref = conv2d(bf16_rounded(img), bf16_rounded(k), bf16_rounded(kb)).to(DType::bf16);
  }
  CHECK(test::same_bits(lin, lin_ref));
  CHECK(test::same_bits(mm, mm_ref));
  CHECK(test::same_bits(conv, conv_ref));
  // And not the f32 result: the rounding is real.
  CHECK_FALSE(test::same_bits(lin.to(DType::f32), linear(x, w, b)));
}

TEST_CASE("autocast: reductions, norms, softmax and losses run in f32 whatever reaches them") {
  const Tensor logits = f32_random({6, 5}, 11, -3, 3).to(DType::bf16);
  const Tensor labels = Tensor::from_i64({0, 1, 2, 3, 4, 0}, {6});
  const Tensor img = f32_random({2, 3, 4, 4}, 12).to(DType::bf16);
  Tensor gamma = Tensor::ones({3}), beta = Tensor::zeros({3}), rm = Tensor::zeros({3}), rv = Tensor::ones({3});
  AutocastScope bf16(Precision::bf16);
  CHECK(softmax(logits, 1).dtype() == DType::f32);
  CHECK(log_softmax(logits, 1).dtype() == DType::f32);
  CHECK(cross_entropy(logits, labels).dtype() == DType::f32);
  CHECK(kl_div(log_softmax(logits, 1), softmax(logits, 1)).dtype() == DType::f32);
  CHECK(mse_loss(logits, logits).dtype() == DType::f32);
  CHECK(sum(logits).dtype() == DType::f32);
  CHECK(mean(logits).dtype() == DType::f32);
  CHECK(exp(logits).dtype() == DType::f32);
  CHECK(layer_norm(logits, Tensor(), Tensor()).dtype() == DType::f32);
  CHECK(rm.dtype() == DType::f32);  // the running statistics stay f32
  // The f32 op on a bf16 input equals the op on its exact f32 value (the cast up is exact).
  CHECK(test::same_bits(softmax(logits, 1), softmax(logits.to(DType::f32), 1)));
}

TEST_CASE("autocast: batch norm keeps a bf16 activation bf16, with f32 parameters and statistics") {
  const Tensor img = f32_random({2, 3, 4, 4}, 12);
  Tensor gamma = Tensor::ones({3}), beta = Tensor::zeros({3}), rm = Tensor::zeros({3}), rv = Tensor::ones({3});
  AutocastScope bf16(Precision::bf16);
  CHECK(batch_norm2d(img.to(DType::bf16), gamma, beta, rm, rv, true).dtype() == DType::bf16);
  CHECK(batch_norm2d(img, gamma, beta, rm, rv, true).dtype() == DType::f32);  // as given
  CHECK(rm.dtype() == DType::f32);
  CHECK(rv.dtype() == DType::f32);
}

TEST_CASE("autocast: mixed bf16 and f32 operands promote to f32; other ops keep their dtype") {
  const Tensor a = f32_random({4, 3}, 21).to(DType::bf16), b = f32_random({4, 3}, 22);
  {
    AutocastScope bf16(Precision::bf16);
    for (const Tensor& t : {add(a, b), sub(b, a), mul(a, b), div(a, add(b, 3.0)), maximum(a, b),
                            where(gt(b, 0.0), a, b), concat({a, b}, 0), stack({a, b}, 0)})
      CHECK(t.dtype() == DType::f32);
    CHECK(add(a, a).dtype() == DType::bf16);  // one dtype: nothing to promote
    CHECK(relu(a).dtype() == DType::bf16);
    CHECK(gelu(a).dtype() == DType::bf16);
    CHECK(mul(a, 2.0).dtype() == DType::bf16);
  }
  // Outside a scope, mixed dtypes stay an error.
  CHECK_THROWS_AS(add(a, b), Error);
  CHECK_THROWS_AS(linear(b, a), Error);
}

TEST_CASE("autocast: f32 master weights get f32 gradients through the casts, close to f32 training's") {
  const Tensor x = f32_random({8, 16}, 31);
  Tensor w = f32_random({10, 16}, 32, -0.3, 0.3), b = f32_random({10}, 33, -0.1, 0.1);
  const Tensor labels = Tensor::from_i64({0, 1, 2, 3, 4, 5, 6, 7}, {8});
  w.requires_grad_(true);
  b.requires_grad_(true);
  auto grads = [&](Precision p) {
    w.set_grad(Tensor());
    b.set_grad(Tensor());
    {
      AutocastScope scope(p);
      Tensor loss = cross_entropy(relu(linear(x, w, b)), labels);
      CHECK(loss.dtype() == DType::f32);
      loss.backward();  // inside the scope: backward casts nothing itself
    }
    return std::make_pair(w.grad(), b.grad());
  };
  const auto [gw16, gb16] = grads(Precision::bf16);
  const auto [gw32, gb32] = grads(Precision::f32);
  CHECK(gw16.dtype() == DType::f32);
  CHECK(gb16.dtype() == DType::f32);
  CHECK(cosine(gw16, gw32) > 0.999);
  CHECK(cosine(gb16, gb32) > 0.999);
  CHECK_FALSE(test::same_bits(gw16, gw32));  // bf16 arithmetic really ran
}

TEST_CASE("autocast: scopes nest and restore the precision and the TF32 mode") {
  CHECK(autocast::current() == Precision::f32);
  CHECK_FALSE(kernels::tf32_allowed());
  {
    AutocastScope tf32(Precision::tf32);
    CHECK(kernels::tf32_allowed());
    CHECK_FALSE(autocast::casting());
    {
      AutocastScope bf16(Precision::bf16);
      CHECK(autocast::casting());
      CHECK_FALSE(kernels::tf32_allowed());
    }
    CHECK(autocast::current() == Precision::tf32);
    CHECK(kernels::tf32_allowed());
  }
  CHECK(autocast::current() == Precision::f32);
  CHECK_FALSE(kernels::tf32_allowed());
  CHECK(parse_precision("bf16") == Precision::bf16);
  CHECK_THROWS_WITH_AS(parse_precision("fp16"), doctest::Contains("\"f32\", \"tf32\" or \"bf16\""), Error);
}

TEST_CASE("autocast: a ResNet and a ViT step under bf16 match f32 in loss and gradient direction") {
  for (const char* arch : {"resnet8", "vit_tiny"}) {
    INFO(arch);
    models::ModelConfig cfg;
    cfg.in_channels = 1;
    cfg.image_size = 28;
    cfg.patch_size = 7;
    cfg.depth = 2;
    auto model = models::create_model(arch, cfg);
    model->train();
    const Tensor x = f32_random({8, 1, 28, 28}, 41);
    const Tensor y = Tensor::from_i64({0, 1, 2, 3, 4, 5, 6, 7}, {8});
    auto step = [&](Precision p) {
      for (auto& [n, t] : model->named_parameters()) t.set_grad(Tensor());
      double loss_value = 0;
      {
        AutocastScope scope(p);
        Tensor loss = cross_entropy(model->forward(x), y);
        loss_value = loss.item();
        loss.backward();
      }
      std::vector<Tensor> gs;
      for (auto& [n, t] : model->named_parameters()) {
        CHECK(t.dtype() == DType::f32);
        if (t.grad().defined()) {
          CHECK(t.grad().dtype() == DType::f32);
          gs.push_back(t.grad().reshape({t.grad().numel()}));
        }
      }
      return std::make_pair(loss_value, concat(gs, 0));
    };
    const auto [loss16, g16] = step(Precision::bf16);
    const auto [loss32, g32] = step(Precision::f32);
    CHECK(std::abs(loss16 - loss32) < 0.02 * std::abs(loss32));
    CHECK(cosine(g16, g32) > 0.99);
  }
}
