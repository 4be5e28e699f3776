// FitNets hint loss: hand-checked values with a hand-set regressor (RepDistiller's ConvReg and
// the pooled projection), gradient checks w.r.t. the student features and the regressor weights
// (ConvReg halving and doubling the map, projection, linear), cross-architecture pairings
// (ViT <-> ResNet), RepDistiller's own ConvReg values (tests/fixtures/losses/fitnet_*) and the
// load-time errors of impossible pairings through the loss registry.
#include "helpers.h"
#include "loss_fixture.h"
#include "loss_test_util.h"
#include "transfer/conv_reg.h"
#include "transfer/fitnet.h"

using namespace retort;
using models::TapInfo;
using retort::test::any_nonzero_grad;
using retort::test::build_term;
using retort::test::fmnist_config;
using retort::test::forward_step;
using retort::test::loss_recipe;

namespace {
Tensor identity_matrix(int64_t n) {
  std::vector<double> v(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) v[size_t(i * n + i)] = 1.0;
  return Tensor::from_vector(v, {n, n}, DType::f64);
}
}  // namespace

TEST_CASE("fitnet: value with an identity linear regressor (projection form, no ReLU)") {
  transfer::FitNetLoss loss("t", TapInfo{"pooled", {2, 3}}, TapInfo{"pooled", {2, 3}}, Device::cpu(), 0,
                            transfer::PoolMode::average, /*conv_reg=*/false);
  loss.regressor().to(DType::f64);
  auto lin = loss.regressor().at<nn::Linear>(0);
  lin->weight.copy_(identity_matrix(3));
  lin->bias.zero_();
  // f_s = [[1,2,3],[0,0,1]], f_t = [[1,1,1],[2,0,0]]: differences [0,1,2],[-2,0,1],
  // squares 0+1+4+4+0+1 = 10 over 6 elements -> 10/6
  Tensor fs = Tensor::from_vector({1, 2, 3, 0, 0, 1}, {2, 3}, DType::f64);
  Tensor ft = Tensor::from_vector({1, 1, 1, 2, 0, 0}, {2, 3}, DType::f64);
  retort::test::check_close(loss.compute(fs, ft), {10.0 / 6.0}, 1e-12);
  CHECK(loss.parameters().size() == 2);
  CHECK(loss.parameters()[0].first == "regressor.0.weight");
}

TEST_CASE("fitnet: RepDistiller's regressor ends in a ReLU (vectors: Linear + ReLU)") {
  transfer::FitNetLoss loss("t", TapInfo{"pooled", {2, 3}}, TapInfo{"pooled", {2, 3}}, Device::cpu(), 0);
  loss.regressor().to(DType::f64);
  auto lin = loss.regressor().at<nn::Linear>(0);
  lin->weight.copy_(identity_matrix(3));
  lin->bias.zero_();
  // f_s = [[1,-2,3],[0,0,-1]] -> ReLU -> [[1,0,3],[0,0,0]]; f_t = [[1,1,1],[2,0,0]]:
  // differences [0,-1,2],[-2,0,0], squares 0+1+4+4+0+0 = 9 over 6 elements -> 1.5
  Tensor fs = Tensor::from_vector({1, -2, 3, 0, 0, -1}, {2, 3}, DType::f64);
  Tensor ft = Tensor::from_vector({1, 1, 1, 2, 0, 0}, {2, 3}, DType::f64);
  retort::test::check_close(loss.compute(fs, ft), {1.5}, 1e-12);
}

