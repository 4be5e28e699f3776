// FitNets hint loss: learned regressor (transfer/adapters.h) + mean squared error to the teacher tap.
#include "transfer/fitnet.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace retort::transfer {

Tensor fitnet_loss(const Tensor& regressed_student, const Tensor& teacher_features) {
  RETORT_CHECK(regressed_student.shape() == teacher_features.shape(),
               "fitnet: regressed student features {} and teacher features {} differ in shape",
               regressed_student.str(), teacher_features.str());
  return mse_loss(regressed_student, teacher_features.detach(), Reduction::mean);
}

FitNetLoss::FitNetLoss(std::string teacher, const models::TapInfo& s, const models::TapInfo& t, Device device,
                       uint64_t seed, PoolMode pool, bool conv_reg)
    : teacher_(std::move(teacher)), student_tap_(s.name), teacher_tap_(t.name) {
  Generator gen(seed ^ 0xf17e7ull);
  AdapterOptions o;
  o.loss = "fitnet";
  o.pool = pool;
  o.always_project = true;
  o.batch_norm = true;
  o.conv_reg = conv_reg;
  o.relu = conv_reg;
  adapter_ = make_tap_adapter(s, t, gen, o);
  adapter_.student->to(device);
}

Tensor FitNetLoss::compute(const Tensor& student_features, const Tensor& teacher_features) {
  Tensor target;
  {
    NoGradGuard no_grad;
    target = adapter_.teacher->forward(teacher_features.detach());
  }
  Tensor hint = fitnet_loss(adapter_.student->forward(student_features), target);
  last_hint_ = hint.detach();
  return hint;
}

Tensor FitNetLoss::compute(const StepInputs& in) {
  return compute(in.student_tap(student_tap_), in.teacher_tap(teacher_, teacher_tap_));
}

std::map<std::string, Tensor> FitNetLoss::step_stats(const StepInputs& in) const {
  (void)in;  // the step's inputs are those of the last compute()
  if (!last_hint_.defined()) return {};
  return {{"hint", last_hint_}};
}

nn::NamedTensors FitNetLoss::parameters() const {
  nn::NamedTensors out;
  for (auto& [n, t] : adapter_.student->named_parameters()) out.push_back({"regressor." + n, t});
  return out;
}
nn::NamedTensors FitNetLoss::buffers() const {
  nn::NamedTensors out;
  for (auto& [n, t] : adapter_.student->named_buffers()) out.push_back({"regressor." + n, t});
  return out;
}
void FitNetLoss::train(bool on) { adapter_.student->train(on); }

std::unique_ptr<FitNetLoss> make_fitnet_loss(const models::Model& student, const models::Model& teacher,
                                             const std::string& teacher_name, const std::string& student_tap,
                                             const std::string& teacher_tap, const Shape& input, Device device,
                                             uint64_t seed, PoolMode pool, bool conv_reg) {
  auto s = find_tap(student, student_tap, input, "fitnet", "student");
  auto t = find_tap(teacher, teacher_tap, input, "fitnet", "teacher '" + teacher_name + "'");
  return std::make_unique<FitNetLoss>(teacher_name, s, t, device, seed, pool, conv_reg);
}

void register_fitnet_loss() {
  register_loss(
      "fitnet",
      {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher model giving the hint"),
       ParamSpec("student_tap", ValueKind::string, kFitNetDefaultTap, "the student's guided tap"),
       ParamSpec("teacher_tap", ValueKind::string, kFitNetDefaultTap, "the teacher's hint tap"),
       ParamSpec("regressor", ValueKind::string, "convreg",
                 "convreg (RepDistiller: learned resampling conv + BN + ReLU; Linear + ReLU for vectors) | "
                 "projection (pool the larger map, 1x1 conv + BN; Linear)")
           .one_of({"convreg", "projection"}),
       ParamSpec("pool", ValueKind::string, "avg", "regressor = projection: how the larger map is pooled: avg | max")
           .one_of({"avg", "average", "max"})},
      "FitNets hints: mean (regressor(f_s) - f_t)^2, RepDistiller's ConvReg regressor; weight 100",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          const models::Model& teacher = stage_teacher(c);
          return make_fitnet_loss(stage_student(c), teacher, c.args->string("teacher"), c.args->string("student_tap"),
                                  c.args->string("teacher_tap"), c.input_shape, c.device, c.seed,
                                  parse_pool_mode(c.args->string("pool"), "fitnet"),
                                  c.args->string("regressor") == "convreg");
        });
      },
      kFitNetDefaultWeight);
}

}  // namespace retort::transfer
