// One optimisation step of a stage, shared by the trainer (train/trainer.cpp) and the step
// benchmark (`retort bench`, train/step_bench.cpp): teachers forward (no grad, or from a
// feature cache) -> student forward with taps -> weighted loss terms (one host read of the
// total; NaN/Inf stops naming the step and the term) -> backward -> clip -> optimizer step.
// Also the stage set-up both need: which parameters train, and the optimizer over them.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include "engine/optim/optimizer.h"
#include "models/model.h"
#include "train/recipe.h"
#include "train/trainer.h"
#include "transfer/feature_cache.h"

namespace retort {

// Sets which of the student's parameters train (all, or only its head: a linear probe) and
// re-initialises the head when the stage asks for it.
void prepare_trainable(const StageSpec& stage, models::Model& student, uint64_t seed);

// The optimizer of a stage: the stage's settings over the student's trained parameters and the
// losses' learned parts, a group of their own for loss parts with their own lr or weight decay.
struct StageOptimizer {
  std::unique_ptr<Optimizer> optimizer;
  nn::NamedTensors trained;  // every trained tensor (what clip_grad_norm sees)
};
StageOptimizer make_stage_optimizer(const StageSpec& stage, const models::Model& student,
                                    const std::vector<std::unique_ptr<transfer::Loss>>& losses);

// What one step touches; built once per stage.
struct StepParts {
  const StageSpec* stage = nullptr;
  models::Model* student = nullptr;
  const std::map<std::string, std::shared_ptr<models::Model>>* teachers = nullptr;
  StageLosses* losses = nullptr;
  Optimizer* optimizer = nullptr;
  const nn::NamedTensors* trained = nullptr;  // clipped when stage->clip_grad_norm > 0
  const std::map<std::string, transfer::TeacherFeatureCache>* caches = nullptr;  // may be null
  int64_t dataset_size = 0;  // the stage's training examples (what a batch's positions index)
};

struct StepOutput {
  double loss = 0;         // the weighted total, read on the host
  Tensor student_logits;   // detached
  int64_t seen = 0;  // images of the step (under data parallelism: of every rank's slice)
  // Data parallelism (train/data_parallel.h): top-1 hits over every rank's slice (< 0: not
  // counted here), and the largest pending signal over the ranks.
  int64_t top1_hits = -1;
  int signal = 0;
};

// The pieces of a step, in order (train_step runs them once; the data-parallel step once per
// slice of the global batch).
struct StepForward {
  Tensor total;                // the weighted sum of the loss terms
  std::vector<Tensor> terms;   // each term, unweighted
  Tensor student_logits;
  double value = 0;            // total, read on the host
};
// Teachers forward (or their cache), student forward with taps, the weighted loss terms.
StepForward forward_losses(const StepParts& parts, const Tensor& x, const Tensor& y,
                           const std::vector<int64_t>* positions, const transfer::StepClock& clock);
// The error for a non-finite total, naming the first non-finite term.
[[noreturn]] void fail_nonfinite_loss(const StepParts& parts, const StepForward& f,
                                      const std::function<std::string()>& where);
// zero_grad, then backward from the total.
void backward_losses(const StepParts& parts, const StepForward& f);
// Gradient clipping (when the stage asks) and the optimizer's step.
void update_parameters(const StepParts& parts);

// One step on batch x (labels y, undefined on unlabelled data); `positions` index the feature
// caches (may be null without caches); `clock` says where the step stands (loss warm-ups).
// `where` names the step in a non-finite-loss error.
StepOutput train_step(const StepParts& parts, const Tensor& x, const Tensor& y, const std::vector<int64_t>* positions,
                      const transfer::StepClock& clock, const std::function<std::string()>& where);

}  // namespace retort
