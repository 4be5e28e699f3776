// The step's bookkeeping kept on the device, so a training step makes no host read: each step
// adds its loss, its top-1 hits and whether its loss was finite to device-side accumulators;
// the trainer reads them all in ONE host read per interval (llm.c reads its loss the same way,
// once per logging interval, after backward).
//
// A non-finite loss cannot stop the step that made it without a read, so it is caught in two
// halves: on the device, the step's skip flag (nonzero from the first non-finite loss of the
// interval on) makes the optimizer leave every parameter and its state untouched, so the weights
// stay those from before that step; at the next read, the trainer stops naming that step, its
// epoch and batch, and the first non-finite loss term with its value.
//
// Top-1 hits are train/evaluate.h's top1_hits_on_device: a row with a NaN or infinite logit is
// never a hit, and a tie goes to the lowest class (argmax's first maximum).
#pragma once
#include <cstdint>
#include <vector>
#include "engine/tensor.h"

namespace retort {

class StepHealth {
 public:
  StepHealth(Device device, int64_t num_terms);

  // One step: the weighted total and the unweighted terms (one-element tensors), the student's
  // logits [B, C] and labels y [B] (undefined on unlabelled data: no hits counted).
  void record(const Tensor& total, const std::vector<Tensor>& terms, const Tensor& logits, const Tensor& y);
  // After the step's backward, when gradients are clipped: the global gradient norm (a
  // one-element tensor). A non-finite norm under a finite loss counts as a bad step too.
  void record_gradient_norm(const Tensor& norm);
  // A one-element f32 tensor on the device: 1 once a step of this interval had a non-finite
  // loss (or gradient norm), else 0 (Optimizer::step's skip flag).
  const Tensor& skip_flag() const { return any_bad_; }
  int64_t pending() const { return steps_; }
  // Steps a replayed CUDA graph recorded (the host did not see them: train/step_graph.h).
  void add_replayed_steps(int64_t n) { steps_ += n; }

  struct Reading {
    int64_t steps = 0;          // steps recorded since the previous read
    double loss_sum = 0;        // the sum of their totals
    double last_loss = 0;       // the last step's total
    int64_t hits = 0;           // top-1 hits over their labelled rows
    int64_t first_bad = -1;     // index (0-based, in this interval) of the first non-finite total, or -1
    std::vector<double> terms_at_first_bad;  // each term's value at that step
    bool gradient_at_first_bad = false;      // that step's loss was finite, its gradient norm was not
  };
  // Everything recorded since the previous read, in one host read; then starts a new interval.
  Reading read();

 private:
  void reset();

  Device device_;
  int64_t num_terms_;
  int64_t steps_ = 0;
  // Device buffers, updated in place (a captured step keeps writing the same ones).
  Tensor loss_sum_, last_loss_, hits_, any_bad_, first_bad_index_, step_index_, terms_at_first_bad_, gradient_bad_;
};

}  // namespace retort
