// OFD loss: hand-computed margins (both branches, a negative and a zero BN weight) and partial-L2
// terms with the stage weights; f64 gradient checks w.r.t. the student maps and the connectors
// (1x1 and 3x3, a pooled teacher map); the reference fixtures (mdistiller's OFD distiller, the
// authors' Distiller) in f64 and f32; resnet8 from wrn_16_2 through the registry; the margins read
// from the teacher's BNs when the stage starts; the build-time errors (a ViT on either side, wrong
// taps, a teacher tap without a BN before its ReLU, bad keys).
#include <cmath>
#include "helpers.h"
#include "transfer/loss_fixture.h"
#include "transfer/loss_test_util.h"
#include "transfer/ofd.h"

using namespace retort;
using models::TapInfo;
using retort::test::build_term;
using retort::test::check_trains_student;
using retort::test::fmnist_config;
using retort::test::random_tensor;

namespace {

// "<prefix><k>" (fmt: GCC 12 warns falsely (-Wrestrict) on "literal" + std::to_string(k))
std::string key(const char* prefix, size_t k) { return fmt::format("{}{}", prefix, k); }

std::shared_ptr<nn::BatchNorm2d> make_bn(const Tensor& weight, const Tensor& bias) {
  auto bn = std::make_shared<nn::BatchNorm2d>(weight.numel());
  bn->weight = weight.detach().to(DType::f32);
  bn->bias = bias.detach().to(DType::f32);
  return bn;
}

}  // namespace

TEST_CASE("ofd: hand-computed margins (E[x | x < 0] for x ~ N(beta, gamma^2), or -3 sigma)") {
  // phi(0) = 0.3989422804014327, Phi(0) = 0.5: gamma 1, beta 0 -> -0.39894.../0.5 = -0.7978845608028654;
  // gamma -2 (sigma = |gamma| = 2), beta 0 -> twice that
  CHECK(transfer::ofd_channel_margin(1.0, 0.0) == doctest::Approx(-0.7978845608028654).epsilon(1e-14));
  CHECK(transfer::ofd_channel_margin(-2.0, 0.0) == doctest::Approx(-1.5957691216057308).epsilon(1e-14));
  // gamma 1, beta -1: z = -1, phi(-1) = 0.24197072451914337, Phi(1) = 0.8413447460685429
  //   -> -1 - 0.24197.../0.84134... = -1.2875999709391783
  CHECK(transfer::ofd_channel_margin(1.0, -1.0) == doctest::Approx(-1.2875999709391783).epsilon(1e-14));
  // gamma 2, beta 1: z = 0.5, phi(0.5) = 0.35206532676429947, Phi(-0.5) = 0.3085375387259869
  //   -> 1 - 2 * 0.35206.../0.30853... = -1.2821555407361296
  CHECK(transfer::ofd_channel_margin(2.0, 1.0) == doctest::Approx(-1.2821555407361296).epsilon(1e-14));
  // gamma 0.5, beta 1.5: z = 3, Phi(-3) = 0.0013498980316300933 > 0.001, phi(3) = 0.0044318484119380075
  //   -> 1.5 - 0.5 * 0.0044318.../0.0013498... = -0.14154932746521998 (still negative)
  CHECK(transfer::ofd_channel_margin(0.5, 1.5) == doctest::Approx(-0.14154932746521998).epsilon(1e-12));
  // gamma 1, beta 3.5: Phi(-3.5) = 2.33e-4 <= 0.001 -> -3 sigma = -3; gamma -0.25, beta 1 (z = 4): -0.75
  CHECK(transfer::ofd_channel_margin(1.0, 3.5) == -3.0);
  CHECK(transfer::ofd_channel_margin(-0.25, 1.0) == -0.75);
  // gamma 0: the limit of either branch, min(beta, 0)
  CHECK(transfer::ofd_channel_margin(0.0, -0.3) == -0.3);
  CHECK(transfer::ofd_channel_margin(0.0, 0.2) == 0.0);
  // per channel of a BatchNorm2d
  auto bn = make_bn(Tensor::from_vector({1.0, -2.0, 1.0}, {3}, DType::f64),
                    Tensor::from_vector({0.0, 0.0, 3.5}, {3}, DType::f64));
  const std::vector<double> m = transfer::ofd_margins(*bn);
  REQUIRE(m.size() == 3);
  CHECK(m[0] == doctest::Approx(-0.7978845608028654).epsilon(1e-14));
  CHECK(m[1] == doctest::Approx(-1.5957691216057308).epsilon(1e-14));
  CHECK(m[2] == -3.0);
}

