// AT (attention transfer): hand-computed values (p = 2 and p = 1, pooling before the maps are
// formed), f64 gradient checks (maps of differing sizes, p = 3, ViT tokens), the torchdistill /
// RepDistiller reference fixtures, ResNet <-> ViT through the registry, and the errors.
#include <cmath>
#include "helpers.h"
#include "loss_fixture.h"
#include "loss_test_util.h"
#include "transfer/at.h"

using namespace retort;
using models::TapInfo;
using retort::test::build_term;
using retort::test::check_close;
using retort::test::check_trains_student;
using retort::test::fmnist_config;
using retort::test::loss_recipe;
using retort::test::random_tensor;

namespace {
constexpr int64_t kVitDepth = 3;  // ViT: three blocks give tokens.0..tokens.2
}  // namespace

TEST_CASE("at: hand-computed attention maps and loss (p = 2, p = 1)") {
  // B = 2, 2x2 maps (positions in row-major order), p = 2, student C = 2, teacher C = 1.
  //   student ex0: ch0 = [2, 2, 1, 0], ch1 = [0, 0, 1, 0]: mean_c f^2 = [2, 2, 1, 0], norm 3
  //                -> a = [2/3, 2/3, 1/3, 0]
  //   student ex1: ch0 = [-1, 0, 0, 0], ch1 = [1, 0, 0, 0]: mean_c f^2 = [1, 0, 0, 0] -> [1, 0, 0, 0]
  //   teacher ex0: [1, 1, 1, 1] -> [1/2, 1/2, 1/2, 1/2];  ex1: [0, 3, 0, 0] -> [0, 9, 0, 0] -> [0, 1, 0, 0]
  //   differences ex0 [1/6, 1/6, -1/6, -1/2]: squares sum (1 + 1 + 1 + 9)/36 = 1/3
  //               ex1 [1, -1, 0, 0]: squares sum 2
  //   L = (1/3 + 2) / (B * H * W = 8) = 7/24
  Tensor fs = Tensor::from_vector({2, 2, 1, 0, 0, 0, 1, 0, -1, 0, 0, 0, 1, 0, 0, 0}, {2, 2, 2, 2}, DType::f64);
  Tensor ft = Tensor::from_vector({1, 1, 1, 1, 0, 3, 0, 0}, {2, 1, 2, 2}, DType::f64);
  Tensor a = transfer::attention_map(fs, 2.0);
  CHECK(a.shape() == Shape{2, 4});
  check_close(a, {2.0 / 3, 2.0 / 3, 1.0 / 3, 0, 1, 0, 0, 0}, 1e-12);
  check_close(transfer::at_stage_loss(fs, ft, 2.0), {7.0 / 24}, 1e-12);
  // stages add up, unweighted
  check_close(transfer::at_loss({fs, fs}, {ft, ft}, 2.0), {7.0 / 12}, 1e-12);

  // p = 1 uses |f| (RepDistiller's f.pow(1) would keep the sign): B = 1, student C = 2,
  //   ch0 = [-4, 2, 0, 0], ch1 = [0, 0, 4, 0]: mean_c |f| = [2, 1, 2, 0], norm 3 -> [2/3, 1/3, 2/3, 0]
  //   teacher [0, 0, 0, 5] -> [0, 0, 0, 1]; squared differences 4/9 + 1/9 + 4/9 + 1 = 2, over 4 -> 1/2
  Tensor gs = Tensor::from_vector({-4, 2, 0, 0, 0, 0, 4, 0}, {1, 2, 2, 2}, DType::f64);
  Tensor gt = Tensor::from_vector({0, 0, 0, 5}, {1, 1, 2, 2}, DType::f64);
  check_close(transfer::attention_map(gs, 1.0), {2.0 / 3, 1.0 / 3, 2.0 / 3, 0}, 1e-12);
  check_close(transfer::at_stage_loss(gs, gt, 1.0), {0.5}, 1e-12);
  // identical attention gives 0 whatever the channel counts
  check_close(transfer::at_stage_loss(ft, concat({ft, ft}, 1), 2.0), {0.0}, 1e-12);
}

