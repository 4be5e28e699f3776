// One stage of a recipe: trains one model with a weighted sum of loss terms, teachers
// frozen, evaluating on the test split, checkpointing atomically, and resuming from the
// last checkpoint bit-identically on the CPU.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include "engine/data/loader.h"
#include "models/model.h"
#include "train/evaluate.h"
#include "train/metrics.h"
#include "train/model_selection.h"
#include "train/recipe.h"
#include "train/stage_losses.h"
#include "train/step_log.h"

namespace retort {

// Progress of a stage as the trainer reports it to the terminal.
struct StepReport {
  std::string stage, model;
  int64_t epoch = 0, epochs = 0, batch = 0, batches = 0, step = 0;
  double loss = 0, train_top1 = 0, images_per_s = 0, lr = 0;  // loss: the epoch's running mean
  double step_loss = 0;      // this step's loss (over the whole global batch)
  int64_t batch_images = 0;  // this step's images (the global batch)
  // A logged step (every log_every_steps-th, one-process path): its terms, gradient norm and
  // statistics; null otherwise.
  const LoggedStep* logged = nullptr;
};

struct StageHooks {
  std::function<void(const EvalRecord&)> metrics;  // one record per evaluation
  std::function<void(const StepReport&)> progress;  // after each step
  std::function<void(const std::string&)> log;      // one-line messages
  std::function<void(int64_t step)> started;        // before the first step: the step it starts at
};

struct StageOptions {
  StageLosses* losses = nullptr;     // the stage's losses, already built (taken over); null: built here
  std::string checkpoint_dir;        // where <stage>.ckpt.safetensors lives
  bool resume = false;               // continue from the stage's checkpoint when present
  int64_t checkpoint_every_steps = 0;  // 0: only at the end of each epoch
  int64_t stop_after_steps = 0;      // testing aid: stop (as if killed) after this many steps
  int raise_signal_after_steps = 0;  // testing aid: raise raise_signal (SIGINT) after this many steps
  int raise_signal = 0;
  int64_t max_batches_per_epoch = 0;   // 0: all (smoke tests)
  std::string feature_cache_dir;       // teacher_cache = "file": where the feature files live
  int64_t feature_cache_max_bytes = int64_t(2) << 30;  // teacher_cache = "auto" stays off above this
  bool verify_replicas = false;  // data parallelism: check after every step that all ranks hold the same weights
  // The host reads the steps' loss, hits and finiteness (train/step_health.h) every this many
  // steps (0: every step on the CPU, where a read costs nothing; every 25 on CUDA), and at
  // every log_every_steps-th step, checkpoint, interrupt, stop and epoch end.
  int64_t read_every_steps = 0;
  // Every this many steps the progress hook gets a LoggedStep (steps.jsonl); 0: never.
  int64_t log_every_steps = 0;
  // Where the stage's pictures go (<dir>/<stage>.safetensors: train/stage_pictures.h); "": none.
  std::string pictures_dir;
  // With a validation split: where <stage>.best.safetensors (the best epoch's weights, kept for a
  // resume) and <stage>.last.safetensors go, written with this metadata (the model file's).
  std::string selection_dir;
  StringMap model_file_metadata;
};

struct StageResult {
  EvalResult test;  // the kept model's (train/model_selection.h), else the last epoch's
  SelectionResult selection;
  double wall_s = 0;
  int64_t steps = 0;
  int64_t parameters = 0;
  bool completed = true;  // false when stop_after_steps cut it short
  nn::NamedTensors loss_state;  // the loss terms' learned tensors at the end ("loss<i>.<name>")
};

struct StageDatasets {
  data::DatasetView train;  // what the stage trains on
  data::DatasetView test;   // what it evaluates on
  data::DatasetView validation;  // held out of the training images (data.val_size); empty: none
  std::vector<data::BatchTransform> train_transforms, eval_transforms;
  bool labelled = true;     // false: batches carry no labels for the losses
  bool augmented = false;   // train_transforms draw random numbers (crop, flip)
  int workers = 2;
};

// How a stage's training batches are loaded: shuffled with a seed of the run's seed and the
// stage's name, the last partial batch dropped, the stage's augmentation in its worker threads;
// under data parallelism each rank keeps its slice of every (global) batch.
data::LoaderOptions train_loader_options(const StageSpec& stage, const StageDatasets& data, uint64_t seed);

StageResult train_stage(const Recipe& recipe, const StageSpec& stage, std::shared_ptr<models::Model> student,
                        const std::map<std::string, std::shared_ptr<models::Model>>& teachers, const StageDatasets& data,
                        Device device, const StageOptions& options, const StageHooks& hooks);

}  // namespace retort
