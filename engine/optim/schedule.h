// Learning-rate schedules as pure functions of the step: lr_at(step) depends on nothing
// else, so a run resumed at step s gets exactly the lr it would have had.
//   constant:   base
//   multistep:  base * gamma^(number of milestones <= step); milestones in steps, or in
//               epochs (converted with steps_per_epoch: epoch e starts at step e * steps_per_epoch)
//   cosine:     min + (base - min) * (1 + cos(pi * min(step, total) / total)) / 2
//   warm-up (composes with any of them): for step < k the lr is multiplied by
//               start + (1 - start) * step / k  (PyTorch LinearLR); the main schedule keeps
//               counting from step 0 (it is not shifted by the warm-up).
#pragma once
#include <cstdint>
#include <vector>

namespace retort {

class Optimizer;

class LrSchedule {
 public:
  static LrSchedule constant(double base_lr);
  static LrSchedule multistep(double base_lr, std::vector<int64_t> milestone_steps, double gamma);
  static LrSchedule multistep_epochs(double base_lr, const std::vector<int64_t>& milestone_epochs,
                                     int64_t steps_per_epoch, double gamma);
  static LrSchedule cosine(double base_lr, int64_t total_steps, double min_lr = 0.0);
  // A copy with a linear warm-up over `steps` steps starting at start_factor * lr.
  LrSchedule with_warmup(int64_t steps, double start_factor) const;

  double base_lr() const { return base_lr_; }
  double lr_at(int64_t step) const;
  // lr_at(step) / base_lr (1 when base_lr is 0): the multiplier applied to every group.
  double factor_at(int64_t step) const;
  // Sets each group's lr to its initial_lr * factor_at(step), so groups keep their ratios.
  void apply(Optimizer& optimizer, int64_t step) const;

 private:
  enum class Kind { constant, multistep, cosine };
  Kind kind_ = Kind::constant;
  double base_lr_ = 0.0;
  std::vector<int64_t> milestones_;  // in steps, sorted
  double gamma_ = 0.1;
  int64_t total_steps_ = 1;
  double min_lr_ = 0.0;
  int64_t warmup_steps_ = 0;
  double warmup_start_ = 1.0;
};

}  // namespace retort