TEST_CASE("ofd: hand-computed partial L2 and stage weights") {
  // B = 2, C = 2, 1x2 maps (b, c, w), margins m = [-1, -0.5]; T = max(t, m); e = (s - T)^2 where s > T or T > 0:
  //   b0 c0 (m -1):   s 0.5,  t -2   -> T -1 (raised to the margin), s > T: 1.5^2 = 2.25
  //                   s -1.5, t -3   -> T -1, s < T, T <= 0: 0
  //   b0 c1 (m -0.5): s 0,    t -0.2 -> T -0.2, s > T: 0.2^2 = 0.04
  //                   s -1,   t -0.3 -> T -0.3, s < T: 0
  //   b1 c0 (m -1):   s -2,   t 1.5  -> T 1.5 > 0: 3.5^2 = 12.25
  //                   s 3,    t 2    -> T 2 > 0: 1
  //   b1 c1 (m -0.5): s 0.25, t -0.75 -> T -0.5, s > T: 0.75^2 = 0.5625
  //                   s -0.6, t -0.5 (t = m) -> T -0.5, s < T: 0
  //   sum e = 16.1025; / B = 8.05125
  const Tensor s = Tensor::from_vector({0.5, -1.5, 0.0, -1.0, -2.0, 3.0, 0.25, -0.6}, {2, 2, 1, 2}, DType::f64);
  const Tensor t = Tensor::from_vector({-2.0, -3.0, -0.2, -0.3, 1.5, 2.0, -0.75, -0.5}, {2, 2, 1, 2}, DType::f64);
  const Tensor m = Tensor::from_vector({-1.0, -0.5}, {1, 2, 1, 1}, DType::f64);
  retort::test::check_close(transfer::ofd_elementwise(s, t, m), {2.25, 0, 0.04, 0, 12.25, 1, 0.5625, 0}, 1e-12);
  retort::test::check_close(transfer::ofd_loss({s}, {t}, {m}), {8.05125}, 1e-12);
  // stage weights 2^(l-n): two stages 1/2, 1 -> 12.076875; three 1/4, 1/2, 1 -> 14.0896875
  retort::test::check_close(transfer::ofd_loss({s, s}, {t, t}, {m, m}), {12.076875}, 1e-12);
  retort::test::check_close(transfer::ofd_loss({s, s, s}, {t, t, t}, {m, m, m}), {14.0896875}, 1e-12);
  // the weight follows the position: a zero stage first (s = t everywhere) leaves 1 * 8.05125
  retort::test::check_close(transfer::ofd_loss({t, s}, {t, t}, {m, m}), {8.05125}, 1e-12);
  // a lower margin on c0 (-2.5): b0 c0 s 0.5 vs T -2 -> 6.25, s -1.5 vs T -2.5 -> 1; total (16.1025 + 5) / 2
  const Tensor low = Tensor::from_vector({-2.5, -0.5}, {1, 2, 1, 1}, DType::f64);
  retort::test::check_close(transfer::ofd_loss({s}, {t}, {low}), {10.55125}, 1e-12);
  CHECK_THROWS_WITH_AS(transfer::ofd_elementwise(s, Tensor::zeros({2, 2, 1, 1}, DType::f64), m),
                       doctest::Contains("differ in shape"), Error);
}

