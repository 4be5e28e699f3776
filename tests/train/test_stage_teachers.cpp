// The teachers a stage's steps run (train/train_step.h, stage_teachers): folded inference copies
// when teacher_inference asks (auto: on CUDA), the teachers themselves otherwise; a KD step with
// folded teachers runs the fused op and no teacher BatchNorm, and its loss matches the unfolded
// step's to f32 rounding.
#include <doctest/doctest.h>
#include <algorithm>
#include <cmath>
#include "engine/autograd.h"
#include "helpers.h"
#include "recipe_test_util.h"
#include "models/registry.h"
#include "train/profile_run.h"
#include "train/recipe.h"
#include "train/train_step.h"

using namespace retort;

namespace {

const std::string kRecipe =
    test::tiny_kd_recipe(R"({ name = "ce", weight = 0.1 }, { name = "kd", teacher = "teacher", weight = 0.9 })");
// Calls per step of `op` in a profile.
double calls_of(const ProfileResult& r, const std::string& op) {
  for (const auto& o : r.summary.ops)
    if (o.name == op) return double(o.calls);
  return 0;
}

}  // namespace

TEST_CASE("stage teachers: auto keeps the teachers on the CPU; folded makes frozen copies") {
  models::ModelConfig cfg;
  cfg.in_channels = 1;
  const TeacherMap teachers{{"teacher", models::create_model("resnet8", cfg)}};
  teachers.at("teacher")->eval();
  StageSpec stage;
  CHECK(stage_teachers(stage, teachers, Device::cpu()).at("teacher") == teachers.at("teacher"));
  stage.teacher_inference = TeacherInference::as_is;
  CHECK(stage_teachers(stage, teachers, Device::cpu()).at("teacher") == teachers.at("teacher"));
  stage.teacher_inference = TeacherInference::folded;
  const auto folded = stage_teachers(stage, teachers, Device::cpu()).at("teacher");
  CHECK(folded != teachers.at("teacher"));
  const Tensor x = test::random_tensor({4, 1, 28, 28}, 3, -1, 1, DType::f32);
  NoGradGuard no_grad;
  CHECK(test::max_rel_error(folded->forward(x), teachers.at("teacher")->forward(x)) < 1e-5);
}

TEST_CASE("stage teachers: a KD step with folded teachers runs the fused op and no teacher BatchNorm") {
  ProfileOptions options;
  options.warmup = 1;
  options.steps = 1;
  const ProfileResult as_is = profile_stage(parse_recipe(kRecipe, "folding.toml"), options);
  const ProfileResult folded = profile_stage(
      parse_recipe(kRecipe, "folding.toml", {"stages.kd.teacher_inference=\"folded\""}), options);
  // resnet8 has 9 BatchNorms (run as batch_norm2d, or batch_norm2d_act where a ReLU or a
  // residual fuses in): the student keeps its 9 (forward and backward), the teacher's 9 become
  // fused convolutions.
  const auto batch_norms = [](const ProfileResult& r) {
    return calls_of(r, "batch_norm2d") + calls_of(r, "batch_norm2d_act");
  };
  CHECK(batch_norms(as_is) == batch_norms(folded) + 9);
  CHECK(calls_of(as_is, "conv2d_bias_act") == 0);
  CHECK(calls_of(folded, "conv2d_bias_act") == 9);
}
