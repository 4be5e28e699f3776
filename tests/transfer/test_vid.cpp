// VID loss: hand-computed NLL, softplus variance and pool-to-match values; f64 gradient checks w.r.t.
// the student maps, the regressor weights and the log-variances; the reference fixtures
// (RepDistiller's VIDLoss with pooling, torchdistill's VIDLoss + Regressor4VID) in f64 and f32;
// ViT <-> ResNet through the registry; the registry's defaults and errors.
#include <cmath>
#include "helpers.h"
#include "transfer/loss_fixture.h"
#include "transfer/loss_test_util.h"
#include "transfer/vid.h"

using namespace retort;
using models::TapInfo;
using retort::test::build_term;
using retort::test::check_trains_student;
using retort::test::fmnist_config;

namespace {

constexpr int64_t kVitDepth = 3;  // ViT: three blocks, tokens.0..tokens.2 (7x7 grid at the default patch 4)

// A step of three examples; VID's loss is a negative log-likelihood, so it need not be positive.
const retort::test::StepCheck kStep{.batch = 3, .seed = 90, .positive = false, .has_params = true};

// 1x1 conv weight [n, n, 1, 1] = identity.
Tensor identity_conv(int64_t n) {
  std::vector<double> v(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) v[size_t(i * n + i)] = 1.0;
  return Tensor::from_vector(v, {n, n, 1, 1}, DType::f64);
}

// The hand example below: target T [2, 2, 2, 2] (b, c, row-major 2x2).
const std::vector<double> kTarget{1, -1, 2, 0, /*b0 c1*/ 2, 2, 0, 4, /*b1 c0*/ 0, 0, 1, 1, /*b1 c1*/ 2, 0, 0, 0};
// mean over 16 elements of 0.5 * (T^2 / var_c + log var_c) with var = (1, 4):
//   sum T^2 over c0 = (1+1+4+0) + (0+0+1+1) = 8 -> 8 / 1 = 8; c1 = (4+4+0+16) + (4+0+0+0) = 28 -> 28 / 4 = 7
//   sum log var = 8 * log 1 + 8 * log 4;  L = 0.5 * (15 + 8 log 4) / 16 = 15/32 + log(4)/4
const double kHandValue = 15.0 / 32.0 + std::log(4.0) / 4.0;

Shape param_shape(const transfer::Loss& loss, const std::string& name) {
  for (const auto& [n, p] : loss.parameters())
    if (n == name) return p.shape();
  FAIL("the loss has no parameter " << name);
  return {};
}

}  // namespace

TEST_CASE("vid: hand-computed NLL, softplus variance and initial value") {
  Tensor target = Tensor::from_vector(kTarget, {2, 2, 2, 2}, DType::f64);
  Tensor zeros = Tensor::zeros({2, 2, 2, 2}, DType::f64);
  Tensor var = Tensor::from_vector({1.0, 4.0}, {2}, DType::f64);
  retort::test::check_close(transfer::vid_nll(zeros, target, var), {kHandValue}, 1e-12);
  // the prediction's sign does not matter, only (mu - t)^2: mu = 2T gives the same value
  retort::test::check_close(transfer::vid_nll(mul(target, 2.0), target, var), {kHandValue}, 1e-12);

  // softplus(0) = log 2, softplus(log(e - 1)) = log(e) = 1, softplus(log(e^4 - 1)) = 4; plus eps
  Tensor a = Tensor::from_vector({0.0, std::log(std::exp(1.0) - 1.0), std::log(std::exp(4.0) - 1.0)}, {3}, DType::f64);
  retort::test::check_close(transfer::vid_variance(a, 1e-5), {std::log(2.0) + 1e-5, 1.0 + 1e-5, 4.0 + 1e-5}, 1e-12);
  // beyond the threshold (20) softplus(a) = a to < 3e-9 relative: a = 30 -> 30 + eps
  retort::test::check_close(transfer::vid_variance(Tensor::from_vector({30.0}, {1}, DType::f64), 1e-5), {30.00001},
                            1e-12);
  // RD's init: alpha_0 = log(exp(5 - 1e-5) - 1), so sigma^2 starts at exactly 5
  const double a0 = transfer::vid_initial_log_scale(5.0, 1e-5);
  CHECK(a0 == doctest::Approx(std::log(std::exp(5.0 - 1e-5) - 1.0)).epsilon(1e-14));
  retort::test::check_close(transfer::vid_variance(Tensor::from_vector({a0}, {1}, DType::f64), 1e-5), {5.0}, 1e-12);
  CHECK_THROWS_WITH_AS(transfer::vid_initial_log_scale(1e-6, 1e-5), doctest::Contains("must exceed eps"), Error);
  CHECK_THROWS_WITH_AS(transfer::vid_nll(zeros, target, Tensor::ones({3}, DType::f64)),
                       doctest::Contains("one entry per channel"), Error);
}

