// LR schedules: constant, multi-step, cosine, each composable with a linear warm-up.
#include "engine/optim/schedule.h"
#include <algorithm>
#include <cmath>
#include <numbers>
#include "engine/error.h"
#include "engine/optim/optimizer.h"

namespace retort {

LrSchedule LrSchedule::constant(double base_lr) {
  RETORT_CHECK(base_lr >= 0, "LrSchedule: base lr must be non-negative, got {}", base_lr);
  LrSchedule s;
  s.base_lr_ = base_lr;
  return s;
}

LrSchedule LrSchedule::multistep(double base_lr, std::vector<int64_t> milestone_steps, double gamma) {
  LrSchedule s = constant(base_lr);
  RETORT_CHECK(gamma > 0, "LrSchedule multistep: gamma must be positive, got {}", gamma);
  RETORT_CHECK(std::is_sorted(milestone_steps.begin(), milestone_steps.end()),
               "LrSchedule multistep: milestones must be increasing, got [{}]", fmt::join(milestone_steps, ", "));
  for (auto m : milestone_steps) RETORT_CHECK(m >= 0, "LrSchedule multistep: negative milestone {}", m);
  s.kind_ = Kind::multistep;
  s.milestones_ = std::move(milestone_steps);
  s.gamma_ = gamma;
  return s;
}

LrSchedule LrSchedule::multistep_epochs(double base_lr, const std::vector<int64_t>& milestone_epochs,
                                        int64_t steps_per_epoch, double gamma) {
  RETORT_CHECK(steps_per_epoch > 0, "LrSchedule multistep: steps_per_epoch must be positive, got {}", steps_per_epoch);
  std::vector<int64_t> steps;
  for (auto e : milestone_epochs) steps.push_back(e * steps_per_epoch);
  return multistep(base_lr, std::move(steps), gamma);
}

LrSchedule LrSchedule::cosine(double base_lr, int64_t total_steps, double min_lr) {
  LrSchedule s = constant(base_lr);
  RETORT_CHECK(total_steps > 0, "LrSchedule cosine: total_steps must be positive, got {}", total_steps);
  RETORT_CHECK(min_lr >= 0 && min_lr <= base_lr, "LrSchedule cosine: min lr {} must lie in [0, base lr {}]", min_lr,
               base_lr);
  s.kind_ = Kind::cosine;
  s.total_steps_ = total_steps;
  s.min_lr_ = min_lr;
  return s;
}

LrSchedule LrSchedule::with_warmup(int64_t steps, double start_factor) const {
  RETORT_CHECK(steps >= 0, "LrSchedule warm-up: steps must be non-negative, got {}", steps);
  RETORT_CHECK(start_factor >= 0 && start_factor <= 1, "LrSchedule warm-up: start factor {} must lie in [0, 1]",
               start_factor);
  LrSchedule s = *this;
  s.warmup_steps_ = steps;
  s.warmup_start_ = start_factor;
  return s;
}

double LrSchedule::lr_at(int64_t step) const {
  RETORT_CHECK(step >= 0, "LrSchedule: step must be non-negative, got {}", step);
  double lr = base_lr_;
  switch (kind_) {
    case Kind::constant: break;
    case Kind::multistep: {
      auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), step) - milestones_.begin();
      lr = base_lr_ * std::pow(gamma_, double(passed));
      break;
    }
    case Kind::cosine: {
      double t = double(std::min(step, total_steps_)) / double(total_steps_);
      lr = min_lr_ + (base_lr_ - min_lr_) * 0.5 * (1.0 + std::cos(std::numbers::pi * t));
      break;
    }
  }
  if (step < warmup_steps_) lr *= warmup_start_ + (1.0 - warmup_start_) * double(step) / double(warmup_steps_);
  return lr;
}

double LrSchedule::factor_at(int64_t step) const { return base_lr_ == 0.0 ? 1.0 : lr_at(step) / base_lr_; }

void LrSchedule::apply(Optimizer& optimizer, int64_t step) const {
  double f = factor_at(step);
  for (size_t g = 0; g < optimizer.num_groups(); ++g) optimizer.set_lr(g, optimizer.groups()[g].initial_lr * f);
}

}  // namespace retort
