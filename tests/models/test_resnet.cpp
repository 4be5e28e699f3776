// ResNets (CIFAR, ImageNet) and WRN: parameter names, parameter counts against formulas,
// output and tap shapes, gradchecks of a tiny ResNet, BN train/eval switch.
#include <set>
#include "engine/nn/nn.h"
#include "helpers.h"
#include "models/registry.h"
#include "models/resnet.h"
#include "models/wrn.h"
#include "nn/module_gradcheck.h"

using namespace retort;
using namespace retort::models;
using retort::test::gradcheck;
using retort::test::random_tensor;

namespace {
ModelConfig cfg_of(int64_t in_ch, int64_t classes, int64_t image = 32) {
  ModelConfig c;
  c.in_channels = in_ch;
  c.num_classes = classes;
  c.image_size = image;
  return c;
}

std::set<std::string> state_names(const nn::Module& m) {
  std::set<std::string> s;
  for (auto& [n, t] : m.state_dict()) s.insert(n);
  return s;
}

// Parameter counts by formula, independent of the model code.
int64_t bn(int64_t c) { return 2 * c; }
int64_t conv(int64_t in, int64_t out, int64_t k) { return in * out * k * k; }
int64_t basic(int64_t in, int64_t out, int64_t stride) {
  int64_t n = conv(in, out, 3) + bn(out) + conv(out, out, 3) + bn(out);
  if (stride != 1 || in != out) n += conv(in, out, 1) + bn(out);
  return n;
}
int64_t bottleneck(int64_t in, int64_t planes, int64_t stride) {
  int64_t out = 4 * planes;
  int64_t n = conv(in, planes, 1) + bn(planes) + conv(planes, planes, 3) + bn(planes) + conv(planes, out, 1) + bn(out);
  if (stride != 1 || in != out) n += conv(in, out, 1) + bn(out);
  return n;
}
int64_t imagenet_count(bool use_bottleneck, std::vector<int64_t> blocks, int64_t classes) {
  int64_t n = conv(3, 64, 7) + bn(64), in = 64;
  std::vector<int64_t> widths{64, 128, 256, 512};
  for (size_t s = 0; s < 4; ++s)
    for (int64_t b = 0; b < blocks[s]; ++b) {
      int64_t stride = (b == 0 && s > 0) ? 2 : 1;
      n += use_bottleneck ? bottleneck(in, widths[s], stride) : basic(in, widths[s], stride);
      in = use_bottleneck ? 4 * widths[s] : widths[s];
    }
  return n + in * classes + classes;
}
}  // namespace

TEST_CASE("resnet: torchvision names and parameter counts for resnet18/34/50") {
  auto r18 = create_model("resnet18", cfg_of(3, 1000, 224));
  auto names = state_names(*r18);
  for (auto n : {"conv1.weight", "bn1.weight", "bn1.running_mean", "bn1.num_batches_tracked", "layer1.0.conv1.weight",
                 "layer1.1.bn2.running_var", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_mean",
                 "layer4.1.conv2.weight", "fc.weight", "fc.bias"})
    CHECK_MESSAGE(names.count(n), n);
  CHECK_FALSE(names.count("layer1.0.downsample.0.weight"));  // 64 -> 64, stride 1: identity
  CHECK_FALSE(names.count("conv1.bias"));
  CHECK(r18->find_tensor("conv1.weight")->shape() == Shape{64, 3, 7, 7});
  // 9408 + 128 + 147968 + 525568 + 2099712 + 8393728 + 513000 (stem, layer1..4, fc)
  CHECK(imagenet_count(false, {2, 2, 2, 2}, 1000) == 11689512);
  CHECK(r18->num_parameters() == 11689512);
  // The stated torchvision counts for resnet34 / resnet50 (formula above, independent code).
  CHECK(imagenet_count(false, {3, 4, 6, 3}, 1000) == 21797672);
  CHECK(imagenet_count(true, {3, 4, 6, 3}, 1000) == 25557032);
  nn::SkipInitGuard skip;  // counts only
  CHECK(create_model("resnet34", cfg_of(3, 1000, 224))->num_parameters() == 21797672);
  auto r50 = create_model("resnet50", cfg_of(3, 1000, 224));
  CHECK(r50->num_parameters() == 25557032);
  auto n50 = state_names(*r50);
  for (auto n : {"layer1.0.conv3.weight", "layer1.0.bn3.weight", "layer1.0.downsample.0.weight", "layer3.5.conv2.weight"})
    CHECK_MESSAGE(n50.count(n), n);
  // Bottleneck puts the stride on the 3x3 conv (torchvision v1.5).
  auto conv2 = dynamic_cast<nn::Conv2d*>(r50->child("layer2")->child("0")->child("conv2"));
  REQUIRE(conv2 != nullptr);
  CHECK(conv2->spec.stride == 2);
}