TEST_CASE("fitnet: ConvReg of equal-size maps is a 1x1 conv with bias, BN and ReLU (eval mode)") {
  transfer::FitNetLoss loss("t", TapInfo{"stage2", {2, 3, 2, 2}}, TapInfo{"stage2", {2, 3, 2, 2}}, Device::cpu(), 0);
  loss.regressor().to(DType::f64);
  loss.train(false);
  auto reg = loss.regressor().at<transfer::ConvReg>(0);
  CHECK(reg->conv->weight.shape() == Shape{3, 3, 1, 1});
  reg->conv->weight.copy_(identity_matrix(3).reshape({3, 3, 1, 1}));
  reg->conv->bias.fill_(0.25);
  reg->bn->running_mean.fill_(0.25);                // cancels the bias
  reg->bn->running_var.fill_(1.0 - reg->bn->eps);  // x / sqrt(var + eps) = x
  Tensor fs = retort::test::random_tensor({2, 3, 2, 2}, 21);
  Tensor ft = retort::test::random_tensor({2, 3, 2, 2}, 22);
  auto a = fs.to_vector(), b = ft.to_vector();
  double expected = 0;
  for (size_t i = 0; i < a.size(); ++i) expected += (std::max(a[i], 0.0) - b[i]) * (std::max(a[i], 0.0) - b[i]);
  expected /= double(a.size());
  retort::test::check_close(loss.compute(fs, ft), {expected}, 1e-10);
  std::vector<std::string> names;
  for (auto& [n, t] : loss.parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"regressor.0.conv.weight", "regressor.0.conv.bias", "regressor.0.bn.weight",
                                          "regressor.0.bn.bias"});
}

TEST_CASE("fitnet: value with an identity 1x1 conv + BN projection (eval mode)") {
  transfer::FitNetLoss loss("t", TapInfo{"stage2", {2, 3, 2, 2}}, TapInfo{"stage2", {2, 3, 2, 2}}, Device::cpu(), 0,
                            transfer::PoolMode::average, /*conv_reg=*/false);
  loss.regressor().to(DType::f64);
  loss.train(false);
  auto proj = loss.regressor().at<transfer::ChannelProjection>(0);
  proj->conv->weight.copy_(identity_matrix(3).reshape({3, 3, 1, 1}));
  proj->bn->running_mean.zero_();
  proj->bn->running_var.fill_(1.0 - proj->bn->eps);  // x / sqrt(var + eps) = x
  CHECK(loss.buffers().size() == 3);                  // running_mean, running_var, num_batches_tracked
  Tensor fs = retort::test::random_tensor({2, 3, 2, 2}, 21);
  Tensor ft = retort::test::random_tensor({2, 3, 2, 2}, 22);
  auto a = fs.to_vector(), b = ft.to_vector();
  double expected = 0;
  for (size_t i = 0; i < a.size(); ++i) expected += (a[i] - b[i]) * (a[i] - b[i]);
  expected /= double(a.size());
  retort::test::check_close(loss.compute(fs, ft), {expected}, 1e-10);
  retort::test::check_close(loss.compute(ft, ft), {0.0}, 1e-12);
}

TEST_CASE("fitnet: gradient checks w.r.t. student features and regressor weights") {
  // maps: student [3, 3, 4, 4] -> teacher [3, 2, 2, 2] (average pool + 1x1 conv + BN, training mode)
  transfer::FitNetLoss loss("t", TapInfo{"stage1", {3, 3, 4, 4}}, TapInfo{"stage2", {3, 2, 2, 2}}, Device::cpu(), 7,
                            transfer::PoolMode::average, /*conv_reg=*/false);
  loss.regressor().to(DType::f64);
  auto proj = loss.regressor().at<transfer::ChannelProjection>(1);
  Tensor ft = retort::test::random_tensor({3, 2, 2, 2}, 31);
  retort::test::gradcheck(
      [&](const std::vector<Tensor>& in) {
        proj->conv->weight = in[1];
        proj->bn->weight = in[2];
        return loss.compute(in[0], ft);
      },
      {retort::test::random_tensor({3, 3, 4, 4}, 32), retort::test::random_tensor({2, 3, 1, 1}, 33, 0.5, 1.5),
       retort::test::random_tensor({2}, 34, 0.5, 1.5)});
  // vectors: student [4, 3] -> teacher [4, 5] through a linear map
  transfer::FitNetLoss vec("t", TapInfo{"pooled", {4, 3}}, TapInfo{"pooled", {4, 5}}, Device::cpu(), 8,
                           transfer::PoolMode::average, /*conv_reg=*/false);
  vec.regressor().to(DType::f64);
  auto lin = vec.regressor().at<nn::Linear>(0);
  Tensor vt = retort::test::random_tensor({4, 5}, 35);
  retort::test::gradcheck(
      [&](const std::vector<Tensor>& in) {
        lin->weight = in[1];
        lin->bias = in[2];
        return vec.compute(in[0], vt);
      },
      {retort::test::random_tensor({4, 3}, 36), retort::test::random_tensor({5, 3}, 37),
       retort::test::random_tensor({5}, 38)});
  // the teacher is a constant
  Tensor fs = retort::test::random_tensor({4, 3}, 39).requires_grad_();
  Tensor tt = vt.detach().clone().requires_grad_();
  vec.compute(fs, tt).backward();
  CHECK(fs.grad().defined());
  CHECK_FALSE(tt.grad().defined());
}

