// A loss weight that ramps up linearly over the first epochs of a stage, as mdistiller's DKD and
// ReviewKD do: factor = min(e / warmup_epochs, 1), where e is
//   granularity "epoch" (mdistiller's rule): the 1-based epoch number, so the factor is constant
//     within an epoch and the first epoch already gets 1 / warmup_epochs;
//   granularity "step": the epochs done after this step (epoch + (batch + 1) / steps_per_epoch),
//     a ramp that also works when a stage is shorter than the warm-up in the reference recipes
//     (retort's 1-epoch student stages scale 20 of 240 epochs to 1/12 of an epoch).
// warmup_epochs = 0 switches the ramp off (factor 1).
#pragma once
#include <string>
#include <vector>
#include "transfer/loss_schema.h"
#include "transfer/loss_term.h"

namespace retort::transfer {

enum class WarmupGranularity { epoch, step };

struct LossWarmup {
  double epochs = 0;
  WarmupGranularity granularity = WarmupGranularity::epoch;

  double factor(const StepClock& clock) const;
};

// The keys `warmup_epochs` (default `default_epochs`) and `warmup_granularity` ("epoch").
std::vector<ParamSpec> warmup_params(double default_epochs);
// The warm-up a term's arguments ask for (the keys of warmup_params).
LossWarmup warmup_from_args(const LossArgs& args);

}  // namespace retort::transfer
