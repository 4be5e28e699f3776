// The frozen teacher's inference path: conv2d_bias_act (engine/ops/conv_fused.cpp) against the
// same sum composed from conv2d, add and relu; make_frozen_inference_copy (models/
// fold_batch_norm.h) against the original model, logits and every tap, with random non-trivial
// BatchNorm statistics, counting the BatchNorms each forward still applies; the original left
// bit for bit as it was; CUDA against CPU in TEST_SUITE("gpu").
#include <algorithm>
#include <cmath>
#include <map>
#include "engine/nn/layers.h"
#include "engine/profiler.h"
#include "helpers.h"
#include "models/fold_batch_norm.h"
#include "models/registry.h"
#include "models/resnet.h"
#include "models/wrn.h"
#include "ops/op_case.h"

using namespace retort;
using namespace retort::models;
using retort::test::random_tensor;
using retort::test::same_bits;

namespace {

// ---------------------------------------------------------------- conv2d_bias_act
struct FusedCase {
  Shape x, w;
  Conv2dOptions opt;
};

FusedCase fused_case(int64_t stride, int64_t groups) {
  FusedCase c{{2, 4, 9, 7}, {8, 4 / groups, 3, 3}, {}};
  c.opt.stride = {stride, stride};
  c.opt.padding = {1, 1};
  c.opt.groups = groups;
  return c;
}

Shape out_shape(const FusedCase& c) {
  const int64_t oh = (c.x[2] + 2 * c.opt.padding[0] - c.w[2]) / c.opt.stride[0] + 1;
  const int64_t ow = (c.x[3] + 2 * c.opt.padding[1] - c.w[3]) / c.opt.stride[1] + 1;
  return {c.x[0], c.w[0], oh, ow};
}

// act(conv2d(x, w) + bias + residual) from the separate ops, in the fused kernel's order.
Tensor composed(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual, bool act,
                const Conv2dOptions& opt) {
  Tensor y = add(conv2d(x, w, Tensor(), opt), bias.reshape({1, bias.size(0), 1, 1}));
  if (residual.defined()) y = add(y, residual);
  return act ? relu(y) : y;
}

struct FusedInputs {
  Tensor x, w, bias, residual;
};

FusedInputs fused_inputs(const FusedCase& c, bool with_residual, DType dtype, Device device = Device::cpu()) {
  FusedInputs in;
  in.x = random_tensor(c.x, 11, -1, 1, dtype, device);
  in.w = random_tensor(c.w, 12, -0.5, 0.5, dtype, device);
  in.bias = random_tensor({c.w[0]}, 13, -0.5, 0.5, dtype, device);
  if (with_residual) in.residual = random_tensor(out_shape(c), 14, -1, 1, dtype, device);
  return in;
}

// ---------------------------------------------------------------- models
ModelConfig small_config() {
  ModelConfig c;
  c.in_channels = 3;
  c.num_classes = 10;
  c.image_size = 32;
  return c;
}

// Every BatchNorm gets gamma in [0.5, 1.5], beta in [-0.3, 0.3], running_mean in [-0.5, 0.5]
// and running_var in [0.5, 2] (a fresh model has 1, 0, 0, 1: folding them would hide errors).
void randomise_batch_norms(Model& model) {
  uint64_t seed = 100;
  for (auto& [name, m] : model.named_modules()) {
    auto* bn = dynamic_cast<nn::BatchNorm2d*>(m);
    if (!bn) continue;
    const Shape s{bn->channels};
    const DType dt = bn->weight.dtype();
    bn->weight.copy_(random_tensor(s, ++seed, 0.5, 1.5, dt));
    bn->bias.copy_(random_tensor(s, ++seed, -0.3, 0.3, dt));
    bn->running_mean.copy_(random_tensor(s, ++seed, -0.5, 0.5, dt));
    bn->running_var.copy_(random_tensor(s, ++seed, 0.5, 2.0, dt));
  }
}

// max |a - b| / max |b|: the error against the tensor's own scale (a residual sum or logit can
// sit near zero while its neighbours are large; a per-element relative error would be noise).
double scaled_error(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  auto va = a.to(Device::cpu()).to_vector(), vb = b.to(Device::cpu()).to_vector();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    diff = std::max(diff, std::isnan(va[i]) != std::isnan(vb[i]) ? INFINITY : std::abs(va[i] - vb[i]));
    scale = std::max(scale, std::abs(vb[i]));
  }
  return diff / std::max(scale, 1e-30);
}