TEST_CASE("fitnet: gradient checks through ConvReg, halving (3x3 stride 2) and doubling (transposed 4x4) the map") {
  struct Case {
    Shape s, t, weight;
    const char* name;
  };
  for (const Case& c : {Case{{3, 2, 4, 4}, {3, 3, 2, 2}, {3, 2, 3, 3}, "halve"},
                        Case{{3, 2, 2, 2}, {3, 3, 4, 4}, {2, 3, 4, 4}, "double"},
                        Case{{3, 2, 4, 4}, {3, 3, 3, 3}, {3, 2, 2, 2}, "valid 2x2"}}) {
    INFO(c.name);
    transfer::FitNetLoss loss("t", TapInfo{"a", c.s}, TapInfo{"b", c.t}, Device::cpu(), 9);
    loss.regressor().to(DType::f64);
    auto reg = loss.regressor().at<transfer::ConvReg>(0);
    REQUIRE(reg->conv->weight.shape() == c.weight);
    Tensor ft = retort::test::random_tensor(c.t, 51);
    retort::test::gradcheck(
        [&](const std::vector<Tensor>& in) {
          reg->conv->weight = in[1];
          reg->conv->bias = in[2];
          return loss.compute(in[0], ft);
        },
        {retort::test::random_tensor(c.s, 52), retort::test::random_tensor(c.weight, 53),
         retort::test::random_tensor({c.t[1]}, 54)});
  }
  // A student map smaller than the teacher's but not half of it: RepDistiller has no ConvReg.
  CHECK_THROWS_WITH_AS(transfer::FitNetLoss("t", TapInfo{"stage3", {2, 4, 3, 3}}, TapInfo{"stage1", {2, 4, 8, 8}},
                                            Device::cpu(), 1),
                       doctest::Contains("the student's 3x3 map is smaller than the teacher's 8x8 but not exactly half "
                                         "of it, which RepDistiller's ConvReg cannot resample; pool the larger map "
                                         "instead (regressor = \"projection\")"),
                       Error);
}

TEST_CASE("fitnet: ViT student tokens to a ResNet teacher stage, and ResNet to ViT") {
  const Shape input{1, 1, 28, 28};
  auto vit = models::create_model("vit_tiny", fmnist_config(1));
  auto resnet = models::create_model("resnet8", fmnist_config(2));
  Tensor x = retort::test::random_tensor({2, 1, 28, 28}, 41, -1, 1, DType::f32);

  // ViT tokens.1 [B, 50, 192] -> 7x7 grid, doubled to 14x14 by ConvReg's transposed conv; resnet8 stage2 [B, 32, 14, 14]
  auto v2r = transfer::make_fitnet_loss(*vit, *resnet, "teacher", "tokens.1", "stage2", input, Device::cpu(), 0);
  CHECK(v2r->adapter().matched == Shape{1, 32, 14, 14});
  const auto v2r_step = forward_step(*vit, *resnet, x);
  Tensor l = v2r->compute(v2r_step.student.at("tokens.1"), v2r_step.teacher().at("stage2"));
  CHECK(std::isfinite(l.item()));
  CHECK(l.item() > 0);
  l.backward();
  CHECK(any_nonzero_grad(*vit));
  for (auto& [n, p] : v2r->parameters()) CHECK_MESSAGE(p.grad().defined(), n);

  // resnet8 stage2 [B, 32, 14, 14] -> halved to 7x7 by ConvReg's strided conv, 192 channels; ViT tokens.0 as a 7x7 grid
  auto r2v = transfer::make_fitnet_loss(*resnet, *vit, "teacher", "stage2", "tokens.0", input, Device::cpu(), 0);
  CHECK(r2v->adapter().matched == Shape{1, 192, 7, 7});
  const auto r2v_step = forward_step(*resnet, *vit, x);
  Tensor l2 = r2v->compute(r2v_step.student.at("stage2"), r2v_step.teacher().at("tokens.0"));
  CHECK(std::isfinite(l2.item()));
  resnet->zero_grad();
  l2.backward();
  CHECK(any_nonzero_grad(*resnet));
}

