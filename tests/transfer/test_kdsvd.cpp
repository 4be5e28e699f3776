// KDSVD: hand-computed bases, alignment and loss, f64 gradient checks (tall, square and wide
// matrices, k = 2, learned projections, ViT tokens), RepDistiller's KDSVD on the reference
// fixtures, ResNet <-> ViT through the registry, and the errors.
#include <cmath>
#include "helpers.h"
#include "loss_fixture.h"
#include "loss_test_util.h"
#include "transfer/kdsvd.h"

using namespace retort;
using models::TapInfo;
using retort::test::build_term;
using retort::test::check_close;
using retort::test::check_trains_student;
using retort::test::fmnist_config;
using retort::test::loss_recipe;
using retort::test::random_tensor;

namespace {
constexpr int64_t kVitDepth = 3;  // ViT: tokens.0..tokens.2

std::vector<Tensor> random_maps(const std::vector<Shape>& shapes, uint64_t seed) {
  std::vector<Tensor> out;
  for (const Shape& s : shapes) out.push_back(random_tensor(s, seed++));
  return out;
}
}  // namespace

TEST_CASE("kdsvd: hand-computed bases, alignment and loss") {
  // 2x2 maps, C = 2; the matrix M has rows = positions (channel values at a position).
  // Stage 1, both sides: ch0 = [2, 0, 0, 0], ch1 = [0, 1, 0, 0]: M rows (2, 0), (0, 1): sigma
  //   = (2, 1), V = I. Teacher v1 = (1, 0); the student's cos = (1, 0) picks column 0, sign +.
  // Stage 2, teacher: rows (2.4, -1.8) = 3 (0.8, -0.6) and (0.6, 0.8) = 1 (0.6, 0.8), orthogonal:
  //   sigma = (3, 1), v1 = (0.8, -0.6) (largest |entry| positive). s_t normalised = 1.
  // Stage 2, student: rows (1.8, -2.4) = 3 (0.6, -0.8) and (0.8, 0.6): V columns (-0.6, 0.8)
  //   (flipped by the sign convention) and (0.8, 0.6), sigma = (3, 1) -> normalised (3, 1)/sqrt10.
  //   cos with v1 = (-0.48 - 0.48, 0.64 - 0.36) = (-0.96, 0.28): column 0, sign -, so the aligned
  //   student vector is (0.6, -0.8).
  // RBF R[a, c] = exp(-(v2[a] - v1[c])^2 / 8) with v1 = (1, 0) on both sides:
  //   teacher v2 = (0.8, -0.6): exp(-0.04/8), exp(-0.64/8), exp(-2.56/8), exp(-0.36/8)
  //   student v2 = (0.6, -0.8): exp(-0.16/8), exp(-0.36/8), exp(-3.24/8), exp(-0.64/8)
  //   L = (e^-.02 - e^-.005)^2 + (e^-.045 - e^-.08)^2 + (e^-.405 - e^-.32)^2 + (e^-.08 - e^-.045)^2
  // Example 1 is example 0 negated: the same V (U changes sign), the same term: (L + L) / 2 = L.
  Tensor s1 = Tensor::from_vector({2, 0, 0, 0, 0, 1, 0, 0, -2, 0, 0, 0, 0, -1, 0, 0}, {2, 2, 2, 2}, DType::f64);
  Tensor t2 = Tensor::from_vector({2.4, 0.6, 0, 0, -1.8, 0.8, 0, 0, -2.4, -0.6, 0, 0, 1.8, -0.8, 0, 0}, {2, 2, 2, 2},
                                  DType::f64);
  Tensor s2 = Tensor::from_vector({1.8, 0.8, 0, 0, -2.4, 0.6, 0, 0, -1.8, -0.8, 0, 0, 2.4, -0.6, 0, 0}, {2, 2, 2, 2},
                                  DType::f64);
  auto e = [](double x) { return std::exp(x); };
  const double L = std::pow(e(-.02) - e(-.005), 2) + std::pow(e(-.045) - e(-.08), 2) +
                   std::pow(e(-.405) - e(-.32), 2) + std::pow(e(-.08) - e(-.045), 2);

  auto tb = transfer::kdsvd_basis(t2, 1);
  check_close(tb.s, {1, 1}, 1e-12);
  check_close(tb.v, {0.8, -0.6, 0.8, -0.6}, 1e-12);
  auto sb = transfer::kdsvd_basis(s2, 4);  // only min(4, 4, 2) = 2 vectors exist
  REQUIRE(sb.v.shape() == Shape{2, 2, 2});
  const double r10 = std::sqrt(10.0);
  check_close(sb.s, {3 / r10, 1 / r10, 3 / r10, 1 / r10}, 1e-12);
  check_close(sb.v.select(0, 0), {-0.6, 0.8, 0.8, 0.6}, 1e-12);
  check_close(transfer::kdsvd_align(sb.v, tb.v), {0.6, -0.8, 0.6, -0.8}, 1e-12);

  check_close(transfer::kdsvd_loss({s1, s2}, {s1, t2}), {L}, 1e-12);
  check_close(transfer::kdsvd_loss({s1.slice(0, 0, 1), s2.slice(0, 0, 1)}, {s1.slice(0, 0, 1), t2.slice(0, 0, 1)}),
              {L}, 1e-12);
  // A third stage equal to the first: the pair (2, 3) gives the same four terms, transposed.
  check_close(transfer::kdsvd_loss({s1, s2, s1}, {s1, t2, s1}), {2 * L}, 1e-12);
  // The student equal to the teacher: 0.
  check_close(transfer::kdsvd_loss({s1, t2}, {s1, t2}), {0.0}, 1e-12);
}

