// Building a stage's loss terms (see train/stage_losses.h).
#include "train/stage_losses.h"
#include "engine/error.h"

namespace retort {

StageLosses build_stage_losses(const Recipe& recipe, const StageSpec& stage, std::shared_ptr<models::Model> student,
                               const std::map<std::string, std::shared_ptr<models::Model>>& teachers,
                               const Shape& input_shape, Device device, uint64_t seed, bool labelled) {
  StageLosses out;
  out.student_taps.insert("logits");
  for (const auto& term : stage.losses) {
    const LossArgs args = loss_args(recipe, term);
    transfer::BuildContext ctx;
    ctx.args = &args;
    ctx.student = student;
    ctx.teachers = teachers;
    ctx.input_shape = input_shape;
    ctx.device = device;
    ctx.seed = seed;
    auto loss = transfer::build_loss(ctx);
    RETORT_CHECK(!loss->needs_labels() || labelled, "{}: loss '{}' needs labels, but stage '{}' trains on unlabelled data",
                 recipe.where(term.pos), term.name, stage.name);
    for (const auto& t : loss->teachers())
      RETORT_CHECK(teachers.count(t), "{}: loss '{}' reads teacher '{}', which is not in stage '{}' teachers",
                   recipe.where(term.pos), term.name, t, stage.name);
    for (const auto& t : loss->student_taps()) out.student_taps.insert(t);
    for (const auto& t : loss->teachers())
      for (const auto& tap : loss->teacher_taps()) out.teacher_taps[t].insert(tap);
    out.losses.push_back(std::move(loss));
    out.weights.push_back(term.weight);
  }
  return out;
}

}  // namespace retort