TEST_CASE("resnet: RepDistiller CIFAR counts (resnet20, resnet8x4, resnet32x4, wrn_40_2)") {
  nn::SkipInitGuard skip;
  // resnet20, 100 classes: conv1 432 + bn1 32; layer1 3 x (2*2304 + 64) = 14016;
  // layer2 (4608 + 9216 + 128 + 512 + 64) + 2 x (2*9216 + 128) = 51648;
  // layer3 (18432 + 36864 + 256 + 2048 + 128) + 2 x (2*36864 + 256) = 205696; fc 6500.
  auto cifar_count = [](int64_t depth, std::vector<int64_t> w, int64_t classes) {
    int64_t n = conv(3, w[0], 3) + bn(w[0]), in = w[0], per = (depth - 2) / 6;
    for (int s = 0; s < 3; ++s)
      for (int64_t b = 0; b < per; ++b) {
        n += basic(in, w[s + 1], (b == 0 && s > 0) ? 2 : 1);
        in = w[s + 1];
      }
    return n + in * classes + classes;
  };
  CHECK(432 + 32 + 14016 + 51648 + 205696 + 6500 == 278324);
  CHECK(cifar_count(20, {16, 16, 32, 64}, 100) == 278324);
  CHECK(create_model("resnet20", cfg_of(3, 100))->num_parameters() == 278324);
  for (auto d : {8, 14, 32, 44, 56, 110})
    CHECK(create_model("resnet" + std::to_string(d), cfg_of(3, 100))->num_parameters() ==
          cifar_count(d, {16, 16, 32, 64}, 100));
  CHECK(create_model("resnet8x4", cfg_of(3, 100))->num_parameters() == cifar_count(8, {32, 64, 128, 256}, 100));
  CHECK(create_model("resnet32x4", cfg_of(3, 100))->num_parameters() == cifar_count(32, {32, 64, 128, 256}, 100));
  // resnet8x4 has a projection shortcut already in layer1 (32 -> 64 at stride 1).
  auto r8x4 = create_model("resnet8x4", cfg_of(3, 100));
  CHECK(r8x4->find_tensor("layer1.0.downsample.0.weight")->shape() == Shape{64, 32, 1, 1});

  // wrn_40_2 (widths 16, 32, 64, 128; 6 blocks per stage), 100 classes:
  // stage1 14432 + 5*18560, stage2 57536 + 5*73984, stage3 229760 + 5*295424,
  // conv1 432, final bn 256, fc 12900  => 2,255,156.
  auto wide = [](int64_t in, int64_t out) { return bn(in) + conv(in, out, 3) + bn(out) + conv(out, out, 3) + (in != out ? conv(in, out, 1) : 0); };
  CHECK(wide(16, 32) == 14432);
  CHECK(wide(64, 128) + 5 * wide(128, 128) == 229760 + 5 * 295424);
  CHECK(432 + 14432 + 5 * 18560 + 57536 + 5 * 73984 + 229760 + 5 * 295424 + 256 + 12900 == 2255156);
  auto w402 = create_model("wrn_40_2", cfg_of(3, 100));
  CHECK(w402->num_parameters() == 2255156);
  auto wn = state_names(*w402);
  for (auto n : {"conv1.weight", "block1.layer.0.bn1.weight", "block1.layer.0.convShortcut.weight",
                 "block2.layer.5.conv2.weight", "bn1.running_var", "fc.bias"})
    CHECK_MESSAGE(wn.count(n), n);
  CHECK_FALSE(wn.count("block1.layer.1.convShortcut.weight"));
  // wrn_16_1: block1 is 16 -> 16, an identity shortcut.
  CHECK_FALSE(state_names(*create_model("wrn_16_1", cfg_of(3, 100))).count("block1.layer.0.convShortcut.weight"));
}