TEST_CASE("kdsvd: gradient checks w.r.t. the student maps (tall, square, wide; k = 1 and 2)") {
  // [H*W, C]: 16 x 3 (tall), 4 x 4, 4 x 6 (wide); teacher maps of other spatial sizes.
  const auto s = random_maps({{2, 3, 4, 4}, {2, 4, 2, 2}, {2, 6, 2, 2}}, 50);
  const auto t = random_maps({{2, 3, 3, 3}, {2, 4, 2, 2}, {2, 6, 1, 3}}, 60);
  for (int64_t k : {1, 2}) {
    INFO("k = " << k);
    retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::kdsvd_loss(in, t, k); }, s);
  }
}

TEST_CASE("kdsvd: gradient checks through learned projections and ViT tokens") {
  // Student channels 2 and 3 against teacher channels 3 and 3: pair 0 is projected.
  transfer::KdsvdLoss loss("t", {TapInfo{"stage1", {2, 2, 4, 4}}, TapInfo{"stage2", {2, 3, 2, 2}}},
                           {TapInfo{"stage1", {2, 3, 4, 4}}, TapInfo{"stage2", {2, 3, 2, 2}}}, 1, true, Device::cpu(),
                           3);
  REQUIRE(loss.projection(0) != nullptr);
  CHECK(loss.projection(1) == nullptr);
  CHECK(loss.parameters().size() == 3);  // conv weight, BN weight and bias
  loss.projection(0)->to(DType::f64);
  const auto tm = random_maps({{2, 3, 4, 4}, {2, 3, 2, 2}}, 70);
  const auto sm = random_maps({{2, 2, 4, 4}, {2, 3, 2, 2}}, 72);
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return loss.compute(in, tm); }, sm);
  // The projection's conv weight: analytic gradient against central differences.
  Tensor w;
  for (auto& [name, p] : loss.parameters())
    if (name == "tap0.conv.weight") w = p;
  REQUIRE(w.defined());
  w.zero_grad();
  loss.compute(sm, tm).backward();
  const auto analytic = w.grad().to_vector();
  REQUIRE(analytic.size() == 6);
  for (size_t i = 0; i < analytic.size(); ++i) {
    double* p = w.data<double>() + i;
    const double keep = *p, h = 1e-6;
    auto value = [&](double at) {
      *p = at;
      NoGradGuard ng;
      return loss.compute(sm, tm).item();
    };
    const double numeric = (value(keep + h) - value(keep - h)) / (2 * h);
    *p = keep;
    INFO("weight " << i << ": analytic " << analytic[i] << ", numeric " << numeric);
    CHECK(std::abs(analytic[i] - numeric) <= 1e-5 * (1 + std::abs(numeric)));
  }
  // ViT tokens [B, 1 + 2*2, 3] (2x2 grids, 3 channels) against ResNet maps of 3 channels.
  transfer::KdsvdLoss vit("t", {TapInfo{"tokens.1", {2, 5, 3}}, TapInfo{"tokens.2", {2, 5, 3}}},
                          {TapInfo{"stage2", {2, 3, 4, 4}}, TapInfo{"stage3", {2, 3, 2, 2}}}, 1, true, Device::cpu(),
                          4);
  CHECK(vit.parameters().empty());
  const auto vt = random_maps({{2, 3, 4, 4}, {2, 3, 2, 2}}, 80);
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return vit.compute(in, vt); },
                          random_maps({{2, 5, 3}, {2, 5, 3}}, 82));
}