TEST_CASE("ofd: gradient checks w.r.t. the student maps and the connectors") {
  const std::vector<Tensor> t{random_tensor({2, 3, 2, 3}, 10, -2, 2), random_tensor({2, 2, 2, 2}, 11, -2, 2)};
  const std::vector<Tensor> m{random_tensor({1, 3, 1, 1}, 12, -1.5, -0.2), random_tensor({1, 2, 1, 1}, 13, -1.5, -0.2)};
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::ofd_loss(in, t, m); },
                          {random_tensor({2, 3, 2, 3}, 14, -2.5, 2.5), random_tensor({2, 2, 2, 2}, 15, -2.5, 2.5)});
  // through the connectors in training mode (batch statistics), kernel 1 and 3, the second stage's
  // teacher map (4x4) pooled to the student's 2x2
  for (int64_t kernel : {1, 3}) {
    INFO("kernel " << kernel);
    const std::vector<Shape> ss{{3, 2, 3, 3}, {3, 3, 2, 2}}, ts{{3, 3, 3, 3}, {3, 2, 4, 4}};
    std::vector<TapInfo> s_taps, t_taps;
    std::vector<std::shared_ptr<nn::BatchNorm2d>> bns;
    for (size_t k = 0; k < ss.size(); ++k) {
      s_taps.push_back(TapInfo{key("s", k), ss[k]});
      t_taps.push_back(TapInfo{key("t", k), ts[k]});
      bns.push_back(make_bn(random_tensor({ts[k][1]}, 20 + k, 0.5, 1.5), random_tensor({ts[k][1]}, 22 + k, -1, 1)));
    }
    transfer::OfdLoss loss("t", s_taps, t_taps, bns, kernel, Device::cpu(), DType::f64, 7);
    REQUIRE(loss.connector(0).at<nn::Conv2d>(0)->weight.shape() == Shape{3, 2, kernel, kernel});
    std::vector<Tensor> tm, init;
    for (size_t k = 0; k < ss.size(); ++k) {
      tm.push_back(random_tensor(ts[k], 30 + k, -2, 2));
      init.push_back(random_tensor(ss[k], 32 + k, -2, 2));
    }
    for (size_t k = 0; k < ss.size(); ++k) {
      init.push_back(loss.connector(k).at<nn::Conv2d>(0)->weight.detach().clone());
      init.push_back(random_tensor({ts[k][1]}, 40 + k, 0.5, 1.5));   // bn weight
      init.push_back(random_tensor({ts[k][1]}, 42 + k, -0.5, 0.5));  // bn bias
    }
    const size_t n = ss.size();
    retort::test::gradcheck(
        [&](const std::vector<Tensor>& in) {
          for (size_t k = 0; k < n; ++k) {
            loss.connector(k).at<nn::Conv2d>(0)->weight = in[n + 3 * k];
            loss.connector(k).at<nn::BatchNorm2d>(1)->weight = in[n + 1 + 3 * k];
            loss.connector(k).at<nn::BatchNorm2d>(1)->bias = in[n + 2 + 3 * k];
          }
          return loss.compute({in.begin(), in.begin() + std::ptrdiff_t(n)}, tm);
        },
        init);
  }
}

TEST_CASE("ofd: reference values (mdistiller OFD, the authors' Distiller)") {
  for (const char* name : {"ofd", "ofd_k3", "ofd_authors"}) {
    for (DType dtype : {DType::f64, DType::f32}) {
      // loaded per dtype: input() in f64 hands out (and marks requires_grad on) the stored tensor
      const auto f = retort::test::load_loss_fixture(name);
      const auto stages = size_t(f.number("stages"));
      std::vector<TapInfo> s, t;
      std::vector<std::shared_ptr<nn::BatchNorm2d>> bns;
      for (size_t k = 0; k < stages; ++k) {
        s.push_back(TapInfo{key("s", k), f.reference(key("input.s", k)).shape()});
        t.push_back(TapInfo{key("t", k), f.reference(key("input.t", k)).shape()});
        bns.push_back(make_bn(f.input(key("bn", k) + ".weight"), f.input(key("bn", k) + ".bias")));
        bns.back()->to(dtype);
      }
      transfer::OfdLoss loss("t", s, t, bns, int64_t(f.number("kernel_size")), Device::cpu(), dtype, 0);
      std::map<std::string, Tensor> inputs;
      std::vector<Tensor> sm, tm;
      for (size_t k = 0; k < stages; ++k) {
        const std::string p = key("connectors.", k);
        auto conv = loss.connector(k).at<nn::Conv2d>(0);
        auto bn = loss.connector(k).at<nn::BatchNorm2d>(1);
        REQUIRE(conv->weight.shape() == f.reference("input." + p + ".0.weight").shape());
        conv->weight = inputs[p + ".0.weight"] = f.input(p + ".0.weight", dtype);
        bn->weight = inputs[p + ".1.weight"] = f.input(p + ".1.weight", dtype);
        bn->bias = inputs[p + ".1.bias"] = f.input(p + ".1.bias", dtype);
        sm.push_back(inputs[key("s", k)] = f.input(key("s", k), dtype));
        tm.push_back(inputs[key("t", k)] = f.input(key("t", k), dtype));
        // the reference's margins (float32 values) against retort's (double)
        retort::test::check_matches(
            key("margin", k), Tensor::from_vector(loss.margins(k), {int64_t(loss.margins(k).size())}, DType::f64),
            f.reference(key("extra.margin", k)), retort::test::loss_fixture_tolerance(dtype));
      }
      retort::test::check_loss_fixture(f, loss.compute(sm, tm), inputs, dtype);
    }
  }
}

