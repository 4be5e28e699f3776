// Building a stage's loss terms (see train/stage_losses.h).
#include "train/stage_losses.h"
#include "engine/error.h"

namespace retort {

StageLosses build_stage_losses(const Recipe& recipe, const StageSpec& stage, std::shared_ptr<models::Model> student,
                               const std::map<std::string, std::shared_ptr<models::Model>>& teachers,
                               const Shape& input_shape, Device device, uint64_t seed, bool labelled,
                               int64_t dataset_size, const transfer::EarlierLossState& earlier_loss_state) {
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
    ctx.dataset_size = dataset_size;
    ctx.earlier_loss_state = earlier_loss_state;
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
  if (stage.trainable == Trainable::none) {
    bool learns = false;
    for (const auto& l : out.losses) learns |= !l->param_groups().empty();
    RETORT_CHECK(learns, "{}: stage '{}' has trainable = \"none\" but none of its loss terms has parameters of its "
                 "own, so nothing would train", recipe.where(stage.pos), stage.name);
  }
  return out;
}

nn::NamedTensors loss_state(const std::vector<std::unique_ptr<transfer::Loss>>& losses) {
  nn::NamedTensors out;
  for (size_t i = 0; i < losses.size(); ++i) {
    for (auto& [n, t] : losses[i]->parameters()) out.push_back({fmt::format("loss{}.{}", i, n), t});
    for (auto& [n, t] : losses[i]->buffers()) out.push_back({fmt::format("loss{}.{}", i, n), t});
  }
  return out;
}

std::map<std::string, Tensor> loss_term_state(const std::map<std::string, Tensor>& state, size_t index) {
  const std::string prefix = fmt::format("loss{}.", index);
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : state)
    if (name.rfind(prefix, 0) == 0) out[name.substr(prefix.size())] = t;
  return out;
}

}  // namespace retort
