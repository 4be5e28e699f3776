// SP (similarity-preserving KD): hand-computed similarity matrices and losses (B = 2 and 3, taps of
// different shapes), f64 gradient checks, RepDistiller's Similarity on the reference fixture,
// ResNet <-> ViT (maps, tokens, vectors) through the registry, and the errors.
#include <cmath>
#include "helpers.h"
#include "loss_fixture.h"
#include "loss_test_util.h"
#include "transfer/sp.h"

using namespace retort;
using retort::test::build_term;
using retort::test::check_close;
using retort::test::check_trains_student;
using retort::test::fmnist_config;
using retort::test::loss_recipe;
using retort::test::random_tensor;


TEST_CASE("sp: hand-computed similarities and loss") {
  // B = 2. Student Q_s = [[1, 0], [0, 2]] (as a [2, 1, 1, 2] map): G_s = [[1, 0], [0, 4]], rows
  // normalised -> I. Teacher Q_t = [[1, 1, 0], [1, 1, 0]] (as [2, 3] vectors): G_t = [[2, 2], [2, 2]]
  // -> every entry 1/sqrt(2). ||G_t - G_s||_F^2 = 2 (1 - 1/sqrt2)^2 + 2 (1/sqrt2)^2 = (3 - 2 sqrt2) + 1
  // = 4 - 2 sqrt2; over B^2 = 4: 1 - sqrt2 / 2.
  Tensor fs = Tensor::from_vector({1, 0, 0, 2}, {2, 1, 1, 2}, DType::f64);
  Tensor ft = Tensor::from_vector({1, 1, 0, 1, 1, 0}, {2, 3}, DType::f64);
  check_close(transfer::sp_similarity(fs), {1, 0, 0, 1}, 1e-12);
  const double r = 1 / std::sqrt(2.0);
  check_close(transfer::sp_similarity(ft), {r, r, r, r}, 1e-12);
  check_close(transfer::sp_loss(fs, ft), {1 - std::sqrt(2.0) / 2}, 1e-12);
  // B = 3 (the division is by B^2): orthogonal student rows -> G_s = I; equal teacher rows -> every
  // entry 1/sqrt3. 3 (1 - 1/sqrt3)^2 + 6 / 3 = (4 - 2 sqrt3) + 2 = 6 - 2 sqrt3, over 9.
  Tensor gs = Tensor::from_vector({3, 0, 0, 0, 1, 0, 0, 0, 2}, {3, 3}, DType::f64);
  Tensor gt = Tensor::from_vector({1, 2, 1, 2, 1, 2}, {3, 1, 2}, DType::f64);  // tokens-shaped [3, 1, 2]
  check_close(transfer::sp_loss(gs, gt), {(6 - 2 * std::sqrt(3.0)) / 9}, 1e-12);
  // the same similarities give 0 whatever the feature widths (rows scaled, widths padded)
  check_close(transfer::sp_loss(gs, concat({mul(gs, 2.0), Tensor::zeros({3, 2}, DType::f64)}, 1)), {0.0}, 1e-12);
  CHECK_THROWS_WITH_AS(transfer::sp_loss(gs, ft), doctest::Contains("must have the same batch size"), Error);
}

TEST_CASE("sp: gradient checks w.r.t. the student tap (map, tokens and vector shapes)") {
  Tensor t = random_tensor({4, 3, 2, 2}, 41);
  for (const Shape& shape : {Shape{4, 2, 3, 3}, Shape{4, 5, 6}, Shape{4, 7}})
    retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::sp_loss(in[0], t); },
                            {random_tensor(shape, 42)});
}

TEST_CASE("sp: matches RepDistiller's Similarity on the reference fixture") {
  for (DType dtype : {DType::f64, DType::f32}) {
    // loaded per dtype: input() in f64 hands out (and marks requires_grad on) the stored tensor
    const auto f = retort::test::load_loss_fixture("sp");
    CHECK(f.meta("reference").find("RepDistiller") != std::string::npos);
    Tensor s = f.input("s", dtype), t = f.input("t", dtype);
    retort::test::check_loss_fixture(f, transfer::sp_loss(s, t), {{"s", s}}, dtype);
  }
}

TEST_CASE("sp: registry defaults, resnet8 <-> vit_tiny with any tap shapes") {
  auto resnet = models::create_model("resnet8", fmnist_config(1));
  auto wrn = models::create_model("wrn_16_2", fmnist_config(2));
  auto vit = models::create_model("vit_tiny", fmnist_config(3));
  const Recipe r = loss_recipe("{ name = \"sp\", teacher = \"t\" }");
  CHECK(r.stages[0].losses[0].weight == transfer::kSpDefaultWeight);
  auto def = build_term("{ name = \"sp\", teacher = \"t\" }", resnet, wrn);
  CHECK(def->student_taps() == std::vector<std::string>{"stage3"});
  CHECK(def->teacher_taps() == std::vector<std::string>{"stage3"});
  CHECK(def->teachers() == std::vector<std::string>{"t"});
  CHECK(def->parameters().empty());
  check_trains_student(*def, *resnet, *wrn, {.batch = 3, .seed = 98});
  // resnet8 stage3 [B, 64, 7, 7] against the ViT's last tokens [B, 50, 192]
  resnet->zero_grad();
  auto r2v = build_term("{ name = \"sp\", teacher = \"t\", teacher_tap = \"tokens.1\" }", resnet, vit);
  check_trains_student(*r2v, *resnet, *vit, {.batch = 3, .seed = 98});
  // a ViT student's CLS vector [B, 192] against wrn_16_2's stage3 map [B, 128, 7, 7]
  auto v2r = build_term("{ name = \"sp\", teacher = \"t\", student_tap = \"pooled\" }", vit, wrn);
  check_trains_student(*v2r, *vit, *wrn, {.batch = 3, .seed = 98});
}

TEST_CASE("sp: errors name the recipe line and the tap") {
  auto resnet = models::create_model("resnet8", fmnist_config(4));
  auto vit = models::create_model("vit_tiny", fmnist_config(5));
  CHECK_THROWS_WITH_AS(build_term("{ name = \"sp\", teacher = \"t\", student_tap = \"stage9\" }", resnet, resnet),
                       doctest::Contains("p.toml:11: sp: the student (resnet-cifar) has no tap 'stage9'; its taps "
                                         "are: stem, stage1"),
                       Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"sp\", teacher = \"t\" }", resnet, vit),
                       doctest::Contains("p.toml:11: sp: the teacher 't' (vit) has no tap 'stage3'"), Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"sp\", teacher = \"t\" }", resnet, vit),
                       doctest::Contains("set `teacher_tap`"), Error);
  CHECK_THROWS_WITH_AS(loss_recipe("{ name = \"sp\", teacher = \"t\", student_tap = 3 }"),
                       doctest::Contains("student_tap"), Error);
}
