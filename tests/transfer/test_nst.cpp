// NST (neuron selectivity transfer, polynomial kernel): hand-computed kernels and losses, f64
// gradient checks (maps of differing sizes and widths, ViT tokens), RepDistiller's NSTLoss on the
// reference fixture, ResNet <-> ViT through the registry, and the errors.
#include <cmath>
#include "helpers.h"
#include "loss_fixture.h"
#include "loss_test_util.h"
#include "transfer/nst.h"

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
}  // namespace

TEST_CASE("nst: hand-computed kernels and loss") {
  // B = 2, 2x2 maps (positions row-major), student C = 2, teacher C = 1.
  //   ex0: student ch0 = [1, 0, 0, 0] -> e1, ch1 = [0, 3, 0, 0] -> e2; teacher [2, 2, 0, 0] -> (e1 + e2)/sqrt2
  //        K_ss = I (mean 1/2), K_tt = [1] (mean 1), K_st = [(1/sqrt2)^2, (1/sqrt2)^2] = [1/2, 1/2]
  //   ex1: student ch0 = [1, 1, 1, 1] -> u0 = [1/2]*4, ch1 = [1, 1, -1, -1] -> u1 = [1/2, 1/2, -1/2, -1/2];
  //        u0 . u1 = 0 so K_ss = I; teacher [0, 0, 0, 5] -> e4, K_tt = [1], K_st = [1/4, 1/4]
  //   means over b and both channel indices: K_tt 1, K_ss (2 + 2) / 8 = 1/2, K_st (1 + 1/2) / 4 = 3/8
  //   L = 1 + 1/2 - 2 * 3/8 = 3/4
  Tensor fs = Tensor::from_vector({1, 0, 0, 0, 0, 3, 0, 0, 1, 1, 1, 1, 1, 1, -1, -1}, {2, 2, 2, 2}, DType::f64);
  Tensor ft = Tensor::from_vector({2, 2, 0, 0, 0, 0, 0, 5}, {2, 1, 2, 2}, DType::f64);
  Tensor us = Tensor::from_vector({1, 0, 0, 0, 0, 1, 0, 0, .5, .5, .5, .5, .5, .5, -.5, -.5}, {2, 2, 4}, DType::f64);
  Tensor ut = Tensor::from_vector({0, 0, 0, 1}, {1, 1, 4}, DType::f64);
  check_close(transfer::nst_poly_kernel(us, us), {1, 0, 0, 1, 1, 0, 0, 1}, 1e-12);
  check_close(transfer::nst_poly_kernel(us.slice(0, 1, 2), ut), {0.25, 0.25}, 1e-12);  // [1, 2, 1]
  check_close(transfer::nst_stage_loss(fs, ft), {0.75}, 1e-12);
  // each example alone: 1 + 1/2 - 1 = 1/2 and 1 + 1/2 - 1/2 = 1 (the batch mean of the two)
  check_close(transfer::nst_stage_loss(fs.slice(0, 0, 1), ft.slice(0, 0, 1)), {0.5}, 1e-12);
  check_close(transfer::nst_stage_loss(fs.slice(0, 1, 2), ft.slice(0, 1, 2)), {1.0}, 1e-12);
  // stages add up; a map against itself (any scale: the patterns are normalised) gives 0
  check_close(transfer::nst_loss({fs, fs}, {ft, ft}), {1.5}, 1e-12);
  check_close(transfer::nst_stage_loss(fs, mul(fs, 3.0)), {0.0}, 1e-12);
  // pooling: a 4x4 teacher whose 2x2 block means are [2, 2, 0, 0] is the teacher of ex0 above
  Tensor big = Tensor::from_vector({4, 0, 2, 2, 0, 4, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0}, {1, 1, 4, 4}, DType::f64);
  check_close(transfer::nst_stage_loss(fs.slice(0, 0, 1), big), {0.5}, 1e-12);
}

TEST_CASE("nst: gradient checks w.r.t. the student maps (pooling both ways, differing widths, ViT tokens)") {
  const std::vector<Shape> s_shapes{{2, 3, 4, 4}, {2, 2, 2, 2}, {2, 4, 3, 3}};
  const std::vector<Shape> t_shapes{{2, 2, 2, 2}, {2, 5, 3, 3}, {2, 4, 3, 3}};
  std::vector<Tensor> s, t;
  for (size_t k = 0; k < s_shapes.size(); ++k) {
    s.push_back(random_tensor(s_shapes[k], 50 + k));
    t.push_back(random_tensor(t_shapes[k], 60 + k));
  }
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::nst_loss(in, t); }, s);
  // ViT tokens [B, 1 + 2*2, 3] (a 2x2 grid of 3 channels) as the student against a 4x4 teacher map
  transfer::NstLoss loss("t", {TapInfo{"tokens.1", {2, 5, 3}}}, {TapInfo{"stage2", {2, 6, 4, 4}}});
  Tensor tm = random_tensor({2, 6, 4, 4}, 70);
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return loss.compute(in, {tm}); },
                          {random_tensor({2, 5, 3}, 71)});
}

