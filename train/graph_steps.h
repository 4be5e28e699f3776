// A stage's training steps as CUDA graph replays (stage key cuda_graph = true; checked before
// any work by check_graph_stage, train/step_graph.h). The first two steps run eagerly (they
// create the optimizer's state and pick the convolution algorithms); the first regular step
// after them is captured and run, and every regular step after it is one graph launch: the
// batch is copied into the captured input buffers and the learning rates written to the device
// (engine/optim/device_rates.h) first, and afterwards the host-side counters the replay did not
// run are advanced (StepHealth's step count, AdamW's steps: Optimizer::note_replayed_step), so
// reads, logs and checkpoints see what an eager step would leave.
//
// A step is regular when it is a full batch of the captured shapes, writes no steps.jsonl row (a logged
// step's probe adds work) and every loss term is settled (Loss::settled_at: no warm-up factor
// still changing). The others run eagerly between replays, on the same parameters and state.
// A capture that fails stops the run with the reason: half a captured step would leave the
// host's counters ahead of the device's.
#pragma once
#include <functional>
#include <string>
#include <vector>
#include "engine/tensor.h"
#include "train/step_graph.h"
#include "train/train_step.h"

namespace retort {

class GraphedSteps {
 public:
  // `log` says when the step is captured.
  GraphedSteps(const StepParts& parts, StepHealth& health, std::function<void(const std::string&)> log)
      : parts_(parts), health_(health), log_(std::move(log)) {}

  // One training step, replayed, captured or eager (see above); what train_step returns.
  StepOutput step(const Tensor& x, const Tensor& y, const std::vector<int64_t>* positions,
                  const transfer::StepClock& clock, StepProbe* probe);
  // Steps run each way so far (tests).
  struct Counts {
    int64_t eager = 0, captured = 0, replayed = 0;
  };
  const Counts& counts() const { return counts_; }

  static constexpr int64_t kEagerWarmupSteps = 2;

 private:
  bool regular(const Tensor& x, const Tensor& y, const transfer::StepClock& clock, const StepProbe* probe) const;
  void load_inputs(const Tensor& x, const Tensor& y);
  void capture(const transfer::StepClock& clock);
  void replay();

  const StepParts& parts_;
  StepHealth& health_;
  std::function<void(const std::string&)> log_;
  StepGraph graph_;
  Tensor x_, y_;  // the captured step's inputs, refilled before each replay
  Optimizer::UpdatedParams captured_updates_;  // the parameters the captured step updates
  Counts counts_;
};

}  // namespace retort