// How many times each op ran in one forward with taps.
std::map<std::string, int> op_counts(Model& model, const Tensor& x, Taps& taps, Tensor& logits) {
  profiler::start();
  {
    NoGradGuard ng;
    logits = model.forward(x, &taps);
  }
  std::map<std::string, int> counts;
  for (const auto& e : profiler::stop())
    if (e.kind == profiler::Kind::op) ++counts[e.name];
  return counts;
}

struct FoldExpectation {
  int batch_norms_before, batch_norms_after, fused;
};

// The folded copy's logits and every tap against the original's, within tol (scaled_error).
void check_folded(Model& original, const Tensor& x, double tol, const FoldExpectation& expect) {
  original.eval();
  std::shared_ptr<Model> folded = make_frozen_inference_copy(original);
  Taps want, got;
  Tensor want_logits, got_logits;
  auto before = op_counts(original, x, want, want_logits);
  auto after = op_counts(*folded, x, got, got_logits);
  // A BatchNorm runs as batch_norm2d, or as batch_norm2d_act when its ReLU (and residual) fuse in.
  CHECK(before["batch_norm2d"] + before["batch_norm2d_act"] == expect.batch_norms_before);
  CHECK(after["batch_norm2d"] + after["batch_norm2d_act"] == expect.batch_norms_after);
  CHECK(before["conv2d_bias_act"] == 0);
  CHECK(after["conv2d_bias_act"] == expect.fused);
  CHECK(scaled_error(got_logits, want_logits) < tol);
  REQUIRE(got.size() == want.size());
  for (auto& [name, t] : want) {
    INFO("tap " << name);
    REQUIRE(got.count(name) == 1);
    CHECK(scaled_error(got.at(name), t) < tol);
  }
}

std::vector<std::pair<std::string, Tensor>> snapshot(const Model& m) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [name, t] : m.state_dict()) out.emplace_back(name, t.clone());
  return out;
}

// A small ResNet with the ImageNet stem (7x7/2 + max-pool) and Bottleneck blocks.
std::shared_ptr<ResNet> tiny_bottleneck_resnet() {
  ResNetSpec spec{"tiny_bottleneck", true, true, 16, {8, 16}, {2, 1}};
  return std::make_shared<ResNet>(spec, small_config());
}

}  // namespace

// ---------------------------------------------------------------- op tests
// For the op coverage check (tests/ops/op_case.cpp): conv2d_bias_act has no backward, so no
// OpCase (they check gradients); the tests below are its own.
const test::OpCases kConvFusedCases(
    "conv_fused", {},
    {{"conv2d_bias_act", "conv2d_bias_act: CPU equals conv2d + bias + residual + relu bit for bit (f32, f64)"}});

TEST_CASE("conv2d_bias_act: CPU equals conv2d + bias + residual + relu bit for bit (f32, f64)") {
  // The CPU kernel is conv2d's own kernel without a bias, then one pass adding bias and residual
  // in that order: the same roundings as the separate ops, so the results are identical.
  for (DType dtype : {DType::f32, DType::f64})
    for (auto [stride, groups] : {std::pair<int64_t, int64_t>{1, 1}, {2, 1}, {1, 2}, {2, 4}})
      for (bool with_residual : {false, true})
        for (bool act : {false, true}) {
          INFO(std::string(dtype_name(dtype)) << " stride " << stride << " groups " << groups << " residual "
                                              << with_residual << " relu " << act);
          const FusedCase c = fused_case(stride, groups);
          const FusedInputs in = fused_inputs(c, with_residual, dtype);
          Tensor got = conv2d_bias_act(in.x, in.w, in.bias, in.residual, act, c.opt);
          Tensor want = composed(in.x, in.w, in.bias, in.residual, act, c.opt);
          CHECK(got.shape() == out_shape(c));
          CHECK(same_bits(got, want));
          const double most_negative = max(neg(got)).item();
          if (act) CHECK(most_negative <= 0.0);
          if (!act) CHECK(most_negative > 0.0);  // the inputs make negative sums: relu off is seen
        }
}