TEST_CASE("nst: matches RepDistiller's NSTLoss on the reference fixture") {
  for (DType dtype : {DType::f64, DType::f32}) {
    // loaded per dtype: input() in f64 hands out (and marks requires_grad on) the stored tensor
    const auto f = retort::test::load_loss_fixture("nst");
    REQUIRE(f.number("stages") == 3);
    std::vector<Tensor> s, t;
    std::map<std::string, Tensor> inputs;
    for (int k = 0; k < 3; ++k) {
      s.push_back(f.input(fmt::format("s{}", k), dtype));
      t.push_back(f.input(fmt::format("t{}", k), dtype));
      inputs[fmt::format("s{}", k)] = s.back();
    }
    retort::test::check_loss_fixture(f, transfer::nst_loss(s, t), inputs, dtype);
  }
}

TEST_CASE("nst: registry defaults, resnet8 <-> vit_tiny both ways") {
  auto resnet = models::create_model("resnet8", fmnist_config(1, kVitDepth));
  auto wrn = models::create_model("wrn_16_2", fmnist_config(2, kVitDepth));
  auto vit = models::create_model("vit_tiny", fmnist_config(3, kVitDepth));
  const Recipe r = loss_recipe("{ name = \"nst\", teacher = \"t\" }");
  CHECK(r.stages[0].losses[0].weight == transfer::kNstDefaultWeight);
  auto def = build_term("{ name = \"nst\", teacher = \"t\" }", resnet, wrn);  // 16/32/64 vs 32/64/128 channels
  CHECK(def->student_taps() == std::vector<std::string>{"stage1", "stage2", "stage3"});
  CHECK(def->teacher_taps() == std::vector<std::string>{"stage1", "stage2", "stage3"});
  CHECK(def->parameters().empty());
  check_trains_student(*def, *resnet, *wrn);
  resnet->zero_grad();
  auto r2v = build_term(
      "{ name = \"nst\", teacher = \"t\", teacher_taps = [\"tokens.0\", \"tokens.1\", \"tokens.2\"] }", resnet, vit);
  check_trains_student(*r2v, *resnet, *vit);
  auto v2r = build_term(
      "{ name = \"nst\", teacher = \"t\", student_taps = [\"tokens.0\", \"tokens.1\", \"tokens.2\"] }", vit, wrn);
  check_trains_student(*v2r, *vit, *wrn);
}

TEST_CASE("nst: errors name the recipe line, the tap and the reason") {
  auto resnet = models::create_model("resnet8", fmnist_config(4, kVitDepth));
  auto vit = models::create_model("vit_tiny", fmnist_config(5, kVitDepth));
  CHECK_THROWS_WITH_AS(build_term("{ name = \"nst\", teacher = \"t\" }", vit, resnet),
                       doctest::Contains("p.toml:11: nst: the student (vit) has no tap 'stage1'"), Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"nst\", teacher = \"t\" }", vit, resnet),
                       doctest::Contains("name its token taps in `student_taps`"), Error);
  CHECK_THROWS_WITH_AS(
      build_term("{ name = \"nst\", teacher = \"t\", student_taps = [\"stage1\", \"stage2\", \"pooled\"] }", resnet,
                 resnet),
      doctest::Contains("p.toml:11: nst: student tap 'pooled' is a vector [1, 64]; NST matches"), Error);
  CHECK_THROWS_WITH_AS(
      build_term("{ name = \"nst\", teacher = \"t\", teacher_taps = [\"stage1\", \"stage2\", \"stage4\"] }", resnet,
                 resnet),
      doctest::Contains("nst: the teacher 't' (resnet-cifar) has no tap 'stage4'; its taps are: stem"), Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"nst\", teacher = \"t\", teacher_taps = [\"stage3\"] }", resnet, resnet),
                       doctest::Contains("nst: 3 student taps [stage1, stage2, stage3] but 1 teacher taps [stage3]"),
                       Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"nst\", teacher = \"u\" }", resnet, resnet),
                       doctest::Contains("key 'teacher' in [stages.losses.nst] names an undefined model 'u'"), Error);
}
