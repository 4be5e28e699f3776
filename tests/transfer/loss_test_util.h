// What the transfer-loss tests (tests/transfer/test_<method>.cpp) share:
//   fmnist_config         small models for 1x28x28 (Fashion-MNIST) inputs
//   loss_recipe,          a loss term built as a stage builds it: read from a recipe snippet by
//   build_term            the recipe reader, then made by the loss registry from a BuildContext
//   forward_step          both models on one batch, the teacher without autograd, as StepInputs
//   check_trains_student  one step end to end: forward, compute, backward; gradients reach the
//                         student and the loss's own parameters, never the teacher or a buffer
#pragma once
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include "helpers.h"
#include "models/registry.h"
#include "train/recipe.h"
#include "transfer/loss_term.h"

namespace retort::test {

// A model config for 1x28x28 inputs; a ViT gets `depth` blocks (taps tokens.0..tokens.<depth-1>)
// and patches of `patch_size` (0: 4, a 7x7 token grid).
inline models::ModelConfig fmnist_config(uint64_t seed, int64_t depth = 2, int64_t patch_size = 0) {
  models::ModelConfig c;
  c.in_channels = 1;
  c.image_size = 28;
  c.seed = seed;
  c.depth = depth;
  c.patch_size = patch_size;
  return c;
}

// The recipe the registry tests build their terms in: teacher "t" (wrn_16_2), student "s"
// (resnet8), one stage; the `losses = [...]` line loss_recipe appends is line 11.
inline const std::string kLossTestRecipe = R"(
[models.t]
arch = "wrn_16_2"
weights = "t.safetensors"
[models.s]
arch = "resnet8"
[[stages]]
train = "s"
teachers = ["t"]
epochs = 1
)";

// `base` with `losses = [<losses>]` appended, read as the file `file` (its errors name
// "<file>:<line>").
inline Recipe loss_recipe(const std::string& losses, const std::string& file = "p.toml",
                          const std::string& base = kLossTestRecipe) {
  return parse_recipe(base + "losses = [" + losses + "]\n", file);
}

// What a stage adds to a term's BuildContext beyond its models (unset: outside a recipe run).
struct TermContext {
  int64_t dataset_size = 0;
  transfer::EarlierLossState earlier_loss_state{};
};

// The first term of the first stage of `r`, built through the loss registry with `student`, the
// stage's `teachers` by recipe name, 1x1x28x28 inputs and the CPU.
inline std::unique_ptr<transfer::Loss> build_term(const Recipe& r, std::shared_ptr<models::Model> student,
                                                  std::map<std::string, std::shared_ptr<models::Model>> teachers,
                                                  TermContext extra = {}) {
  const LossArgs args = loss_args(r, r.stages[0].losses[0]);
  transfer::BuildContext ctx;
  ctx.args = &args;
  ctx.student = std::move(student);
  ctx.teachers = std::move(teachers);
  ctx.input_shape = {1, 1, 28, 28};
  ctx.dataset_size = extra.dataset_size;
  ctx.earlier_loss_state = std::move(extra.earlier_loss_state);
  ctx.device = Device::cpu();
  return transfer::build_loss(ctx);
}
// The term `losses` (TOML, the inside of `losses = [...]`) of kLossTestRecipe read as `file`,
// built with `student` and `teacher` as the stage's teacher "t".
inline std::unique_ptr<transfer::Loss> build_term(const std::string& losses, std::shared_ptr<models::Model> student,
                                                  std::shared_ptr<models::Model> teacher,
                                                  const std::string& file = "p.toml") {
  return build_term(loss_recipe(losses, file), std::move(student), {{"t", std::move(teacher)}});
}

// True when some parameter of m has a gradient / a gradient with a nonzero entry.
inline bool any_grad(const models::Model& m) {
  for (const auto& p : m.parameters())
    if (p.grad().defined()) return true;
  return false;
}
inline bool any_nonzero_grad(const models::Model& m) {
  for (const auto& p : m.parameters())
    if (p.grad().defined())
      for (double v : p.grad().to_vector())
        if (v != 0.0) return true;
  return false;
}

// Both models' taps on the batch x as a training step computes them: the student with autograd,
// the teacher (recipe name `teacher_name`) under NoGradGuard. inputs() points into this object,
// so keep it alive while the StepInputs are used.
struct ForwardStep {
  Tensor x;
  Tensor y;  // labels (undefined: an unlabelled batch)
  models::Taps student;
  std::map<std::string, models::Taps> teachers;

  const models::Taps& teacher() const { return teachers.begin()->second; }
  transfer::StepInputs inputs() const { return {x, y, &student, &teachers}; }
};
inline ForwardStep forward_step(models::Model& student, models::Model& teacher, const Tensor& x,
                                const std::string& teacher_name = "t") {
  ForwardStep s;
  s.x = x;
  student.forward(x, &s.student);
  NoGradGuard ng;
  teacher.forward(x, &s.teachers[teacher_name]);
  return s;
}

// How check_trains_student runs and what it requires beyond its fixed checks.
struct StepCheck {
  int64_t batch = 2;           // a random batch [batch, 1, 28, 28] in [-1, 1), f32 ...
  uint64_t seed = 97;          // ... from this seed
  Tensor x{};                  // or this batch, when defined
  Tensor labels{};             // i64 [batch] labels (undefined: unlabelled)
  std::string teacher = "t";   // the teacher's name in the StepInputs
  bool positive = true;        // the loss is > 0 (not for a negative log-likelihood: VID)
  bool student_learns = true;  // the student gets a nonzero gradient; false: no gradient at all
  bool finite_grads = false;   // every entry of the student's gradients is finite
  bool has_params = false;     // the loss has parameters of its own
};

// One step through StepInputs: the loss is finite (and positive); after its backward the
// student has a nonzero gradient, every parameter of the loss a gradient, and no teacher
// parameter and no buffer of the loss has one.
inline void check_trains_student(transfer::Loss& loss, models::Model& student, models::Model& teacher,
                                 const StepCheck& o = {}) {
  const Tensor x = o.x.defined() ? o.x : random_tensor({o.batch, 1, 28, 28}, o.seed, -1, 1, DType::f32);
  ForwardStep step = forward_step(student, teacher, x, o.teacher);
  step.y = o.labels;
  Tensor l = loss.compute(step.inputs());
  REQUIRE(std::isfinite(l.item()));
  if (o.positive) CHECK(l.item() > 0);
  l.backward();
  if (o.finite_grads)
    for (const auto& p : student.parameters())
      if (p.grad().defined())
        for (double v : p.grad().to_vector()) REQUIRE(std::isfinite(v));
  if (o.student_learns)
    CHECK(any_nonzero_grad(student));
  else
    CHECK_FALSE(any_grad(student));
  if (o.has_params) CHECK_FALSE(loss.parameters().empty());
  for (const auto& [n, p] : loss.parameters()) CHECK_MESSAGE(p.grad().defined(), n);
  for (const auto& [n, b] : loss.buffers()) CHECK_FALSE_MESSAGE(b.grad().defined(), n);
  for (const auto& p : teacher.parameters()) CHECK_FALSE(p.grad().defined());
}

}  // namespace retort::test
