// Layers: forward values against hand computations, BatchNorm train/eval behaviour,
// Dropout, Sequential, attention against a plain matmul/softmax reference, gradchecks.
#include <cmath>
#include "engine/nn/nn.h"
#include "helpers.h"
#include "nn/module_gradcheck.h"

using namespace retort;
using retort::test::check_close;
using retort::test::gradcheck;
using retort::test::random_tensor;

TEST_CASE("nn layers: Linear and Conv2d forward on hand-computed values") {
  Generator gen(1);
  nn::Linear lin(2, 2, gen);
  lin.weight.copy_(Tensor::from_vector({1, 2, 3, 4}, {2, 2}));
  lin.bias.copy_(Tensor::from_vector({0.5, -1}, {2}));
  check_close(lin(Tensor::from_vector({1, 1, 2, -1}, {2, 2})), {3.5, 6, 0.5, 1});
  CHECK_THROWS_WITH_AS(lin(Tensor::ones({2, 3})), doctest::Contains("Linear(2, 2)"), Error);

  nn::Conv2d conv(1, 1, nn::Conv2dSpec{2, 1, 0, 1, 1, true}, gen);
  conv.weight.fill_(1.0);
  conv.bias.fill_(0.25);
  check_close(conv(Tensor::from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3})), {12.25, 16.25, 24.25, 28.25});
  nn::Conv2d strided(1, 2, nn::Conv2dSpec{3, 2, 1, 1, 1, false}, gen);
  CHECK(strided(Tensor::ones({1, 1, 7, 7})).shape() == Shape{1, 2, 4, 4});
  CHECK(strided.out_size(7) == 4);
  CHECK_THROWS_WITH_AS(conv(Tensor::ones({1, 2, 3, 3})), doctest::Contains("Conv2d(1, 1)"), Error);
}

TEST_CASE("nn layers: BatchNorm2d uses batch statistics in train and running statistics in eval") {
  nn::BatchNorm2d bn(2);
  // channel 0: values 1..4, channel 1: constant 3 (over N=2, H=1, W=2)
  Tensor x = Tensor::from_vector({1, 2, 3, 3, 3, 4, 3, 3}, {2, 2, 1, 2});
  Tensor y = bn(x);
  // channel 0 batch mean 2.5, biased var 1.25; channel 1 mean 3 var 0.
  double s = std::sqrt(1.25 + 1e-5);
  check_close(y, {-1.5 / s, -0.5 / s, 0, 0, 0.5 / s, 1.5 / s, 0, 0}, 1e-6);
  // running = 0.9 * old + 0.1 * batch (unbiased var 5/3 for channel 0).
  check_close(bn.running_mean, {0.25, 0.3}, 1e-6);
  check_close(bn.running_var, {0.9 + 0.1 * 5.0 / 3.0, 0.9}, 1e-6);
  CHECK(bn.num_batches_tracked.item() == 1);
  bn.eval();
  Tensor z = bn(x);
  double s0 = std::sqrt(0.9 + 0.5 / 3.0 + 1e-5), s1 = std::sqrt(0.9 + 1e-5);
  check_close(z, {(1 - 0.25) / s0, (2 - 0.25) / s0, (3 - 0.3) / s1, (3 - 0.3) / s1, (3 - 0.25) / s0, (4 - 0.25) / s0,
                  (3 - 0.3) / s1, (3 - 0.3) / s1},
              1e-6);
  CHECK(bn.num_batches_tracked.item() == 1);  // eval does not count
  check_close(bn.running_mean, {0.25, 0.3}, 1e-6);
}

TEST_CASE("nn layers: LayerNorm, Dropout, Sequential, GELU") {
  nn::LayerNorm ln(4, 1e-6);
  Tensor x = Tensor::from_vector({1, 2, 3, 4}, {1, 4});
  double sd = std::sqrt(1.25 + 1e-6);
  check_close(ln(x), {-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd}, 1e-6);

  Generator gen(9);
  nn::Dropout drop(0.5, gen);
  Tensor ones = Tensor::ones({1000});
  auto v = drop(ones).to_vector();
  int zeros = 0;
  for (double e : v) {
    CHECK((e == 0.0 || std::abs(e - 2.0) < 1e-6));
    zeros += e == 0.0;
  }
  CHECK(zeros > 400);
  CHECK(zeros < 600);
  drop.eval();
  check_close(drop(x), {1, 2, 3, 4});

  nn::Sequential seq;
  auto l1 = seq.push_back(std::make_shared<nn::Linear>(4, 3, gen));
  seq.push_back(std::make_shared<nn::GELU>());
  auto l2 = seq.push_back(std::make_shared<nn::Linear>(3, 2, gen));
  Tensor want = l2->forward(gelu(l1->forward(x)));
  check_close(seq(x), want.to_vector(), 1e-6);
  CHECK(seq.size() == 3);
  CHECK(seq.at<nn::Linear>(2) == l2);
  CHECK_THROWS_WITH_AS(seq.at<nn::Linear>(1), doctest::Contains("Sequential[1] is a GELU"), Error);
}

TEST_CASE("nn layers: self-attention matches a matmul/softmax reference and gradchecks in f64") {
  Generator gen(11);
  nn::MultiheadSelfAttention attn(6, 2, gen);
  attn.to(DType::f64);
  CHECK(attn.qkv->weight.shape() == Shape{18, 6});
  Tensor x = random_tensor({2, 5, 6}, 12);
  // Reference: per head h, softmax(q_h k_h^T / sqrt(3)) v_h, heads concatenated, then proj.
  Tensor qkv = attn.qkv->forward(x);  // [2, 5, 18] laid out as [3][heads][head_dim]
  std::vector<Tensor> heads;
  for (int64_t h = 0; h < 2; ++h) {
    Tensor q = qkv.slice(2, h * 3, h * 3 + 3), k = qkv.slice(2, 6 + h * 3, 6 + h * 3 + 3),
           v = qkv.slice(2, 12 + h * 3, 12 + h * 3 + 3);
    Tensor att = softmax(matmul(q, k.transpose(1, 2)) * (1.0 / std::sqrt(3.0)), -1);
    heads.push_back(matmul(att, v));
  }
  Tensor want = attn.proj->forward(concat(heads, 2));
  CHECK(test::max_rel_error(attn(x), want) < 1e-10);
  gradcheck([&](const std::vector<Tensor>& in) { return attn(in[0]); }, {random_tensor({1, 3, 6}, 13)});
  test::module_param_gradcheck(attn, [&] { return attn(x); });
}

TEST_CASE("nn layers: Mlp is fc2(gelu(fc1(x))) and gradchecks in f64") {
  Generator gen(14);
  nn::Mlp mlp(3, 5, 2, gen);
  mlp.to(DType::f64);
  Tensor x = random_tensor({4, 3}, 15);
  CHECK(test::max_rel_error(mlp(x), mlp.fc2->forward(gelu(mlp.fc1->forward(x)))) < 1e-12);
  test::module_param_gradcheck(mlp, [&] { return mlp(x); });
}

TEST_CASE("nn layers: Conv2d and BatchNorm2d parameter gradients (f64, train mode)") {
  Generator gen(16);
  nn::Sequential seq;
  seq.push_back(std::make_shared<nn::Conv2d>(2, 4, nn::Conv2dSpec{3, 2, 1, 1, 2, true}, gen));
  seq.push_back(std::make_shared<nn::BatchNorm2d>(4));
  seq.to(DType::f64);
  Tensor x = random_tensor({2, 2, 5, 5}, 17);
  test::module_param_gradcheck(seq, [&] { return seq(x); });
}
