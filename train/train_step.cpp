// One optimisation step of a stage and the set-up it needs (see train/train_step.h).
#include "train/train_step.h"
#include <cmath>
#include "engine/autocast.h"
#include "engine/autograd.h"
#include "engine/memory_format.h"
#include "engine/error.h"
#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "engine/optim/adamw.h"
#include "engine/optim/clip.h"
#include "engine/optim/sgd.h"
#include "engine/profiler.h"
#include "models/fold_batch_norm.h"

namespace retort {
namespace {

// The classifier head of `model` (a Linear child named by head_name()).
nn::Linear& head_of(models::Model& model) {
  auto* head = dynamic_cast<nn::Linear*>(model.child(model.head_name()));
  RETORT_CHECK(head, "model {} has no Linear head named '{}'", model.type_name(), model.head_name());
  return *head;
}

// The stage's groups over `params`, then the loss terms' own groups (e.g. AFT's rho) after them.
std::unique_ptr<Optimizer> make_optimizer(const OptimizerSettings& s, const nn::NamedTensors& params,
                                          std::vector<ParamGroup> own_groups) {
  auto groups = make_param_groups(params, s.lr, s.weight_decay, s.no_decay_norm_bias);
  for (auto& g : own_groups)
    if (!g.params.empty()) groups.push_back(std::move(g));
  if (s.type == OptimizerKind::sgd) return std::make_unique<SGD>(std::move(groups), SgdOptions{s.momentum, s.nesterov});
  RETORT_CHECK(s.betas.size() == 2, "adamw: betas must have two values");
  return std::make_unique<AdamW>(std::move(groups), AdamWOptions{s.betas[0], s.betas[1], s.eps});
}

// Teachers' taps for this batch: from the feature cache when there is one, else a forward.
std::map<std::string, models::Taps> teacher_taps(const StepParts& parts, const Tensor& x,
                                                 const std::vector<int64_t>* positions) {
  NoGradGuard no_grad;
  std::map<std::string, models::Taps> out;
  for (auto& [name, model] : *parts.teachers) {
    if (!parts.losses->teacher_taps.count(name)) continue;
    if (parts.caches)
      if (auto c = parts.caches->find(name); c != parts.caches->end()) {
        out[name] = c->second.gather(*positions, x.device());
        continue;
      }
    models::Taps taps;
    Tensor logits = model->forward(x, &taps);
    taps["logits"] = logits;
    out[name] = std::move(taps);
  }
  return out;
}

}  // namespace

TeacherMap stage_teachers(const StageSpec& stage, const TeacherMap& teachers, Device device) {
  const bool fold = stage.teacher_inference == TeacherInference::folded ||
                    (stage.teacher_inference == TeacherInference::auto_ && device.is_cuda());
  if (!fold) return teachers;
  TeacherMap out;
  for (const auto& [name, model] : teachers) out[name] = models::make_frozen_inference_copy(*model);
  return out;
}

void prepare_trainable(const StageSpec& stage, models::Model& student, uint64_t seed) {
  switch (stage.trainable) {
    case Trainable::all: student.requires_grad_(true); break;
    case Trainable::head:
      student.requires_grad_(false);
      head_of(student).requires_grad_(true);
      break;
    case Trainable::none: student.requires_grad_(false); break;  // only the losses' own parts train
  }
  if (stage.reset_head) {
    Generator head_gen(seed ^ std::hash<std::string>{}(stage.name + "/head"));
    head_of(student).reset_parameters(head_gen);
  }
}

StageOptimizer make_stage_optimizer(const StageSpec& stage, const models::Model& student,
                                    const std::vector<std::unique_ptr<transfer::Loss>>& losses) {
  StageOptimizer out;
  for (auto& [n, t] : student.named_parameters())
    if (t.requires_grad()) out.trained.push_back({n, t});
  nn::NamedTensors stage_params = out.trained;  // those under the stage's settings
  std::vector<ParamGroup> own_groups;
  for (size_t i = 0; i < losses.size(); ++i)
    for (auto& group : losses[i]->param_groups()) {
      nn::NamedTensors named;
      for (auto& [n, t] : group.params) named.push_back({fmt::format("loss{}.{}", i, n), t});
      out.trained.insert(out.trained.end(), named.begin(), named.end());
      if (!group.lr && !group.weight_decay && group.rule == GroupRule::optimizer) {
        stage_params.insert(stage_params.end(), named.begin(), named.end());
        continue;
      }
      ParamGroup pg;
      pg.lr = group.lr.value_or(stage.optimizer.lr);
      pg.weight_decay = group.weight_decay.value_or(stage.optimizer.weight_decay);
      pg.rule = group.rule;
      pg.name = fmt::format("loss{}", i);
      for (auto& [n, t] : named)
        if (t.requires_grad()) {
          pg.params.push_back(t);
          pg.names.push_back(n);
        }
      own_groups.push_back(std::move(pg));
    }
  out.optimizer = make_optimizer(stage.optimizer, stage_params, std::move(own_groups));
  return out;
}

namespace {
using profiler::Kind;
using profiler::Range;

// A logged step's terms and the terms' own statistics, under no grad, on the step's inputs.
void probe_losses(const StepParts& parts, const transfer::StepInputs& in, const StepForward& f, StepProbe& probe) {
  NoGradGuard no_grad;
  const std::vector<std::string> labels = term_labels(*parts.stage);
  for (size_t i = 0; i < f.terms.size(); ++i) {
    probe.terms.push_back(f.terms[i].detach());
    for (const auto& [name, value] : parts.losses->losses[i]->step_stats(in))
      probe.stats.emplace_back(labels[i] + "." + name, value.detach());
  }
}
}  // namespace

StepForward forward_losses(const StepParts& parts, const Tensor& x, const Tensor& y,
                           const std::vector<int64_t>* positions, const transfer::StepClock& clock,
                           StepProbe* probe) {
  AutocastScope precision(parts.stage->precision);
  DeferLabelCheck labels_checked_on_load;
  const Tensor xm = to_memory_format(x, parts.stage->memory_format);  // what the models see
  std::map<std::string, models::Taps> teachers;
  {
    Range phase("teacher forward", Kind::phase);
    teachers = teacher_taps(parts, xm, positions);
  }
  models::Taps staps;
  {
    Range phase("student forward", Kind::phase);
    staps["logits"] = parts.student->forward(xm, parts.losses->student_taps.size() > 1 ? &staps : nullptr);
  }
  Range phase("losses", Kind::phase);
  StepForward f;
  transfer::StepInputs in{x, y, &staps, &teachers, positions, positions ? parts.dataset_size : 0, clock};
  const auto& losses = parts.losses->losses;
  for (size_t i = 0; i < losses.size(); ++i) {
    f.terms.push_back(losses[i]->compute(in));
    Tensor weighted = mul(f.terms.back(), parts.losses->weights[i]);
    f.total = f.total.defined() ? add(f.total, weighted) : weighted;
  }
  f.student_logits = staps["logits"].detach();
  if (probe) probe_losses(parts, in, f, *probe);
  return f;
}

void fail_nonfinite_loss(const StepParts& parts, const std::vector<double>& terms, double total,
                         const std::string& where) {
  std::string culprit = "total", shown = fmt::format("{}", total);
  for (size_t i = 0; i < terms.size(); ++i)
    if (!std::isfinite(terms[i])) {
      culprit = parts.stage->losses[i].name;
      shown = fmt::format("{}", terms[i]);
      break;
    }
  fail("{}: loss '{}' is {}; stopping", where, culprit, shown);
}

std::vector<double> term_values(const StepForward& f) {
  std::vector<double> out;
  for (const auto& t : f.terms) out.push_back(t.item());
  return out;
}

void backward_losses(const StepParts& parts, const StepForward& f) {
  Range phase("backward", Kind::phase);
  AutocastScope precision(parts.stage->precision);  // casts nothing in backward; keeps TF32
  parts.optimizer->zero_grad();
  f.total.backward();
}

Tensor clip_and_measure_gradients(const StepParts& parts, StepProbe* probe) {
  std::vector<Tensor> ps;
  for (auto& [n, t] : *parts.trained) ps.push_back(t);
  const double max_norm = parts.stage->clip_grad_norm;
  const Tensor norm = max_norm > 0 ? clip_grad_norm_on_device(ps, max_norm) : gradient_norm_on_device(ps);
  if (probe) probe->grad_norm = norm;
  return norm;
}

void update_parameters(const StepParts& parts, StepHealth& health, StepProbe* probe) {
  Range phase("optimizer", Kind::phase);
  health.record_gradient_norm(clip_and_measure_gradients(parts, probe));
  parts.optimizer->step(health.skip_flag());
}

void update_parameters_checked(const StepParts& parts, const std::function<std::string()>& where) {
  Range phase("optimizer", Kind::phase);
  const double norm = clip_and_measure_gradients(parts).item();
  if (!std::isfinite(norm))
    fail("{}: the gradient norm is {} while every loss term is finite (a gradient is NaN or infinite); stopping",
         where(), std::isnan(norm) ? "NaN" : "infinite");
  parts.optimizer->step();
}

void fail_nonfinite_step(const StepParts& parts, const StepHealth::Reading& r, const std::string& where) {
  if (r.gradient_at_first_bad)
    fail("{}: the gradient norm is not finite while every loss term is (a gradient is NaN or infinite); stopping",
         where);
  fail_nonfinite_loss(parts, r.terms_at_first_bad, NAN, where);
}

StepOutput train_step(const StepParts& parts, const Tensor& x, const Tensor& y, const std::vector<int64_t>* positions,
                      const transfer::StepClock& clock, StepHealth& health, StepProbe* probe) {
  StepForward f = forward_losses(parts, x, y, positions, clock, probe);
  health.record(f.total, f.terms, f.student_logits, y);
  backward_losses(parts, f);
  update_parameters(parts, health, probe);
  StepOutput out;
  out.student_logits = f.student_logits;
  out.seen = x.size(0);
  return out;
}

}  // namespace retort