TEST_CASE("vid: one stage with identity regressor, pooling the student or the teacher") {
  // variances 1 and 4 from alpha = log(e^v - 1) with eps = 0; identity 1x1 convs, so on a
  // non-negative map (the ReLUs change nothing) mu = the pooled student map.
  Tensor alpha = Tensor::from_vector({std::log(std::exp(1.0) - 1.0), std::log(std::exp(4.0) - 1.0)}, {2}, DType::f64);
  const std::vector<Tensor> eye{identity_conv(2), identity_conv(2), identity_conv(2)};
  // student 4x4 (B=2, C=2): every 2x2 block is [[0.5, 1.5], [1.5, 0.5]] -> average-pooled to all ones.
  std::vector<double> sv(64);
  for (int64_t i = 0; i < 64; ++i) sv[size_t(i)] = ((i % 4) + (i / 4) % 4) % 2 == 0 ? 0.5 : 1.5;
  Tensor student = Tensor::from_vector(sv, {2, 2, 4, 4}, DType::f64);
  // teacher T + 1: then mu - t = 1 - (T + 1) = -T and the value is the hand value above
  Tensor teacher = add(Tensor::from_vector(kTarget, {2, 2, 2, 2}, DType::f64), 1.0);
  retort::test::check_close(transfer::vid_stage_loss(student, teacher, eye, alpha, 0.0), {kHandValue}, 1e-12);
  // the other way round: a 2x2 student of ones, the teacher 4x4 whose 2x2 blocks average to T + 1
  // (each block [[v - 0.5, v + 0.5], [v + 0.5, v - 0.5]])
  std::vector<double> tv(64);
  for (int64_t i = 0; i < 64; ++i) {
    const int64_t b = i / 32, c = (i / 16) % 2, r = (i / 4) % 4, q = i % 4;
    const double v = kTarget[size_t(b * 8 + c * 4 + (r / 2) * 2 + q / 2)] + 1.0;
    tv[size_t(i)] = (r + q) % 2 == 0 ? v - 0.5 : v + 0.5;
  }
  Tensor big_teacher = Tensor::from_vector(tv, {2, 2, 4, 4}, DType::f64);
  Tensor ones = Tensor::ones({2, 2, 2, 2}, DType::f64);
  retort::test::check_close(transfer::vid_stage_loss(ones, big_teacher, eye, alpha, 0.0), {kHandValue}, 1e-12);
}

