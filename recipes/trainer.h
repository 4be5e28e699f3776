// One stage of a recipe: trains one model with a weighted sum of loss terms, teachers
// frozen, evaluating on the test split, checkpointing atomically, and resuming from the
// last checkpoint bit-identically on the CPU.
#pragma once
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>
#include "engine/data/loader.h"
#include "models/model.h"
#include "recipes/recipe.h"
#include "transfer/loss_term.h"

namespace retort {

struct EvalResult {
  double loss = 0, top1 = 0, top5 = 0;  // CE loss; accuracies in percent
  double images_per_s = 0;
  int64_t images = 0;
};

// Progress of a stage as the trainer reports it to the terminal.
struct StepReport {
  std::string stage, model;
  int64_t epoch = 0, epochs = 0, batch = 0, batches = 0, step = 0;
  double loss = 0, train_top1 = 0, images_per_s = 0, lr = 0;
  int64_t batch_images = 0;
};

struct StageHooks {
  std::function<void(const nlohmann::json&)> metrics;  // one JSON object per evaluation
  std::function<void(const StepReport&)> progress;     // after each step
  std::function<void(const std::string&)> log;         // one-line messages
};

struct StageLosses;

struct StageOptions {
  StageLosses* losses = nullptr;     // the stage's losses, already built (taken over); null: built here
  std::string checkpoint_dir;        // where <stage>.ckpt.safetensors lives
  bool resume = false;               // continue from the stage's checkpoint when present
  int64_t checkpoint_every_steps = 0;  // 0: only at the end of each epoch
  int64_t stop_after_steps = 0;      // testing aid: stop (as if killed) after this many steps
  int64_t max_batches_per_epoch = 0;   // 0: all (smoke tests)
  std::string feature_cache_dir;       // teacher_cache = "file": where the feature files live
  int64_t feature_cache_max_bytes = int64_t(2) << 30;  // teacher_cache = "auto" stays off above this
};

struct StageResult {
  EvalResult test;
  double wall_s = 0;
  int64_t steps = 0;
  int64_t parameters = 0;
  bool completed = true;  // false when stop_after_steps cut it short
};

struct StageDatasets {
  data::DatasetView train;  // what the stage trains on
  data::DatasetView test;   // what it evaluates on
  std::vector<data::BatchTransform> train_transforms, eval_transforms;
  bool labelled = true;     // false: batches carry no labels for the losses
  bool augmented = false;   // train_transforms draw random numbers (crop, flip)
  int workers = 2;
};

// A stage's loss terms, built from the recipe: their weights and the taps they read.
struct StageLosses {
  std::vector<std::unique_ptr<transfer::Loss>> losses;
  std::vector<double> weights;
  std::set<std::string> student_taps;
  std::map<std::string, std::set<std::string>> teacher_taps;
};
// Builds (and so checks) a stage's loss terms. An impossible feature pairing, a teacher that is
// not among the stage's teachers, or a loss that needs labels on unlabelled data is an Error
// naming the recipe line. The runner calls it for every stage before any training starts and
// hands each stage its set through StageOptions::losses.
StageLosses build_stage_losses(const Recipe& recipe, const StageSpec& stage, std::shared_ptr<models::Model> student,
                               const std::map<std::string, std::shared_ptr<models::Model>>& teachers,
                               const Shape& input_shape, Device device, uint64_t seed, bool labelled);

// Evaluates `model` (eval mode, no grad) on a loader: CE loss, top-1, top-5.
EvalResult evaluate(models::Model& model, data::DataLoader& loader, Device device, int64_t max_batches = 0);

StageResult train_stage(const Recipe& recipe, const StageSpec& stage, std::shared_ptr<models::Model> student,
                        const std::map<std::string, std::shared_ptr<models::Model>>& teachers, const StageDatasets& data,
                        Device device, const StageOptions& options, const StageHooks& hooks);

}  // namespace retort