TEST_CASE("ofd: resnet8 student from a wrn_16_2 teacher through the registry") {
  auto student = models::create_model("resnet8", fmnist_config(1));   // preact 16x28, 32x14, 64x7
  auto teacher = models::create_model("wrn_16_2", fmnist_config(2));  // preact 32x28, 64x14, 128x7
  const auto* schema = find_loss_schema("ofd");
  REQUIRE(schema != nullptr);
  CHECK(schema->default_weight == 0.001);  // mdistiller FEAT_WEIGHT
  REQUIRE(schema->find("kernel_size") != nullptr);
  CHECK(std::get<int64_t>(*schema->find("kernel_size")->default_value) == 1);
  auto loss = build_term(R"({ name = "ofd", teacher = "t" })", student, teacher);
  CHECK(loss->student_taps() == std::vector<std::string>{"stage1.preact", "stage2.preact", "stage3.preact"});
  CHECK(loss->teacher_taps() == loss->student_taps());
  CHECK(loss->teachers() == std::vector<std::string>{"t"});
  const auto params = loss->parameters();
  REQUIRE(params.size() == 9);  // per stage: conv weight (no bias), BN weight and bias
  CHECK(params[0].first == "connectors.0.0.weight");
  CHECK(params[0].second.shape() == Shape{32, 16, 1, 1});
  CHECK(params[1].first == "connectors.0.1.weight");
  CHECK(params[2].first == "connectors.0.1.bias");
  CHECK(params[6].second.shape() == Shape{128, 64, 1, 1});
  bool running_mean = false;
  for (const auto& [n, b] : loss->buffers()) running_mean = running_mean || n == "connectors.2.1.running_mean";
  CHECK(running_mean);
  check_trains_student(*loss, *student, *teacher, {.batch = 2, .seed = 50, .has_params = true});
  for (const auto& [n, p] : student->named_parameters())
    if (n.rfind("fc.", 0) == 0) CHECK_MESSAGE(!p.grad().defined(), n);
  // a 3x3 connector; student taps alone: the teacher reads the same names
  auto k3 = build_term(R"({ name = "ofd", teacher = "t", kernel_size = 3, student_taps = ["stage3.preact"] })",
                       student, teacher);
  CHECK(k3->teacher_taps() == std::vector<std::string>{"stage3.preact"});
  REQUIRE(k3->parameters().size() == 3);
  CHECK(k3->parameters()[0].second.shape() == Shape{128, 64, 3, 3});
  // a teacher map larger than the student's: pooled to the student's size (teacher stage2 14x14 -> 7x7)
  auto pooled = build_term(R"({ name = "ofd", teacher = "t", student_taps = ["stage3.preact"], )"
                           R"(teacher_taps = ["stage2.preact"] })",
                           student, teacher);
  REQUIRE(pooled->parameters()[0].second.shape() == Shape{64, 64, 1, 1});
  Tensor s3 = random_tensor({2, 64, 7, 7}, 51, -2, 2, DType::f32);
  s3.requires_grad_(true);
  const Tensor l = dynamic_cast<transfer::OfdLoss&>(*pooled).compute({s3}, {random_tensor({2, 64, 14, 14}, 52, -2, 2,
                                                                                           DType::f32)});
  CHECK(l.item() > 0);
  Tensor(l).backward();
  REQUIRE(s3.grad().defined());
  CHECK(sum(abs(s3.grad())).item() > 0);
}