TEST_CASE("resnet: forward output and tap shapes match tap_info for each family") {
  struct Case {
    const char* name;
    ModelConfig cfg;
    Shape input;
  };
  std::vector<Case> cases{{"resnet20", cfg_of(1, 10, 28), {2, 1, 28, 28}},
                          {"resnet8x4", cfg_of(3, 7, 16), {2, 3, 16, 16}},
                          {"wrn_16_2", cfg_of(3, 5, 16), {2, 3, 16, 16}},
                          {"resnet18", cfg_of(1, 10, 28), {2, 1, 28, 28}},
                          {"resnet50", cfg_of(3, 4, 32), {2, 3, 32, 32}}};
  for (auto& c : cases) {
    INFO(std::string(c.name));
    auto model = create_model(c.name, c.cfg);
    Taps taps;
    Tensor logits = model->forward(random_tensor(c.input, 5, -1, 1, DType::f32), &taps);
    CHECK(logits.shape() == Shape{c.input[0], c.cfg.num_classes});
    auto info = model->tap_info(c.input);
    CHECK(taps.size() == info.size());
    for (auto& t : info) {
      INFO(t.name);
      REQUIRE(taps.count(t.name));
      CHECK(taps[t.name].shape() == t.shape);
    }
    CHECK(taps["logits"].to_vector() == logits.to_vector());
  }
  // Spot-check the documented shapes: resnet20 on 28x28 -> 28, 14, 7; resnet18 -> 7, 7, 4, 2, 1.
  auto r20 = create_model("resnet20", cfg_of(1, 10, 28))->tap_info({2, 1, 28, 28});
  CHECK(r20[0].shape == Shape{2, 16, 28, 28});
  CHECK(r20[5].name == "stage3");
  CHECK(r20[5].shape == Shape{2, 64, 7, 7});
  auto r18 = create_model("resnet18", cfg_of(1, 10, 28))->tap_info({2, 1, 28, 28});
  CHECK(r18[0].shape == Shape{2, 64, 7, 7});
  CHECK(r18[7].shape == Shape{2, 512, 1, 1});
  CHECK(r18[9].shape == Shape{2, 512});
}

TEST_CASE("resnet: stage taps are relu(preact) and pooled is the spatial mean of the last stage") {
  auto model = create_model("resnet8", cfg_of(1, 3, 12));
  Taps taps;
  model->forward(random_tensor({2, 1, 12, 12}, 6, -1, 1, DType::f32), &taps);
  for (auto s : {"stage1", "stage2", "stage3"}) {
    auto pre = taps[std::string(s) + ".preact"].to_vector(), post = taps[s].to_vector();
    bool some_negative = false;
    for (size_t i = 0; i < pre.size(); ++i) {
      CHECK(post[i] == std::max(pre[i], 0.0));
      some_negative |= pre[i] < 0;
    }
    CHECK(some_negative);
  }
  test::check_close(taps["pooled"], mean(taps["stage3"], {2, 3}).to_vector(), 1e-6);
}

TEST_CASE("resnet: gradcheck of a 1-block width-2 ResNet in f64 (eval and train mode)") {
  ResNetSpec spec{"tiny", false, false, 2, {2}, {1}};
  ResNet model(spec, cfg_of(1, 3, 5));
  model.to(DType::f64);
  // Non-trivial running statistics so eval mode is not the identity.
  for (auto& [name, t] : model.named_buffers())
    if (name.find("running_mean") != std::string::npos) t.copy_(random_tensor(t.shape(), 21, -0.5, 0.5));
    else if (name.find("running_var") != std::string::npos) t.copy_(random_tensor(t.shape(), 22, 0.5, 1.5));
  model.eval();
  Tensor x = random_tensor({1, 1, 5, 5}, 23);
  gradcheck([&](const std::vector<Tensor>& in) { return model(in[0]); }, {x});
  test::module_param_gradcheck(model, [&] { return model(x); });
  model.train();
  Tensor xb = random_tensor({2, 1, 5, 5}, 24);
  gradcheck([&](const std::vector<Tensor>& in) { return model(in[0]); }, {xb});
  test::module_param_gradcheck(model, [&] { return model(xb); });
}