TEST_CASE("vid: gradient checks w.r.t. student maps, regressor weights and log-variances") {
  for (bool student_larger : {true, false}) {
    INFO("student larger: " << student_larger);
    Tensor t = retort::test::random_tensor(student_larger ? Shape{2, 2, 2, 2} : Shape{2, 2, 4, 4}, 11, 0.0, 2.0);
    retort::test::gradcheck(
        [&](const std::vector<Tensor>& in) {
          return transfer::vid_stage_loss(in[0], t, {in[1], in[2], in[3]}, in[4], 1e-5);
        },
        {retort::test::random_tensor(student_larger ? Shape{2, 3, 4, 4} : Shape{2, 3, 2, 2}, 12, 0.0, 2.0),
         retort::test::random_tensor({2, 3, 1, 1}, 13), retort::test::random_tensor({2, 2, 1, 1}, 14),
         retort::test::random_tensor({2, 2, 1, 1}, 15), retort::test::random_tensor({2}, 16, -1.0, 3.0)});
  }
  // the loss module over three stages (regressor weights are its own): w.r.t. the student maps
  transfer::VidLoss loss("t", {TapInfo{"a", {2, 3, 4, 4}}, TapInfo{"b", {2, 2, 2, 2}}, TapInfo{"c", {2, 2, 2, 2}}},
                         {TapInfo{"a", {2, 2, 2, 2}}, TapInfo{"b", {2, 3, 4, 4}}, TapInfo{"c", {2, 4, 2, 2}}}, {},
                         Device::cpu(), 3);
  loss.to(DType::f64);
  std::vector<Tensor> tm{retort::test::random_tensor({2, 2, 2, 2}, 17, 0.0, 2.0),
                         retort::test::random_tensor({2, 3, 4, 4}, 18, 0.0, 2.0),
                         retort::test::random_tensor({2, 4, 2, 2}, 19, 0.0, 2.0)};
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return loss.compute(in, tm); },
                          {retort::test::random_tensor({2, 3, 4, 4}, 20, 0.0, 2.0),
                           retort::test::random_tensor({2, 2, 2, 2}, 21, 0.0, 2.0),
                           retort::test::random_tensor({2, 2, 2, 2}, 22, 0.0, 2.0)});
  // 3 convs + log_scale per stage, named as RD's criterion ModuleList
  std::map<std::string, Shape> params;
  for (const auto& [n, p] : loss.parameters()) params[n] = p.shape();
  CHECK(params == std::map<std::string, Shape>{{"0.regressor.0.weight", {2, 3, 1, 1}},  // C_s -> C_t
                                               {"0.regressor.2.weight", {2, 2, 1, 1}},
                                               {"0.regressor.4.weight", {2, 2, 1, 1}},
                                               {"0.log_scale", {2}},
                                               {"1.regressor.0.weight", {3, 2, 1, 1}},
                                               {"1.regressor.2.weight", {3, 3, 1, 1}},
                                               {"1.regressor.4.weight", {3, 3, 1, 1}},
                                               {"1.log_scale", {3}},
                                               {"2.regressor.0.weight", {4, 2, 1, 1}},
                                               {"2.regressor.2.weight", {4, 4, 1, 1}},
                                               {"2.regressor.4.weight", {4, 4, 1, 1}},
                                               {"2.log_scale", {4}}});
}

TEST_CASE("vid: reference values (RepDistiller VIDLoss with pooling, torchdistill VIDLoss)") {
  for (const char* name : {"vid_rd", "vid_td"}) {
    for (DType dtype : {DType::f64, DType::f32}) {
      // loaded per dtype: input() in f64 hands out (and marks requires_grad on) the stored tensor
      const auto f = retort::test::load_loss_fixture(name);
      const auto stages = size_t(f.number("stages"));
      std::vector<TapInfo> s, t;
      for (size_t k = 0; k < stages; ++k) {
        s.push_back(TapInfo{"s" + std::to_string(k), f.reference("input.s" + std::to_string(k)).shape()});
        t.push_back(TapInfo{"t" + std::to_string(k), f.reference("input.t" + std::to_string(k)).shape()});
      }
      transfer::VidOptions o;
      o.eps = f.number("eps");
      o.init_pred_var = f.number("init_pred_var");
      transfer::VidLoss loss("t", s, t, o, Device::cpu(), 0);
      loss.to(dtype);
      std::map<std::string, Tensor> inputs;
      std::vector<Tensor> sm, tm;
      for (size_t k = 0; k < stages; ++k) {
        const std::string p = std::to_string(k);
        const char* convs[] = {".regressor.0.weight", ".regressor.2.weight", ".regressor.4.weight"};
        auto w = loss.regressor_weights(k);
        for (size_t j = 0; j < 3; ++j) *w[j] = inputs[p + convs[j]] = f.input(p + convs[j], dtype);
        loss.log_scale(k) = inputs[p + ".log_scale"] = f.input(p + ".log_scale", dtype);
        sm.push_back(inputs["s" + p] = f.input("s" + p, dtype));
        tm.push_back(inputs["t" + p] = f.input("t" + p, dtype));
      }
      retort::test::check_loss_fixture(f, loss.compute(sm, tm), inputs, dtype);
    }
  }
}