TEST_CASE("ofd: the margins are read from the teacher's BNs when the stage starts") {
  auto student = models::create_model("resnet8", fmnist_config(3));
  auto teacher = models::create_model("wrn_16_2", fmnist_config(4));
  auto term = build_term(R"({ name = "ofd", teacher = "t" })", student, teacher);
  auto& loss = dynamic_cast<transfer::OfdLoss&>(*term);
  // an untrained teacher: every BN has weight 1, bias 0 -> margin -2 phi(0) = -0.7978845608028654
  for (double v : loss.margins(2)) CHECK(v == doctest::Approx(-0.7978845608028654).epsilon(1e-14));
  // the stage maps of resnet8 (student) and wrn_16_2 (teacher) for a batch of 2 (no forward needed)
  std::vector<Tensor> sm, tm;
  for (int64_t k = 0; k < 3; ++k) {
    const int64_t side = 28 >> k;
    sm.push_back(random_tensor({2, 16 << k, side, side}, 63 + uint64_t(k), -2, 2, DType::f32));
    tm.push_back(random_tensor({2, 32 << k, side, side}, 66 + uint64_t(k), -2, 2, DType::f32));
  }
  const double before = loss.compute(sm, tm).item();
  // "train" the teacher after the loss was built, as a recipe's teacher stage does: its final bn1
  // (before stage3.preact's ReLU) gets new weights through load_state_dict
  auto trained = models::create_model("wrn_16_2", fmnist_config(4));
  auto trained_bn = trained->bn_before_relu("stage3.preact");
  REQUIRE(trained_bn != nullptr);
  trained_bn->weight = random_tensor({128}, 61, -2, 2, DType::f32);
  trained_bn->bias = random_tensor({128}, 62, -1, 4, DType::f32);
  nn::NamedTensors state = trained->named_parameters();
  for (auto& b : trained->named_buffers()) state.push_back(b);
  teacher->load_state_dict(state);
  // not re-read before the stage starts ...
  for (double v : loss.margins(2)) CHECK(v == doctest::Approx(-0.7978845608028654).epsilon(1e-14));
  loss.begin_stage();
  // ... then every channel's margin follows the trained BN (both branches occur), the other stages' stay
  const std::vector<double> w = trained_bn->weight.to_vector(), b = trained_bn->bias.to_vector();
  int tiny = 0;
  for (size_t c = 0; c < w.size(); ++c) {
    CHECK(loss.margins(2)[c] == transfer::ofd_channel_margin(w[c], b[c]));
    tiny += loss.margins(2)[c] == -3 * std::abs(w[c]);
  }
  CHECK(tiny > 0);
  CHECK(tiny < int(w.size()));
  for (double v : loss.margins(1)) CHECK(v == doctest::Approx(-0.7978845608028654).epsilon(1e-14));
  const double after = loss.compute(sm, tm).item();
  CHECK(std::isfinite(after));
  CHECK(after != before);
}