TEST_CASE("kdsvd: matches RepDistiller's KDSVD on the reference fixtures") {
  for (const char* name : {"kdsvd", "kdsvd_k2"}) {
    for (DType dtype : {DType::f64, DType::f32}) {
      // loaded per dtype: input() in f64 hands out (and marks requires_grad on) the stored tensor
      const auto f = retort::test::load_loss_fixture(name);
      const int64_t k = int64_t(f.number("k"));
      std::vector<Tensor> s, t;
      std::map<std::string, Tensor> inputs;
      for (int i = 0; i < 3; ++i) {
        s.push_back(f.input(fmt::format("s{}", i), dtype));
        t.push_back(f.input(fmt::format("t{}", i), dtype));
        inputs[fmt::format("s{}", i)] = s.back();
      }
      retort::test::check_loss_fixture(f, transfer::kdsvd_loss(s, t, k), inputs, dtype);
    }
  }
}

TEST_CASE("kdsvd: registry defaults, resnet8 <-> wrn_16_2 and resnet8 <-> vit_tiny") {
  auto resnet = models::create_model("resnet8", fmnist_config(1, kVitDepth));
  auto wrn = models::create_model("wrn_16_2", fmnist_config(2, kVitDepth));
  auto vit = models::create_model("vit_tiny", fmnist_config(3, kVitDepth));
  const Recipe r = loss_recipe("{ name = \"kdsvd\", teacher = \"t\" }");
  CHECK(r.stages[0].losses[0].weight == transfer::kKdsvdDefaultWeight);
  const LossArgs args = loss_args(r, r.stages[0].losses[0]);
  CHECK(args.integer("k") == 1);
  CHECK(args.boolean("project"));
  // resnet8 (16/32/64 channels) against wrn_16_2 (32/64/128): every stage projected
  auto def = build_term("{ name = \"kdsvd\", teacher = \"t\" }", resnet, wrn);
  CHECK(def->student_taps() == std::vector<std::string>{"stage1", "stage2", "stage3"});
  CHECK(def->teacher_taps() == std::vector<std::string>{"stage1", "stage2", "stage3"});
  CHECK(def->parameters().size() == 9);
  check_trains_student(*def, *resnet, *wrn);
  // equal channels: nothing to learn
  CHECK(build_term("{ name = \"kdsvd\", teacher = \"t\", project = false }", resnet, resnet)->parameters().empty());
  resnet->zero_grad();
  auto r2v = build_term(
      "{ name = \"kdsvd\", teacher = \"t\", teacher_taps = [\"tokens.0\", \"tokens.1\", \"tokens.2\"] }", resnet, vit);
  check_trains_student(*r2v, *resnet, *vit);
  auto v2r = build_term(
      "{ name = \"kdsvd\", teacher = \"t\", student_taps = [\"tokens.0\", \"tokens.1\", \"tokens.2\"] }", vit, wrn);
  check_trains_student(*v2r, *vit, *wrn);
}