TEST_CASE("resnet: gradcheck of a tiny WRN (projection and identity blocks) in f64, eval mode") {
  WideResNet model("wrn_10_1", 10, 1, cfg_of(1, 2, 4));
  model.to(DType::f64);
  for (auto& [name, t] : model.named_buffers())
    if (name.find("running_var") != std::string::npos) t.copy_(random_tensor(t.shape(), 31, 0.5, 1.5));
  model.eval();
  gradcheck([&](const std::vector<Tensor>& in) { return model(in[0]); }, {random_tensor({1, 1, 4, 4}, 32)});
}

TEST_CASE("resnet: train/eval switch changes BatchNorm behaviour") {
  auto model = create_model("resnet8", cfg_of(1, 4, 8));
  Tensor x = random_tensor({4, 1, 8, 8}, 40, -1, 1, DType::f32);
  auto* rm = model->find_tensor("bn1.running_mean");
  auto before = rm->to_vector();
  model->eval();
  Tensor e1 = model->forward(x);
  CHECK(rm->to_vector() == before);  // eval leaves running stats alone
  model->train();
  Tensor t1 = model->forward(x);
  CHECK(rm->to_vector() != before);  // train updates them
  CHECK(model->find_tensor("bn1.num_batches_tracked")->item() == 1);
  CHECK(test::max_rel_error(t1, e1) > 1e-4);  // batch statistics differ from running ones
  // Eval is deterministic and per-sample: the first sample alone gives the same logits.
  model->eval();
  Tensor e_all = model->forward(x), e_one = model->forward(x.slice(0, 0, 1));
  CHECK(test::max_rel_error(e_one, e_all.slice(0, 0, 1)) < 1e-5);
}

TEST_CASE("resnet: state dict round trip reproduces the outputs; same seed same weights") {
  ModelConfig a = cfg_of(1, 5, 8), b = a;
  b.seed = 99;
  auto m1 = create_model("resnet14", a), m2 = create_model("resnet14", b), m3 = create_model("resnet14", a);
  CHECK(m1->find_tensor("layer2.1.conv1.weight")->to_vector() == m3->find_tensor("layer2.1.conv1.weight")->to_vector());
  CHECK(m1->find_tensor("layer2.1.conv1.weight")->to_vector() != m2->find_tensor("layer2.1.conv1.weight")->to_vector());
  Tensor x = random_tensor({3, 1, 8, 8}, 50, -1, 1, DType::f32);
  m1->forward(x);  // one training step changes the running statistics
  m1->eval();
  m2->eval();
  m2->load_state_dict(m1->state_dict());
  CHECK(m2->forward(x).to_vector() == m1->forward(x).to_vector());
  CHECK(m2->find_tensor("bn1.num_batches_tracked")->item() == 1);
}

TEST_CASE("wrn: taps follow RepDistiller (stage = block output, preact = the next BN of it)") {
  auto model = create_model("wrn_16_1", cfg_of(1, 3, 8));
  auto& wrn = dynamic_cast<WideResNet&>(*model);
  model->eval();  // eval: applying a BN again gives the same values
  Taps taps;
  Tensor x = random_tensor({2, 1, 8, 8}, 60, -1, 1, DType::f32);
  model->forward(x, &taps);
  auto first_bn = [&](int stage) { return wrn.blocks[size_t(stage)]->layer->at<WideBasicBlock>(0)->bn1; };
  test::check_close(taps["stage1"], wrn.blocks[0]->forward(wrn.conv1->forward(x)).to_vector(), 1e-6);
  test::check_close(taps["stage1.preact"], first_bn(1)->forward(taps["stage1"]).to_vector(), 1e-6);
  test::check_close(taps["stage2.preact"], first_bn(2)->forward(taps["stage2"]).to_vector(), 1e-6);
  test::check_close(taps["stage3.preact"], wrn.bn1->forward(taps["stage3"]).to_vector(), 1e-6);
  test::check_close(taps["pooled"], mean(relu(taps["stage3.preact"]), {2, 3}).to_vector(), 1e-6);
  // In training mode each BN still runs once per forward.
  model->train();
  model->forward(x, &taps);
  CHECK(model->find_tensor("block2.layer.0.bn1.num_batches_tracked")->item() == 1);
  CHECK(model->find_tensor("bn1.num_batches_tracked")->item() == 1);
}