TEST_CASE("ofd: a ViT on either side, wrong taps and bad keys fail at build time") {
  auto resnet = models::create_model("resnet8", fmnist_config(5));
  auto wrn = models::create_model("wrn_16_2", fmnist_config(6));
  auto vit = models::create_model("vit_tiny", fmnist_config(7));
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ofd", teacher = "t" })", resnet, vit),
                       doctest::Contains("p.toml:11: ofd: the teacher 't' (vit) has no pre-ReLU stage taps "
                                         "(\"stage<i>.preact\"): OFD distils pre-ReLU maps and takes its margin from "
                                         "the BatchNorm before the teacher's ReLU; a ViT has neither"),
                       Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ofd", teacher = "t" })", vit, resnet),
                       doctest::Contains("p.toml:11: ofd: the student (vit) has no pre-ReLU stage taps"), Error);
  // a ViT's token taps named explicitly: the teacher has no BN before a ReLU, the student no map
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ofd", teacher = "t", student_taps = ["stage3.preact"], )"
                                  R"(teacher_taps = ["tokens.1"] })",
                                  resnet, vit),
                       doctest::Contains("ofd: teacher 't' (vit) tap 'tokens.1' has no BatchNorm right before a ReLU, "
                                         "which OFD's margin is computed from; this model has no such tap (a ViT has "
                                         "none)"),
                       Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ofd", teacher = "t", student_taps = ["tokens.1"], )"
                                  R"(teacher_taps = ["stage3.preact"] })",
                                  vit, resnet),
                       doctest::Contains("ofd: student tap 'tokens.1' is a token sequence [1, 50, 192], not a "
                                         "[B, C, H, W] map"),
                       Error);
  // a teacher tap without a BN right before its ReLU (after the ReLU; WRN's stem is a bare conv)
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ofd", teacher = "t", student_taps = ["stage3"] })", resnet, resnet),
                       doctest::Contains("p.toml:11: ofd: teacher 't' (resnet-cifar) tap 'stage3' has no BatchNorm "
                                         "right before a ReLU, which OFD's margin is computed from; the taps with "
                                         "one: stage1.preact, stage2.preact, stage3.preact"),
                       Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ofd", teacher = "t", student_taps = ["stem"] })", resnet, wrn),
                       doctest::Contains("ofd: teacher 't' (wrn) tap 'stem' has no BatchNorm right before a ReLU"),
                       Error);
  // unknown taps, lists that do not pair, bad keys
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ofd", teacher = "t", student_taps = ["stage1.preact", "stage2.pre"] })",
                                  resnet, resnet),
                       doctest::Contains("ofd: the student (resnet-cifar) has no tap 'stage2.pre'"), Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ofd", teacher = "t", teacher_taps = ["stage1.preact"] })", resnet,
                                  resnet),
                       doctest::Contains("ofd: `teacher_taps` [stage1.preact] given without `student_taps`"), Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ofd", teacher = "t", student_taps = ["stage1.preact"], )"
                                  R"(teacher_taps = ["stage1.preact", "stage2.preact"] })",
                                  resnet, resnet),
                       doctest::Contains("ofd: 1 student taps [stage1.preact] but 2 teacher taps"), Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ofd", teacher = "t", kernel_size = 0 })", resnet, resnet),
                       doctest::Contains("key 'kernel_size' in [stages.losses.ofd] must be positive"), Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ofd", teacher = "s" })", resnet, resnet),
                       doctest::Contains("loss 'ofd' reads teacher 's', which is not a teacher of this stage"), Error);
  // an even kernel (padding (k-1)/2 rounds down) shrinks the map by one: nothing left of a 1x1 map
  const auto bn = make_bn(random_tensor({4}, 70, 0.5, 1.5), random_tensor({4}, 71));
  CHECK_THROWS_WITH_AS(transfer::OfdLoss("t", {TapInfo{"s0", {2, 3, 1, 1}}}, {TapInfo{"t0", {2, 4, 1, 1}}}, {bn}, 2,
                                         Device::cpu(), DType::f32, 0),
                       doctest::Contains("ofd: a 2x2 connector (padding 0) leaves nothing of student tap 's0' "
                                         "[2, 3, 1, 1]"),
                       Error);
  // the BN must have the teacher map's channels
  CHECK_THROWS_WITH_AS(transfer::OfdLoss("t", {TapInfo{"s0", {2, 3, 2, 2}}}, {TapInfo{"t0", {2, 5, 2, 2}}}, {bn}, 1,
                                         Device::cpu(), DType::f32, 0),
                       doctest::Contains("ofd: the BatchNorm before teacher tap 't0' [2, 5, 2, 2] has 4 channels, "
                                         "the map 5"),
                       Error);
}