TEST_CASE("at: the larger map is average-pooled before the attention map is formed") {
  // student 4x4 (C = 1): top-left 2x2 block [2, 0; 0, 2] (mean 1, mean of squares 2), other blocks 1.
  // Pooled to 2x2 first: [1, 1, 1, 1] -> a = [1/2, 1/2, 1/2, 1/2] (squaring first would give [2, 1, 1, 1]).
  // teacher 2x2 [0, 0, 0, 3] -> [0, 0, 0, 1]: differences [1/2, 1/2, 1/2, -1/2], squares sum 1, over 4 -> 1/4
  Tensor big = Tensor::from_vector({2, 0, 1, 1, 0, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 4, 4}, DType::f64);
  Tensor small = Tensor::from_vector({0, 0, 0, 3}, {1, 1, 2, 2}, DType::f64);
  check_close(transfer::at_stage_loss(big, small, 2.0), {0.25}, 1e-12);
  // the teacher map is the larger one: it is pooled instead, same value
  check_close(transfer::at_stage_loss(small, big, 2.0), {0.25}, 1e-12);
}

TEST_CASE("at: gradient checks w.r.t. the student maps (pooling both ways, p = 2 and 3, ViT tokens)") {
  const std::vector<Shape> s_shapes{{2, 3, 4, 4}, {2, 2, 2, 2}, {2, 4, 3, 3}};
  const std::vector<Shape> t_shapes{{2, 2, 2, 2}, {2, 3, 3, 3}, {2, 5, 3, 3}};
  std::vector<Tensor> s, t;
  for (size_t k = 0; k < s_shapes.size(); ++k) {
    s.push_back(random_tensor(s_shapes[k], 10 + k));
    t.push_back(random_tensor(t_shapes[k], 20 + k));
  }
  for (double p : {2.0, 3.0})
    retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::at_loss(in, t, p); }, s);
  // ViT tokens [B, 1 + 3*3, 4] as the student (CLS dropped, 3x3 grid) against a 6x6 teacher map
  transfer::AtLoss loss("t", {TapInfo{"tokens.0", {2, 10, 4}}}, {TapInfo{"stage1", {2, 3, 6, 6}}}, 2.0);
  Tensor tm = random_tensor({2, 3, 6, 6}, 30);
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return loss.compute(in, {tm}); },
                          {random_tensor({2, 10, 4}, 31)});
}

TEST_CASE("at: matches torchdistill's ATLoss(mode='code') and RepDistiller's Attention (fixtures)") {
  // "at": torchdistill, equal sizes (RepDistiller's value was checked equal when it was written);
  // "at_pool": RepDistiller, sizes differing both ways (the larger map pooled)
  for (const char* name : {"at", "at_pool"}) {
    for (DType dtype : {DType::f64, DType::f32}) {
      // loaded per dtype: input() in f64 hands out (and marks requires_grad on) the stored tensor
      const auto f = retort::test::load_loss_fixture(name);
      REQUIRE(f.number("p") == 2);
      if (std::string(name) == "at") CHECK(f.meta("repdistiller_agrees") == "yes");
      std::vector<Tensor> s, t;
      std::map<std::string, Tensor> inputs;
      for (int k = 0; k < 3; ++k) {
        s.push_back(f.input(fmt::format("s{}", k), dtype));
        t.push_back(f.input(fmt::format("t{}", k), dtype));
        inputs[fmt::format("s{}", k)] = s.back();
      }
      retort::test::check_loss_fixture(f, transfer::at_loss(s, t, 2.0), inputs, dtype);
    }
  }
}