TEST_CASE("conv2d_bias_act: bf16 on the CPU is the f32 result rounded once") {
  for (bool with_residual : {false, true}) {
    const FusedCase c = fused_case(2, 2);
    const FusedInputs in = fused_inputs(c, with_residual, DType::bf16);
    Tensor r32 = with_residual ? in.residual.to(DType::f32) : Tensor();
    Tensor want = conv2d_bias_act(in.x.to(DType::f32), in.w.to(DType::f32), in.bias.to(DType::f32), r32, true, c.opt);
    Tensor got = conv2d_bias_act(in.x, in.w, in.bias, in.residual, true, c.opt);
    CHECK(got.dtype() == DType::bf16);
    CHECK(same_bits(got, want.to(DType::bf16)));
  }
}

TEST_CASE("conv2d_bias_act: refuses inputs that require a gradient under grad mode; checks shapes") {
  const FusedCase c = fused_case(1, 1);
  FusedInputs in = fused_inputs(c, true, DType::f32);
  in.w.requires_grad_(true);
  CHECK_THROWS_WITH_AS(conv2d_bias_act(in.x, in.w, in.bias, in.residual, true, c.opt),
                       doctest::Contains("inference-only"), Error);
  {
    NoGradGuard ng;  // the teacher's forward: allowed, and no history
    Tensor y = conv2d_bias_act(in.x, in.w, in.bias, in.residual, true, c.opt);
    CHECK_FALSE(y.requires_grad());
    CHECK(same_bits(y, composed(in.x, in.w.detach(), in.bias, in.residual, true, c.opt)));
  }
  in.w = in.w.detach();
  Tensor wrong_residual = random_tensor({2, 6, 3, 3}, 1, -1, 1, DType::f32);
  CHECK_THROWS_WITH_AS(conv2d_bias_act(in.x, in.w, in.bias, wrong_residual, true, c.opt),
                       doctest::Contains("residual"), Error);
  CHECK_THROWS_WITH_AS(conv2d_bias_act(in.x, in.w, Tensor(), Tensor(), true, c.opt), doctest::Contains("bias"), Error);
}

// ---------------------------------------------------------------- folding tests
TEST_CASE("fold batch norm: fold_batch_norm_into a grouped, strided conv with its own bias is bn(conv(x))") {
  // f64 so the only difference is rounding (~1e-16): the shift b * s of the conv's own bias
  // and the per-channel scale of each group's weights are exercised.
  Generator gen(5);
  nn::Conv2d conv(4, 6, nn::Conv2dSpec{3, 2, 1, 1, 2, true}, gen);
  nn::BatchNorm2d bn(6);
  conv.to(DType::f64);
  bn.to(DType::f64);
  bn.weight.copy_(random_tensor({6}, 21, 0.5, 1.5));
  bn.bias.copy_(random_tensor({6}, 22, -0.3, 0.3));
  bn.running_mean.copy_(random_tensor({6}, 23, -0.5, 0.5));
  bn.running_var.copy_(random_tensor({6}, 24, 0.5, 2.0));
  conv.eval();
  bn.eval();
  Tensor x = random_tensor({2, 4, 9, 9}, 25, -1, 1);
  NoGradGuard ng;
  Tensor want = bn.forward(conv.forward(x));
  fold_batch_norm_into(conv, bn);
  Tensor got = folded_conv(conv, x, Tensor(), false);
  CHECK(scaled_error(got, want) < 1e-12);
  CHECK(scaled_error(relu(want), folded_conv(conv, x, Tensor(), true)) < 1e-12);
}

TEST_CASE("fold batch norm: resnet8 and resnet8x4 give the original logits and taps, with no BatchNorm left") {
  // f32 tolerance (the same for the other f32 fold tests): each folded layer differs from
  // conv-then-BN by a few f32 roundings of the scaled weights, of the accumulation and of the
  // BN's affine map (~1e-7 of the scale); through the layers and shortcuts the worst logit or tap
  // measured 8e-7 of its tensor's scale (2-core AVX-512 machine, oneDNN). 1e-5 leaves 12x room
  // and a wrong fold (a missing shift or scale) is O(0.1).
  Tensor x = random_tensor({2, 3, 32, 32}, 7, -1, 1, DType::f32);
  // resnet8: stem, 3 blocks x 2, 2 downsamples = 9 BNs; resnet8x4 (stem 32, stage 1 64) has a
  // third downsample: 10. As many fused convolutions replace them.
  for (auto [name, bns] : {std::pair<std::string, int>{"resnet8", 9}, {"resnet8x4", 10}}) {
    INFO(name);
    auto model = create_model(name, small_config());
    randomise_batch_norms(*model);
    check_folded(*model, x, 1e-5, {bns, 0, bns});
  }
}