TEST_CASE("vid: ViT teacher tokens guide a resnet8 student, and a ViT student learns from resnet8") {
  auto resnet = models::create_model("resnet8", fmnist_config(1, kVitDepth));  // stages 16x28x28, 32x14x14, 64x7x7
  auto vit = models::create_model("vit_tiny", fmnist_config(2, kVitDepth));    // tokens.i [B, 50, 192] -> 7x7 grid
  auto r2v = build_term(R"({ name = "vid", teacher = "t", teacher_taps = ["tokens.0", "tokens.1", "tokens.2"] })",
                        resnet, vit);
  CHECK(r2v->student_taps() == std::vector<std::string>{"stage1", "stage2", "stage3"});
  CHECK(param_shape(*r2v, "0.regressor.0.weight") == Shape{192, 16, 1, 1});
  check_trains_student(*r2v, *resnet, *vit, kStep);

  auto resnet2 = models::create_model("resnet8", fmnist_config(5, kVitDepth));  // fresh: no gradients yet
  auto vit2 = models::create_model("vit_tiny", fmnist_config(6, kVitDepth));
  auto v2r = build_term(R"({ name = "vid", teacher = "t", student_taps = ["tokens.0", "tokens.1", "tokens.2"], )"
                        R"(teacher_taps = ["stage1", "stage2", "stage3"] })",
                        vit2, resnet2);
  CHECK(param_shape(*v2r, "2.regressor.0.weight") == Shape{64, 192, 1, 1});
  check_trains_student(*v2r, *vit2, *resnet2, kStep);

  // the default taps do not exist on a ViT: the error lists its taps
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "vid", teacher = "t" })", resnet, vit),
                       doctest::Contains("has no tap 'stage1'; its taps are: "), Error);
  // a vector tap cannot carry a per-channel Gaussian over a map
  CHECK_THROWS_WITH_AS(
      build_term(R"({ name = "vid", teacher = "t", student_taps = ["stage3"], teacher_taps = ["cls"] })", resnet, vit),
      doctest::Contains("teacher tap 'cls' is a vector [1, 192]"), Error);
}

TEST_CASE("vid: registry defaults and errors") {
  auto student = models::create_model("resnet8", fmnist_config(3, kVitDepth));
  auto teacher = models::create_model("wrn_16_2", fmnist_config(4, kVitDepth));
  const auto* schema = find_loss_schema("vid");
  REQUIRE(schema != nullptr);
  CHECK(schema->default_weight == 1.0);
  auto loss = build_term(R"({ name = "vid", teacher = "t" })", student, teacher);
  CHECK(loss->teacher_taps() == std::vector<std::string>{"stage1", "stage2", "stage3"});
  CHECK(loss->parameters().size() == 12);
  check_trains_student(*loss, *student, *teacher, kStep);

  // learn_variance = false (mdistiller): the log-variances are buffers, not trained
  auto fixed = build_term(R"({ name = "vid", teacher = "t", learn_variance = false })", student, teacher);
  CHECK(fixed->parameters().size() == 9);
  REQUIRE(fixed->buffers().size() == 3);
  CHECK(fixed->buffers()[0].first == "0.log_scale");

  CHECK_THROWS_WITH_AS(build_term(R"({ name = "vid", teacher = "t", student_taps = ["stage1", "stage9"] })", student,
                                  teacher),
                       doctest::Contains("p.toml:11: vid: the student (resnet-cifar) has no tap 'stage9'"), Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "vid", teacher = "t", student_taps = ["stage1", "stage2"], )"
                                  R"(teacher_taps = ["stage1"] })",
                                  student, teacher),
                       doctest::Contains("2 student taps [stage1, stage2] but 1 teacher taps [stage1]"), Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "vid", teacher = "t", init_pred_var = -1.0 })", student, teacher),
                       doctest::Contains("key 'init_pred_var' in [stages.losses.vid] must be positive"), Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "vid", teacher = "t", init_pred_var = 1e-6 })", student, teacher),
                       doctest::Contains("init_pred_var (1e-06) must exceed eps (1e-05)"), Error);
}
