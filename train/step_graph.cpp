// CUDA graph capture and replay of a training step (see train/step_graph.h).
#include "train/step_graph.h"
#include "engine/error.h"
#include "kernels/cuda/cuda_api.h"

namespace retort {

std::string graph_refusal(const Recipe& recipe, const StageSpec& stage, Device device) {
  if (!device.is_cuda()) return fmt::format("CUDA graphs need a CUDA device, not {}", device.str());
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
