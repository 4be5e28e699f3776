// CUDA graph capture and replay of a training step (see train/step_graph.h).
#include "train/step_graph.h"
#include "engine/error.h"
#include "kernels/cuda/cuda_api.h"

namespace retort {

namespace {
// What keeps a stage's step from being the same work every step, whatever the device.
std::string step_refusal(const Recipe& recipe, const StageSpec& stage) {
  std::vector<std::string> models = stage.teachers;
  models.push_back(stage.train);
  for (const auto& name : models) {
    const auto& options = recipe.models.at(name).options;
    if (auto d = options.find("dropout"); d != options.end() && d->second > 0)
      return fmt::format("model '{}' has dropout (its random stream advances on the host)", name);
  }
  for (const auto& term : stage.losses) {
    if (term.name == "crd") return "CRD samples negatives and keeps its memory bank on the host";
  }
  return "";
}
}  // namespace

std::string graph_refusal(const Recipe& recipe, const StageSpec& stage, Device device) {
  if (!device.is_cuda()) return fmt::format("CUDA graphs need a CUDA device, not {}", device.str());
  return step_refusal(recipe, stage);
}

namespace {
// Why a stage cannot train as replays on `device` with `ranks` processes ("" when it can).
std::string training_graph_refusal(const Recipe& recipe, const StageSpec& stage, Device device, int ranks) {
  if (!device.is_cuda()) return fmt::format("CUDA graphs need a CUDA device and this run is on {}", device.str());
  if (ranks > 1 || stage.micro_batches > 1)
    return "data parallelism and micro-batches decide on the host between the slices of each step";
  if (stage.teacher_cache == TeacherCache::memory || stage.teacher_cache == TeacherCache::file)
    return fmt::format("teacher_cache = \"{}\" looks features up by each batch's positions on the host (\"auto\" "
                       "turns the cache off under cuda_graph)", to_string(stage.teacher_cache));
  return step_refusal(recipe, stage);
}
}  // namespace

void check_graph_stage(const Recipe& recipe, const StageSpec& stage, Device device, int ranks) {
  if (!stage.cuda_graph) return;
  const std::string why = training_graph_refusal(recipe, stage, device, ranks);
  RETORT_CHECK(why.empty(), "{}: stage '{}' asks for cuda_graph = true, which it cannot have: {}; set cuda_graph = "
               "false", recipe.where(stage.pos), stage.name, why);
}

void require_steps_on_device(const Optimizer& optimizer) {
  RETORT_CHECK(optimizer.steps_on_device(), "a parameter's AdamW step count lags the optimizer's (it missed a "
               "gradient), so its bias correction would not advance in a replay");
}

StepGraph::~StepGraph() { cuda::destroy_graph(graph_); }

std::string StepGraph::capture_and_run(const std::function<void()>& step) {
  RETORT_CHECK(!graph_, "StepGraph: already captured");
  cuda::begin_capture();
  try {
    step();
  } catch (const std::exception& e) {
    cuda::cancel_capture();
    return e.what();
  }
  try {
    graph_ = cuda::end_capture();
  } catch (const std::exception& e) {
    return e.what();
  }
  replay();
  return "";
}

void StepGraph::replay() {
  RETORT_CHECK(graph_, "StepGraph: nothing captured");
  cuda::launch_graph(graph_);
}

}  // namespace retort
