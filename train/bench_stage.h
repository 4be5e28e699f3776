// One stage of a recipe, built to be timed (`retort bench`) or profiled (`retort profile`): its
// teachers, student, loss terms and optimizer as the trainer builds them, and the step the
// trainer runs (train/train_step.h). The batches are synthetic ones made once on the device
// (random normal images, random labels: only the step is measured), or the recipe's real
// training data through the stage's own loader (augmentation and worker threads included).
// The models start from their initialisation: an earlier stage's training is not run, so a
// teacher's weights are random; the time of a step does not depend on them.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include "engine/data/loader.h"
#include "models/model.h"
#include "train/recipe.h"
#include "train/run_data.h"
#include "train/stage_losses.h"
#include "train/train_step.h"

namespace retort {

struct BenchStageOptions {
  std::string stage;       // "" = the recipe's last stage
  std::string device;      // "" = the recipe's run.device
  int64_t batch_size = 0;  // 0 = the stage's
  bool real_data = false;  // the recipe's training data instead of synthetic batches
};

class BenchStage {
 public:
  // Checks the options (a known stage, a dataset whose class count is known for synthetic data)
  // before building anything.
  BenchStage(const Recipe& recipe, const BenchStageOptions& options);
  ~BenchStage();
  BenchStage(const BenchStage&) = delete;
  BenchStage& operator=(const BenchStage&) = delete;

  // One training step (a profiler::Kind::step range, its batch fetch a "data" phase); returns
  // the loss. A non-finite loss is an error, as in training.
  double step();

  const StageSpec& stage() const { return stage_; }
  Device device() const { return device_; }
  int64_t batch() const { return stage_.batch_size; }
  const models::Model& student() const { return *student_; }
  bool real_data() const { return loader_ != nullptr; }

 private:
  void load_real_data(const Recipe& recipe);
  void next_batch(Tensor& x, Tensor& y, const std::vector<int64_t>*& positions);

  StageSpec stage_;  // the recipe's, with the batch size asked for
  Device device_;
  int64_t classes_ = 0;
  std::map<std::string, std::shared_ptr<models::Model>> teachers_;
  std::shared_ptr<models::Model> student_;
  StageLosses losses_;
  StageOptimizer optimizer_;
  StepParts parts_;
  int64_t steps_ = 0;
  Tensor synthetic_x_, synthetic_y_;
  std::optional<LoadedData> data_;
  std::optional<StageDatasets> stage_data_;
  std::unique_ptr<data::DataLoader> loader_;
  data::Batch batch_;
  std::vector<int64_t> synthetic_positions_;
  int64_t epoch_ = 0;
};

}  // namespace retort
