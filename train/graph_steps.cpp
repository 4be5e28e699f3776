// Training steps as CUDA graph replays (see train/graph_steps.h).
#include "train/graph_steps.h"
#include "engine/autograd.h"
#include "engine/error.h"

namespace retort {

StepOutput GraphedSteps::step(const Tensor& x, const Tensor& y, const std::vector<int64_t>* positions,
                              const transfer::StepClock& clock, StepProbe* probe) {
  if (!regular(x, y, clock, probe)) {
    ++counts_.eager;
    return train_step(parts_, x, y, positions, clock, health_, probe);
  }
  load_inputs(x, y);
  parts_.optimizer->write_rates();  // outside the graph: each replay reads what the schedule set
  if (graph_.ready()) replay();
  else capture(clock);
  StepOutput out;
  out.seen = x.size(0);
  return out;
}

bool GraphedSteps::regular(const Tensor& x, const Tensor& y, const transfer::StepClock& clock,
                           const StepProbe* probe) const {
  if (probe || counts_.eager < kEagerWarmupSteps || x.size(0) != parts_.stage->batch_size) return false;
  if (x_.defined() && (x.shape() != x_.shape() || y.defined() != y_.defined() || (y.defined() && y.shape() != y_.shape())))
    return false;
  for (const auto& loss : parts_.losses->losses)
    if (!loss->settled_at(clock)) return false;
  return true;
}

void GraphedSteps::load_inputs(const Tensor& x, const Tensor& y) {
  NoGradGuard no_grad;
  if (!x_.defined()) {  // before the capture: its buffers are the graph's inputs from then on
    x_ = x.detach().contiguous().clone();
    if (y.defined()) y_ = y.detach().contiguous().clone();
    return;
  }
  x_.copy_(x);
  if (y_.defined()) y_.copy_(y);
}

void GraphedSteps::capture(const transfer::StepClock& clock) {
  const std::string failure = graph_.capture_and_run([&] {
    train_step(parts_, x_, y_, nullptr, clock, health_, nullptr);
    require_steps_on_device(*parts_.optimizer);
  });
  RETORT_CHECK(failure.empty(), "stage '{}': its training step could not be captured as a CUDA graph: {}; set "
               "cuda_graph = false for this stage", parts_.stage->name, failure);
  captured_updates_ = parts_.optimizer->last_updated();
  ++counts_.captured;
  if (log_)
    log_(fmt::format("stage '{}': the training step is a CUDA graph from here on (captured after {} eager steps); "
                     "logged steps and odd batches run eagerly", parts_.stage->name, counts_.eager));
}

void GraphedSteps::replay() {
  graph_.replay();
  health_.add_replayed_steps(1);
  parts_.optimizer->note_replayed_step(captured_updates_);
  ++counts_.replayed;
}

}  // namespace retort