TEST_CASE("fold batch norm: a Bottleneck ResNet with the ImageNet stem gives the original logits and taps") {
  auto model = tiny_bottleneck_resnet();
  randomise_batch_norms(*model);
  Tensor x = random_tensor({2, 3, 32, 32}, 8, -1, 1, DType::f32);
  // stem + 3 Bottlenecks x 3 + 2 downsamples = 12 BNs, all folded.
  check_folded(*model, x, 1e-5, {12, 0, 12});
}

TEST_CASE("fold batch norm: wrn_16_2 folds each block's bn2 and keeps the pre-activation BNs") {
  auto model = create_model("wrn_16_2", small_config());
  randomise_batch_norms(*model);
  Tensor x = random_tensor({2, 3, 32, 32}, 9, -1, 1, DType::f32);
  // 6 blocks: 6 bn1 + 6 bn2 + the final bn1 = 13; the 6 bn2 fold, 7 stay.
  check_folded(*model, x, 1e-5, {13, 7, 6});
}

TEST_CASE("fold batch norm: in f64 the folded copy matches to 1e-10") {
  // In f64 the roundings are ~1e-16 per operation (measured worst: 1.4e-15 of the scale), so
  // 1e-10 is a bound only an exact fold meets.
  Tensor x = random_tensor({2, 3, 16, 16}, 10, -1, 1, DType::f64);
  for (std::string name : {"resnet8", "wrn_16_2"}) {
    INFO(name);
    auto model = create_model(name, small_config());
    model->to(DType::f64);
    randomise_batch_norms(*model);
    const bool wrn = name == "wrn_16_2";
    check_folded(*model, x, 1e-10, wrn ? FoldExpectation{13, 7, 6} : FoldExpectation{9, 0, 9});
  }
  auto bottleneck = tiny_bottleneck_resnet();
  bottleneck->to(DType::f64);
  randomise_batch_norms(*bottleneck);
  check_folded(*bottleneck, x, 1e-10, {12, 0, 12});
}

TEST_CASE("fold batch norm: the original model is left bit for bit as it was") {
  for (std::string name : {"resnet8", "wrn_16_2"}) {
    INFO(name);
    auto model = create_model(name, small_config());
    randomise_batch_norms(*model);
    model->eval();
    Tensor x = random_tensor({1, 3, 16, 16}, 12, -1, 1, DType::f32);
    Tensor logits_before;
    {
      NoGradGuard ng;
      logits_before = model->forward(x);
    }
    model->train();  // a teacher in training mode: the copy is still eval, the teacher stays as it is
    auto before = snapshot(*model);
    auto folded = make_frozen_inference_copy(*model);
    auto after = model->state_dict();
    REQUIRE(after.size() == before.size());
    for (size_t i = 0; i < before.size(); ++i) {
      INFO(before[i].first);
      CHECK(after[i].first == before[i].first);
      CHECK(same_bits(after[i].second, before[i].second));
    }
    CHECK(model->is_training());
    CHECK_FALSE(folded->is_training());
    for (auto& p : model->parameters()) CHECK(p.requires_grad());  // the teacher's flags untouched
    model->eval();
    NoGradGuard ng;
    CHECK(same_bits(model->forward(x), logits_before));
    // the copy holds its own tensors: the folded conv weights differ from the original's
    const std::string conv = name == "wrn_16_2" ? "block1.layer.0.conv1.weight" : "layer1.0.conv1.weight";
    REQUIRE(folded->find_tensor(conv) != nullptr);
    CHECK_FALSE(same_bits(*folded->find_tensor(conv), *model->find_tensor(conv)));
  }
}