TEST_CASE("kdsvd: errors name the recipe line, the key or tap and the reason") {
  auto resnet = models::create_model("resnet8", fmnist_config(4, kVitDepth));
  auto wrn = models::create_model("wrn_16_2", fmnist_config(5, kVitDepth));
  auto vit = models::create_model("vit_tiny", fmnist_config(6, kVitDepth));
  CHECK_THROWS_WITH_AS(build_term("{ name = \"kdsvd\", teacher = \"t\", project = false }", resnet, wrn),
                       doctest::Contains("p.toml:11: kdsvd: student tap 'stage1' [1, 16, 28, 28] has 16 channels but "
                                         "teacher tap 'stage1' [1, 32, 28, 28] has 32"),
                       Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"kdsvd\", teacher = \"t\" }", vit, resnet),
                       doctest::Contains("p.toml:11: kdsvd: the student (vit) has no tap 'stage1'"), Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"kdsvd\", teacher = \"t\" }", vit, resnet),
                       doctest::Contains("name its token taps in `student_taps`"), Error);
  CHECK_THROWS_WITH_AS(
      build_term("{ name = \"kdsvd\", teacher = \"t\", student_taps = [\"stage1\", \"stage2\", \"pooled\"] }", resnet,
                 wrn),
      doctest::Contains("p.toml:11: kdsvd: student tap 'pooled' is a vector [1, 64]"), Error);
  CHECK_THROWS_WITH_AS(
      build_term("{ name = \"kdsvd\", teacher = \"t\", teacher_taps = [\"stage1\", \"stage2\", \"stage4\"] }", resnet,
                 wrn),
      doctest::Contains("kdsvd: the teacher 't' (wrn) has no tap 'stage4'; its taps are: stem"), Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"kdsvd\", teacher = \"t\", teacher_taps = [\"stage3\"] }", resnet, wrn),
                       doctest::Contains("kdsvd: 3 student taps [stage1, stage2, stage3] but 1 teacher taps [stage3]"),
                       Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"kdsvd\", teacher = \"t\", student_taps = [\"stage3\"], teacher_taps = "
                                  "[\"stage3\"] }",
                                  resnet, wrn),
                       doctest::Contains("kdsvd: needs at least two taps"), Error);
  // stage1 of the 28x28 teacher has 32 channels: 32 singular vectors
  CHECK_THROWS_WITH_AS(build_term("{ name = \"kdsvd\", teacher = \"t\", k = 33 }", resnet, wrn),
                       doctest::Contains("teacher tap 'stage1' [1, 32, 28, 28] gives [H*W, C] = [784, 32] matrices "
                                         "with 32 singular vectors, fewer than k = 33"),
                       Error);
  CHECK_THROWS_WITH_AS(loss_recipe("{ name = \"kdsvd\", teacher = \"t\", k = 0 }"),
                       doctest::Contains("p.toml:11: key 'k' in [stages.losses.kdsvd] must be"), Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"kdsvd\", teacher = \"u\" }", resnet, wrn), doctest::Contains("'u'"),
                       Error);
  // tokens that do not form a square grid
  CHECK_THROWS_WITH_AS(transfer::KdsvdLoss("t", {TapInfo{"tokens.1", {2, 6, 3}}, TapInfo{"tokens.2", {2, 6, 3}}},
                                           {TapInfo{"stage2", {2, 3, 4, 4}}, TapInfo{"stage3", {2, 3, 2, 2}}}, 1,
                                           true, Device::cpu(), 0),
                       doctest::Contains("minus the CLS token that leaves 5, which is not a square"), Error);
  // the free function: channels must agree per pair
  CHECK_THROWS_WITH_AS(transfer::kdsvd_loss(random_maps({{2, 3, 2, 2}, {2, 4, 2, 2}}, 1),
                                            random_maps({{2, 3, 2, 2}, {2, 5, 2, 2}}, 3)),
                       doctest::Contains("kdsvd: pair 1: student map f64[2, 4, 2, 2] on cpu and teacher map "
                                         "f64[2, 5, 2, 2]"),
                       Error);
}