TEST_CASE("fitnet: registry builds the loss and rejects an impossible pairing at construction") {
  auto teacher = models::create_model("wrn_16_2", fmnist_config(3));
  auto student = models::create_model("resnet8", fmnist_config(4));
  auto build = [&](const Recipe& r) { return build_term(r, student, {{"t", teacher}}); };
  const Recipe ok = loss_recipe("{ name = \"fitnet\", teacher = \"t\", weight = 100 }", "f.toml");
  CHECK(loss_args(ok, ok.stages[0].losses[0]).string("student_tap") == "stage2");
  CHECK(loss_args(ok, ok.stages[0].losses[0]).string("teacher_tap") == "stage2");
  auto loss = build(ok);
  CHECK(loss->student_taps() == std::vector<std::string>{"stage2"});
  CHECK(loss->teacher_taps() == std::vector<std::string>{"stage2"});
  CHECK(loss->teachers() == std::vector<std::string>{"t"});
  CHECK(loss->parameters().size() == 4);  // ConvReg: conv weight and bias, BN weight and bias

  const Recipe bad = loss_recipe(
      "{ name = \"fitnet\", teacher = \"t\", student_tap = \"pooled\", teacher_tap = \"stage2\" }", "f.toml");
  CHECK_THROWS_WITH_AS(build(bad),
                       doctest::Contains("cannot pair student tap 'pooled' [1, 64] with teacher tap 'stage2' "
                                         "[1, 64, 14, 14]: one is a spatial map/token sequence and the other a vector"),
                       Error);
  CHECK_THROWS_WITH_AS(build(bad), doctest::Contains("f.toml:"), Error);
  const Recipe missing = loss_recipe("{ name = \"fitnet\", teacher = \"t\", student_tap = \"stage7\" }", "f.toml");
  CHECK_THROWS_WITH_AS(build(missing), doctest::Contains("the student (resnet-cifar) has no tap 'stage7'; its taps are: stem"),
                       Error);
}

TEST_CASE("fitnet: RepDistiller's ConvReg + HintLoss values and gradients (halve, double, same size)") {
  for (const char* name : {"fitnet_convreg_halve", "fitnet_convreg_double", "fitnet_convreg_same"}) {
    const auto f = retort::test::load_loss_fixture(name);
    for (DType dtype : {DType::f64, DType::f32}) {
      std::map<std::string, Tensor> in;
      for (const char* key : {"student", "teacher", "conv.weight", "conv.bias", "bn.weight", "bn.bias"})
        in[key] = f.input(key, dtype);
      transfer::FitNetLoss loss("t", TapInfo{"a", in["student"].shape()}, TapInfo{"b", in["teacher"].shape()},
                                Device::cpu(), 0);
      loss.regressor().to(dtype);
      auto reg = loss.regressor().at<transfer::ConvReg>(0);
      reg->conv->weight = in["conv.weight"];
      reg->conv->bias = in["conv.bias"];
      reg->bn->weight = in["bn.weight"];
      reg->bn->bias = in["bn.bias"];
      retort::test::check_loss_fixture(f, loss.compute(in["student"], in["teacher"]), in, dtype);
    }
  }
}