TEST_CASE("at: registry defaults, resnet8 <-> vit_tiny both ways") {
  auto resnet = models::create_model("resnet8", fmnist_config(1, kVitDepth));
  auto wrn = models::create_model("wrn_16_2", fmnist_config(2, kVitDepth));
  auto vit = models::create_model("vit_tiny", fmnist_config(3, kVitDepth));  // 50 tokens: a 7x7 grid of 192 channels

  const Recipe r = loss_recipe("{ name = \"at\", teacher = \"t\" }");
  CHECK(r.stages[0].losses[0].weight == transfer::kAtDefaultWeight);
  CHECK(loss_args(r, r.stages[0].losses[0]).number("p") == 2.0);
  auto def = build_term("{ name = \"at\", teacher = \"t\" }", resnet, wrn);
  CHECK(def->student_taps() == std::vector<std::string>{"stage1", "stage2", "stage3"});
  CHECK(def->teacher_taps() == std::vector<std::string>{"stage1", "stage2", "stage3"});
  CHECK(def->teachers() == std::vector<std::string>{"t"});
  CHECK(def->parameters().empty());
  check_trains_student(*def, *resnet, *wrn, {.seed = 99});

  // resnet8 stage1..3 (28x28, 14x14, 7x7) against the ViT's token grids (7x7): the larger pooled
  resnet->zero_grad();
  auto r2v = build_term("{ name = \"at\", teacher = \"t\", teacher_taps = [\"tokens.0\", \"tokens.1\", \"tokens.2\"] }",
                        resnet, vit);
  CHECK(r2v->teacher_taps() == std::vector<std::string>{"tokens.0", "tokens.1", "tokens.2"});
  check_trains_student(*r2v, *resnet, *vit, {.seed = 99});

  // a ViT student learning the attention of a wrn_16_2 teacher
  auto v2r = build_term("{ name = \"at\", teacher = \"t\", student_taps = [\"tokens.0\", \"tokens.1\", \"tokens.2\"] }",
                        vit, wrn);
  check_trains_student(*v2r, *vit, *wrn, {.seed = 99});
}

TEST_CASE("at: errors name the recipe line, the key or tap, and the reason") {
  auto resnet = models::create_model("resnet8", fmnist_config(4, kVitDepth));
  auto vit = models::create_model("vit_tiny", fmnist_config(5, kVitDepth));
  // the default stage taps do not exist on a ViT: the error lists its taps and says what to name
  CHECK_THROWS_WITH_AS(build_term("{ name = \"at\", teacher = \"t\" }", resnet, vit),
                       doctest::Contains("p.toml:11: at: the teacher 't' (vit) has no tap 'stage1'; its taps are: "
                                         "tokens.0, tokens.1, tokens.2, cls, pooled"),
                       Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"at\", teacher = \"t\" }", resnet, vit),
                       doctest::Contains("name its token taps in `teacher_taps`"), Error);
  // a vector tap has no spatial attention
  CHECK_THROWS_WITH_AS(
      build_term("{ name = \"at\", teacher = \"t\", student_taps = [\"stage1\", \"stage2\", \"stage3\"], "
                 "teacher_taps = [\"tokens.0\", \"tokens.1\", \"pooled\"] }",
                 resnet, vit),
      doctest::Contains("p.toml:11: at: teacher tap 'pooled' is a vector [1, 192]; attention transfer needs a spatial "
                        "map"),
      Error);
  // a misspelt tap, unequal lists, a bad p (checked when the recipe is read), an unknown teacher
  CHECK_THROWS_WITH_AS(build_term("{ name = \"at\", teacher = \"t\", student_taps = [\"stage1\", \"stage7\", "
                                  "\"stage3\"] }",
                                  resnet, resnet),
                       doctest::Contains("at: the student (resnet-cifar) has no tap 'stage7'; its taps are: stem"),
                       Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"at\", teacher = \"t\", student_taps = [\"stage2\", \"stage3\"] }", resnet,
                                  resnet),
                       doctest::Contains("at: 2 student taps [stage2, stage3] but 3 teacher taps"), Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"at\", teacher = \"t\", p = 0.5 }", resnet, resnet),
                       doctest::Contains("p.toml:11: key 'p' in [stages.losses.at] must be"), Error);
  CHECK_THROWS_WITH_AS(loss_recipe("{ name = \"at\", teacher = \"t\", taps = [\"stage1\"] }"),
                       doctest::Contains("p.toml:11: unknown key 'taps' in [stages.losses.at]"), Error);
}
