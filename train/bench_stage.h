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
#include "train/step_graph.h"
#include "train/train_step.h"

namespace retort {

struct BenchStageOptions {
  std::string stage;       // "" = the recipe's last stage
  std::string device;      // "" = the recipe's run.device
  int64_t batch_size = 0;  // 0 = the stage's
  bool real_data = false;  // the recipe's training data instead of synthetic batches
  std::string precision;   // "" = the stage's; else "f32" | "tf32" | "bf16" (engine/autocast.h)
  bool cuda_graph = false; // capture the step after its warm-up and replay it (train/step_graph.h)
  bool channels_last = false;  // the batch in NHWC memory (engine/memory_format.h), whatever the stage says
};

class BenchStage {
 public:
  // Checks the options (a known stage, a dataset whose class count is known for synthetic data)
  // before building anything.
  BenchStage(const Recipe& recipe, const BenchStageOptions& options);
  ~BenchStage();
  BenchStage(const BenchStage&) = delete;
  BenchStage& operator=(const BenchStage&) = delete;

  // One training step (a profiler::Kind::step range, its batch fetch a "data" phase), with no
  // host read, as in training.
  void step();
  // The last step's loss, in one host read; a non-finite loss since the previous read is an
  // error naming its step, as in training.
  double read_loss();
  // "off", "on" (the steps replay a CUDA graph), or "fell back to eager: <why the capture failed>".
  const std::string& graph_status() const { return graph_status_; }

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
  std::map<std::string, std::shared_ptr<models::Model>> step_teachers_;  // stage_teachers(): what the step runs
  std::shared_ptr<models::Model> student_;
  StageLosses losses_;
  StageOptimizer optimizer_;
  StepParts parts_;
  int64_t steps_ = 0;
  std::unique_ptr<StepHealth> health_;
  std::unique_ptr<StepGraph> graph_;  // --cuda-graph
  std::string graph_status_ = "off";
  Tensor synthetic_x_, synthetic_y_;
  std::optional<LoadedData> data_;
  std::optional<StageDatasets> stage_data_;
  std::unique_ptr<data::DataLoader> loader_;
  data::Batch batch_;
  std::vector<int64_t> synthetic_positions_;
  int64_t epoch_ = 0;
};

}  // namespace retort
