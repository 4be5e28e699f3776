// One optimisation step of a stage, shared by the trainer (train/trainer.cpp) and the step
// benchmark (`retort bench`, train/step_bench.cpp): teachers forward (no grad, or from a
// feature cache) -> student forward with taps -> weighted loss terms, under the stage's
// precision (engine/autocast.h) -> backward -> clip -> optimizer step. The step makes no host
// read: its loss, hits and finiteness go to device-side accumulators (train/step_health.h) read
// once per interval, and a non-finite loss makes the optimizer skip its update on the device.
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
#include "train/step_health.h"
#include "train/step_log.h"
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

// The teachers a stage's steps run: frozen inference copies with BatchNorm folded
// (models/fold_batch_norm.h) where stage.teacher_inference asks for them (auto: on CUDA), else the
// teachers themselves. The originals stay as they are (the losses read their modules).
using TeacherMap = std::map<std::string, std::shared_ptr<models::Model>>;
TeacherMap stage_teachers(const StageSpec& stage, const TeacherMap& teachers, Device device);

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
  double loss = 0;         // the weighted total, read on the host (data parallelism only; see StepHealth)
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
};
// Teachers forward (or their cache), student forward with taps, the weighted loss terms; with a
// probe (a logged step), also each term's value and step statistics (Loss::step_stats).
StepForward forward_losses(const StepParts& parts, const Tensor& x, const Tensor& y,
                           const std::vector<int64_t>* positions, const transfer::StepClock& clock,
                           StepProbe* probe = nullptr);
// The error for a non-finite total, naming the first non-finite term (`terms`: each term's value).
[[noreturn]] void fail_nonfinite_loss(const StepParts& parts, const std::vector<double>& terms, double total,
                                      const std::string& where);
// Each term's value on the host (one read per term: the data-parallel path's error message).
std::vector<double> term_values(const StepForward& f);
// zero_grad, then backward from the total.
void backward_losses(const StepParts& parts, const StepForward& f);
// The global L2 norm of the trained tensors' gradients, on the device, every step: the stage's
// clipping by it when asked (clip_grad_norm > 0), and to `probe` on a logged step. It is not
// finite exactly when a gradient is not, which a finite loss does not rule out (sqrt at 0, an
// overflow in a bf16 backward), so every step checks it, clipping or not.
Tensor clip_and_measure_gradients(const StepParts& parts, StepProbe* probe = nullptr);
// The norm (above) to `health`, then the optimizer's step, skipped on the device once `health`
// saw a non-finite loss or gradient norm in its interval.
void update_parameters(const StepParts& parts, StepHealth& health, StepProbe* probe = nullptr);
// The data-parallel form: the norm read on the host (every rank holds the same reduced
// gradients, so every rank decides alike) and the run stopped, naming `where()`, before a
// non-finite gradient reaches the weights.
void update_parameters_checked(const StepParts& parts, const std::function<std::string()>& where);
// The error for a bad step found by a StepHealth read: a non-finite loss (naming the term) or a
// non-finite gradient norm under a finite loss.
[[noreturn]] void fail_nonfinite_step(const StepParts& parts, const StepHealth::Reading& r, const std::string& where);

// One step on batch x (labels y, undefined on unlabelled data); `positions` index the feature
// caches (may be null without caches); `clock` says where the step stands (loss warm-ups).
// No host read: the loss, hits and finiteness go to `health`, whose reader stops the run on a
// non-finite loss (the optimizer skipped that step's update on the device). A probe (a logged
// step) receives the step's terms, gradient norm and step statistics, still on the device.
StepOutput train_step(const StepParts& parts, const Tensor& x, const Tensor& y, const std::vector<int64_t>* positions,
                      const transfer::StepClock& clock, StepHealth& health, StepProbe* probe = nullptr);

}  // namespace retort
