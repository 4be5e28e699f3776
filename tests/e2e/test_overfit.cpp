// End-to-end sanity of the engine: a two-layer conv net and a two-block transformer each
// overfit one fixed batch on the CPU. Bound: cross-entropy below 0.05 (from about ln 4 = 1.39)
// within 200 AdamW steps. Labels are random, so only memorisation gets there: forward,
// backward and the optimizer must all be right.
#include "engine/nn/attention.h"
#include "engine/nn/layers.h"
#include "engine/optim/adamw.h"
#include "helpers.h"

using namespace retort;

namespace {

constexpr double kBound = 0.05;

double train_to_bound(nn::Module& model, const std::function<Tensor(const Tensor&)>& forward, const Tensor& x,
                      const Tensor& y, double lr, int steps) {
  AdamW opt(make_param_groups(model.named_parameters(), lr, 0.0, false));
  double first = 0, last = 0;
  for (int s = 0; s < steps; ++s) {
    Tensor loss = cross_entropy(forward(x), y);
    last = loss.item();
    if (s == 0) first = last;
    if (last < kBound) break;
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  MESSAGE("cross-entropy " << first << " -> " << last);
  CHECK(first > 1.0);
  return last;
}

Tensor random_labels(int64_t n, int64_t classes, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (auto& l : v) l = g.randint(classes);
  return Tensor::from_i64(v, {n});
}

struct ConvNet : nn::Module {
  explicit ConvNet(Generator& gen) {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(1, 8, nn::Conv2dSpec{3, 1, 1, 1, 1, false}, gen));
    bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(8));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(8, 16, nn::Conv2dSpec{3, 2, 1, 1, 1, true}, gen));
    fc = register_module("fc", std::make_shared<nn::Linear>(16, 4, gen));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = relu(bn1->forward(conv1->forward(x)));
    h = relu(conv2->forward(h));
    return fc->forward(adaptive_avg_pool2d(h, {1, 1}).flatten(1));
  }
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm2d> bn1;
  std::shared_ptr<nn::Linear> fc;
};

struct Block : nn::Module {
  Block(int64_t dim, int64_t heads, Generator& gen) {
    norm1 = register_module("norm1", std::make_shared<nn::LayerNorm>(dim, 1e-6));
    attn = register_module("attn", std::make_shared<nn::MultiheadSelfAttention>(dim, heads, gen));
    norm2 = register_module("norm2", std::make_shared<nn::LayerNorm>(dim, 1e-6));
    mlp = register_module("mlp", std::make_shared<nn::Mlp>(dim, 2 * dim, dim, gen));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = add(x, attn->forward(norm1->forward(x)));
    return add(h, mlp->forward(norm2->forward(h)));
  }
  std::shared_ptr<nn::LayerNorm> norm1, norm2;
  std::shared_ptr<nn::MultiheadSelfAttention> attn;
  std::shared_ptr<nn::Mlp> mlp;
};

struct TinyTransformer : nn::Module {
  explicit TinyTransformer(Generator& gen) {
    block0 = register_module("block0", std::make_shared<Block>(16, 2, gen));
    block1 = register_module("block1", std::make_shared<Block>(16, 2, gen));
    head = register_module("head", std::make_shared<nn::Linear>(16, 4, gen));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = block1->forward(block0->forward(x));
    return head->forward(mean(h, {1}));
  }
  std::shared_ptr<Block> block0, block1;
  std::shared_ptr<nn::Linear> head;
};

}  // namespace

TEST_CASE("overfit: a two-layer conv net memorises a fixed batch") {
  Generator gen(7);
  ConvNet net(gen);
  net.train();
  Tensor x = test::random_tensor({16, 1, 8, 8}, 21, -1, 1, DType::f32);
  Tensor y = random_labels(16, 4, 22);
  double last = train_to_bound(net, [&](const Tensor& in) { return net.forward(in); }, x, y, 1e-2, 200);
  CHECK(last < kBound);
}

TEST_CASE("overfit: a two-block transformer memorises a fixed batch") {
  Generator gen(8);
  TinyTransformer net(gen);
  net.train();
  Tensor x = test::random_tensor({8, 6, 16}, 31, -1, 1, DType::f32);
  Tensor y = random_labels(8, 4, 32);
  double last = train_to_bound(net, [&](const Tensor& in) { return net.forward(in); }, x, y, 3e-3, 200);
  CHECK(last < kBound);
}