TEST_CASE("fold batch norm: the copy is frozen, eval-only, and not folded twice; a ViT is copied as it is") {
  auto model = create_model("resnet8", small_config());
  randomise_batch_norms(*model);
  auto folded = make_frozen_inference_copy(*model);
  CHECK_FALSE(folded->is_training());
  CHECK(folded->device() == model->device());
  for (auto& p : folded->parameters()) CHECK_FALSE(p.requires_grad());
  CHECK(folded->find_tensor("layer1.0.conv1.bias") != nullptr);  // the folded shift
  CHECK_THROWS_WITH_AS(make_frozen_inference_copy(*folded), doctest::Contains("already"), Error);
  Tensor x = random_tensor({1, 3, 16, 16}, 13, -1, 1, DType::f32);
  folded->train();
  CHECK_THROWS_WITH_AS(folded->forward(x), doctest::Contains("eval mode only"), Error);

  ModelConfig cfg;
  cfg.in_channels = 1;
  cfg.image_size = 28;
  cfg.depth = 2;
  for (std::string vit : {"vit_tiny", "deit_tiny_distilled"}) {
    INFO(vit);
    auto original = create_model(vit, cfg);
    original->eval();
    auto copy = make_frozen_inference_copy(*original);
    Tensor xi = random_tensor({2, 1, 28, 28}, 14, -1, 1, DType::f32);
    NoGradGuard ng;
    Taps want, got;
    CHECK(same_bits(copy->forward(xi, &got), original->forward(xi, &want)));
    REQUIRE(got.size() == want.size());
    for (auto& [name, t] : want) CHECK(same_bits(got.at(name), t));
  }
}

// ---------------------------------------------------------------- CUDA
TEST_SUITE("gpu") {
  TEST_CASE("cuda parity: conv2d_bias_act and a folded resnet8x4, CUDA against CPU") {
    RETORT_REQUIRE_GPU();
    // cuDNN's f32 runs FMA-only (no TF32) but sums in another order: 1e-5 of the scale.
    for (auto [stride, groups] : {std::pair<int64_t, int64_t>{1, 1}, {2, 2}})
      for (bool with_residual : {false, true})
        for (bool act : {false, true}) {
          INFO("stride " << stride << " groups " << groups << " residual " << with_residual << " relu " << act);
          const FusedCase c = fused_case(stride, groups);
          const FusedInputs cpu = fused_inputs(c, with_residual, DType::f32);
          const FusedInputs gpu = fused_inputs(c, with_residual, DType::f32, Device::cuda());
          Tensor want = conv2d_bias_act(cpu.x, cpu.w, cpu.bias, cpu.residual, act, c.opt);
          Tensor got = conv2d_bias_act(gpu.x, gpu.w, gpu.bias, gpu.residual, act, c.opt);
          CHECK(got.device() == Device::cuda());
          CHECK(scaled_error(got, want) < 1e-5);
          Tensor got64 = conv2d_bias_act(gpu.x.to(DType::f64), gpu.w.to(DType::f64), gpu.bias.to(DType::f64),
                                         with_residual ? gpu.residual.to(DType::f64) : Tensor(), act, c.opt);
          CHECK(scaled_error(got64, want.to(DType::f64)) < 1e-5);
          Tensor got16 = conv2d_bias_act(gpu.x.to(DType::bf16), gpu.w.to(DType::bf16), gpu.bias.to(DType::bf16),
                                         with_residual ? gpu.residual.to(DType::bf16) : Tensor(), act, c.opt);
          CHECK(scaled_error(got16.to(DType::f32), want) < 3e-2);  // bf16 inputs: 8 bits of mantissa
        }
    auto model = create_model("resnet8x4", small_config());
    randomise_batch_norms(*model);
    model->eval();
    auto folded_cpu = make_frozen_inference_copy(*model);
    model->to(Device::cuda());
    auto folded_gpu = make_frozen_inference_copy(*model);
    CHECK(folded_gpu->device() == Device::cuda());
    Tensor x = random_tensor({2, 3, 32, 32}, 15, -1, 1, DType::f32);
    NoGradGuard ng;
    Taps want, got;
    Tensor lc = folded_cpu->forward(x, &want), lg = folded_gpu->forward(x.to(Device::cuda()), &got);
    CHECK(scaled_error(lg, lc) < 1e-4);
    REQUIRE(got.size() == want.size());
    for (auto& [name, t] : want) {
      INFO("tap " << name);
      CHECK(scaled_error(got.at(name), t) < 1e-4);
    }
  }
}
